"""The simulated network's process, and the simulator's handle on it.

``python -m faaspool.simulate.network`` serves a `Switchboard`, taking one JSON request per
line on stdin and answering one JSON line on stdout. It exits when stdin closes, so it
never outlives the simulator.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from ._proc import child_env, die_with_parent
from .proxy import Switchboard

__all__ = ["NetworkError", "NetworkProcess"]

CALL_TIMEOUT = 10.0
_QUIT_TIMEOUT = 2.0


class NetworkError(RuntimeError):
    """The network process failed, answered with an error, or did not answer in time."""


class NetworkProcess:
    """The simulated network running in a child process; methods are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "faaspool.simulate.network"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            close_fds=True,
            env=child_env(),
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def add_link(self, name: str, host: str, port: int) -> int:
        """A new link towards ``host:port``; returns the port the fleet connects to."""
        port_out: int = self._call(op="link", name=name, host=host, port=port)["port"]
        return port_out

    def retarget(self, name: str, host: str, port: int) -> None:
        self._call(op="retarget", name=name, host=host, port=port)

    def set_nat_idle(self, name: str, idle: float | None) -> None:
        self._call(op="nat", name=name, idle=idle)

    def drop_replies(self, name: str, pattern: str, count: int) -> None:
        self._call(op="drop_replies", name=name, pattern=pattern, count=count)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per link: `LinkStats` fields plus ``zombies``."""
        result: dict[str, dict[str, int]] = self._call(op="stats")["links"]
        return result

    def close(self) -> None:
        """Ask the process to quit; kill it if it does not. Idempotent."""
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(NetworkError, OSError):
                self._call(op="quit", timeout=_QUIT_TIMEOUT)
            try:
                proc.wait(timeout=_QUIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_QUIT_TIMEOUT)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def _call(self, timeout: float = CALL_TIMEOUT, **request: Any) -> dict[str, Any]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        with self._lock:
            if proc.poll() is not None:
                raise NetworkError(f"the network process exited with {proc.returncode}")
            try:
                proc.stdin.write(json.dumps(request).encode() + b"\n")
                proc.stdin.flush()
            except OSError as exc:
                raise NetworkError(f"the network process is gone: {exc}") from exc
            line = self._read_line(proc.stdout.fileno(), timeout)
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise NetworkError(f"network {request.get('op')}: {reply['error']}")
        return reply

    def _read_line(self, fd: int, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = end - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise NetworkError(f"the network process did not answer within {timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise NetworkError("the network process closed its output")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line


# -- the child process ------------------------------------------------------------------


def _handle(board: Switchboard, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "link":
        link = board.add_link(request["name"], (request["host"], int(request["port"])))
        return {"port": link.port}
    if op == "retarget":
        board.retarget(request["name"], (request["host"], int(request["port"])))
    elif op == "nat":
        idle = request.get("idle")
        board.set_nat_idle(request["name"], None if idle is None else float(idle))
    elif op == "drop_replies":
        board.drop_replies(request["name"], request["pattern"].encode(), int(request["count"]))
    elif op == "stats":
        links = {}
        for name, link in board.links.items():
            figures = dict(vars(link.stats))
            figures["zombies"] = board.zombies(name)
            links[name] = figures
        return {"links": links}
    elif op != "quit":
        raise ValueError(f"unknown op {op!r}")
    return {}


def main() -> int:
    """Serve the switchboard until stdin closes or a ``quit`` request arrives."""
    die_with_parent()
    board = Switchboard()
    stdin = sys.stdin.buffer.fileno()
    os.set_blocking(stdin, False)
    pending = b""
    running = True

    def on_control() -> None:
        nonlocal pending, running
        try:
            chunk = os.read(stdin, 65536)
        except BlockingIOError:
            return
        if not chunk:
            running = False
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                request = json.loads(line)
                reply = _handle(board, request)
                if request.get("op") == "quit":
                    running = False
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.buffer.write(json.dumps(reply).encode() + b"\n")
            sys.stdout.buffer.flush()

    board.add_reader(stdin, on_control)
    try:
        while running:
            board.poll(None)
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
