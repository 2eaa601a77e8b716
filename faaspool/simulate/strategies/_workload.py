"""The work every strategy's handler does: one read, one safe write, one unsafe write.

The unsafe write is an INCR of a key unique to the invocation, so a write applied twice
shows on the server as a value of 2.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

READ = "read"
SAFE_WRITE = "safe_write"
UNSAFE_WRITE = "unsafe_write"


class OpError(Exception):
    """A command of the workload failed; ``op`` says which kind, ``error`` what happened."""

    def __init__(self, op: str, error: BaseException) -> None:
        super().__init__(f"{op}: {type(error).__name__}: {error}")
        self.op = op
        self.error = error


def run(client: Any, event: dict[str, Any]) -> None:
    """GET, SET (same value if repeated) and INCR, each failure tagged with its kind."""
    _op(READ, client.get, event["read_key"])
    _op(SAFE_WRITE, client.set, event["set_key"], event["id"])
    _op(UNSAFE_WRITE, client.incr, event["incr_key"])


def _op(kind: str, command: Any, *args: Any) -> Any:
    try:
        return command(*args)
    except Exception as exc:
        raise OpError(kind, exc) from exc


def client_name() -> str:
    """``<function>:<instance>``, so CLIENT LIST shows the fleet."""
    function = os.environ.get("FAASPOOL_SIM_FUNCTION", "sim")
    instance = os.environ.get("FAASPOOL_SIM_INSTANCE", str(os.getpid()))
    return f"{function}:{instance}"


def connection_args() -> dict[str, Any]:
    """$REDIS_URL as `redis.Redis` keyword arguments.

    The redis-py strategies call ``redis.Redis(host=..., port=...)``, the form most
    Lambda tutorials show: it retries (and so replays) up to 10 times by default, whereas
    redis-py 8.1's ``Redis.from_url()`` builds connections that never retry at all.
    """
    parts = urlsplit(os.environ["REDIS_URL"])
    path = parts.path.strip("/")
    return {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "db": int(path) if path else 0,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "client_name": client_name(),
    }
