"""One function instance: ``python instance.py MODULE [--threads T]``.

It imports the handler module once (the cold start), says ``ready``, then serves the
invocations it reads from stdin, one JSON object per line: one at a time (Lambda) or on
``T`` threads (Cloud Functions, Azure). Each result goes back as one JSON line on the
original stdout; the handler's own prints go to stderr. The simulator freezes it with
SIGSTOP between invocations and kills it to recycle it, as a platform does.

The simulator runs this file by path (see `BOOTSTRAP`), not as part of the faaspool
package, and it imports only the standard library: so the cold start it measures includes
importing redis and faaspool, as on a real platform.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
PARENT_ENV = "FAASPOOL_SIM_PARENT"
# Runs this file by path: ``python -c BOOTSTRAP /path/to/instance.py MODULE ...``.
BOOTSTRAP = (
    "import runpy, sys; path = sys.argv.pop(1); sys.argv[0] = path; "
    "runpy.run_path(path, run_name='__main__')"
)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies, and exit now if it already has.

    A frozen (SIGSTOPped) instance cannot notice its stdin closing, but SIGKILL reaches
    it, so a simulator killed outright still leaves no process behind.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    expected = os.environ.get(PARENT_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        # The parent died before prctl took effect.
        os._exit(1)


class Context:
    """What a Lambda handler's ``context`` offers that the strategies use."""

    def __init__(self, request_id: str, deadline: float, function_name: str) -> None:
        self.aws_request_id = request_id
        self.function_name = function_name
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Instance:
    """Runs invocations of one handler module and reports each one."""

    def __init__(self, module: Any, out: IO[str]) -> None:
        self.module = module
        self.handler: Callable[[dict[str, Any], Context], Any] = module.handler
        self.function = os.environ.get("FAASPOOL_SIM_FUNCTION", "sim")
        self._out = out
        self._lock = threading.Lock()
        self._running = 0
        self._served = 0
        self._stats: Callable[[], dict[str, int]] | None = getattr(module, "stats", None)

    def send(self, message: dict[str, Any]) -> None:
        line = json.dumps(message, separators=(",", ":")) + "\n"
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def invoke(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._running += 1
            cold = self._served == 0
            self._served += 1
        context = Context(str(event["id"]), float(event["deadline"]), self.function)
        result: dict[str, Any] = {"t": "done", "id": event["id"], "cold": cold, "ok": True}
        started = time.monotonic()
        try:
            self.handler(event, context)
        except Exception as exc:
            # The workload tags a failed command with its kind (``op``) and cause (``error``).
            cause = getattr(exc, "error", exc)
            op = getattr(exc, "op", "handler")
            result.update(ok=False, op=op, err=type(cause).__name__, msg=str(cause))
        finished = time.monotonic()
        result.update(t0=started, dur=finished - started)
        if self._stats is not None:
            result["stats"] = self._stats()
        with self._lock:
            self._running -= 1
            quiet = self._running == 0
        if quiet:
            # Checked out with nothing running: nobody will ever give it back.
            result["leaked"] = self.connections()["in_use"]
        self.send(result)

    def connections(self) -> dict[str, int]:
        """Connections checked out of the strategy's pools, and sockets they hold open."""
        in_use = held = 0
        for pool in self.module.connection_pools():
            with pool._lock:
                busy = list(pool._in_use_connections)
                idle = list(pool._available_connections)
            in_use += len(busy)
            held += sum(1 for conn in busy + idle if getattr(conn, "_sock", None) is not None)
        return {"in_use": in_use, "held": held}

    def report(self) -> None:
        stats = getattr(self.module, "stats", None)
        self.send({"t": "report", "stats": stats() if stats else None, **self.connections()})


def main(argv: list[str] | None = None) -> int:
    """Serve invocations until stdin closes."""
    die_with_parent()
    parser = argparse.ArgumentParser(prog="instance.py")
    parser.add_argument("module")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    # The protocol keeps the real stdout; anything the handler prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    started = time.monotonic()
    module = importlib.import_module(args.module)
    instance = Instance(module, out)
    instance.send({"t": "ready", "pid": os.getpid(), "init": time.monotonic() - started})

    pool = ThreadPoolExecutor(args.threads) if args.threads > 1 else None
    try:
        for line in sys.stdin:
            message = json.loads(line)
            kind = message.get("t")
            if kind == "invoke":
                if pool is None:
                    instance.invoke(message)
                else:
                    pool.submit(instance.invoke, message)
            elif kind == "report":
                instance.report()
    except KeyboardInterrupt:
        pass
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
