"""What the process knows about the platform it runs on, read from the environment only.

No platform SDK is imported here: the core stays cheap to import on every cold start.
"""

from __future__ import annotations

import os
import re
import secrets

_instance: tuple[int, str] | None = None

# os.getpid() is a system call (~0.2 us here); the hot path reads this instead, kept
# right by a fork hook.
pid = os.getpid()


def _forked() -> None:
    global pid
    pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-]+")


def platform() -> str:
    """``"aws_lambda"``, ``"gcf"``, ``"azure"`` or ``"local"``, from well-known variables."""
    env = os.environ
    if "AWS_LAMBDA_FUNCTION_NAME" in env:
        return "aws_lambda"
    if "FUNCTIONS_WORKER_RUNTIME" in env or "WEBSITE_SITE_NAME" in env:
        return "azure"
    if "FUNCTION_TARGET" in env or "K_SERVICE" in env:
        return "gcf"
    return "local"


def function_name() -> str:
    """The deployed function's name, as safe to put in ``CLIENT SETNAME``."""
    env = os.environ
    raw = (
        env.get("AWS_LAMBDA_FUNCTION_NAME")
        or env.get("K_SERVICE")
        or env.get("FUNCTION_TARGET")
        or env.get("WEBSITE_SITE_NAME")
        or "local"
    )
    return _UNSAFE_NAME_CHARS.sub("-", raw)[:64] or "local"


def instance_id() -> str:
    """A short random id for this process; a forked child gets its own."""
    global _instance
    pid = os.getpid()
    if _instance is None or _instance[0] != pid:
        _instance = (pid, secrets.token_hex(4))
    return _instance[1]


def new_instance_id() -> str:
    """Draw a new instance id: SnapStart clones restored from one snapshot share the old."""
    global _instance
    _instance = (os.getpid(), secrets.token_hex(4))
    return _instance[1]


def default_max_connections() -> int:
    """Room for the platform's concurrent invocations per process, plus one dedicated."""
    env = os.environ
    kind = platform()
    if kind == "aws_lambda":
        # One invocation at a time per execution environment.
        return 2
    if kind == "azure":
        threads = _int(env.get("PYTHON_THREADPOOL_THREAD_COUNT"))
        # The worker's default pool is min(32, cpu + 4) threads.
        return (threads or min(32, (os.cpu_count() or 1) + 4)) + 1
    if kind == "gcf":
        threads = _int(env.get("THREADS")) or _int(env.get("FAASPOOL_THREADS"))
        return (threads or 16) + 1
    return 10


def _int(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number and number > 0 else None
