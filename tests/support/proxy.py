"""A deterministic TCP fault proxy for putting between a client and redis-server.

One daemon thread runs a selector loop over every socket. Control methods are
executed *inside* that loop and return only once applied, so after e.g.
``reset_all()`` returns the RSTs have been sent, and a mode switch never races
with a chunk being forwarded.

Chunk counting: a "chunk" is one ``recv()`` on the proxy's side. TCP has no
message boundaries, so counts are exact only for request/response traffic where
the peer waits for a reply before writing again, and each write is smaller than
the 64 KiB read size (redis-py writes a command under ~6 KB in one
``sendall``). Two writes issued back to back without waiting for a reply may be
counted as one or two chunks. Pipelined handshakes therefore count as one chunk
per round trip.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["FaultProxy", "Flow", "ProxyError"]

HOST = "127.0.0.1"
RECV_SIZE = 65536
# Stop reading a side once this much is queued towards the other one.
MAX_QUEUED = 4 * 1024 * 1024
CALL_TIMEOUT = 5.0

_T = TypeVar("_T")


class ProxyError(RuntimeError):
    pass


@dataclass
class _Pipe:
    """One direction of a flow: queued (due time, bytes) chunks."""

    queue: deque[tuple[float, bytes]] = field(default_factory=deque)
    queued: int = 0
    blocked: bool = False
    eof: bool = False
    last_due: float = 0.0

    def clear(self) -> None:
        self.queue.clear()
        self.queued = 0
        self.blocked = False


class Flow:
    """One client connection through the proxy. Attributes are read-only to tests.

    ``state`` is "connecting", "pass", "blackhole" (resumable by heal()),
    "hang" (after drop_next_reply(then="hang"); never resumes) or "closed".
    """

    def __init__(self, index: int, client: socket.socket, target: tuple[str, int]) -> None:
        self.index = index
        self.target = target
        self.client_address: tuple[str, int] = client.getpeername()
        self.client_chunks = 0
        self.server_chunks = 0
        self.client_bytes = 0
        self.server_bytes = 0
        self.state = "pass"
        self._client: socket.socket | None = client
        self._upstream: socket.socket | None = None
        self._connecting = False
        self._drop: str | None = None
        self._drop_event: threading.Event | None = None
        self._to_server = _Pipe()
        self._to_client = _Pipe()

    @property
    def client_open(self) -> bool:
        return self._client is not None

    @property
    def upstream_open(self) -> bool:
        return self._upstream is not None

    def __repr__(self) -> str:
        return (
            f"<Flow #{self.index} {self.state} from {self.client_address} "
            f"c2s={self.client_chunks} s2c={self.server_chunks}>"
        )


def _rst(sock: socket.socket) -> None:
    # Linger 0 makes close() send RST instead of FIN.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """TCP proxy on 127.0.0.1:<free port> towards ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._delay = 0.0
        self._blackhole_new = False
        self._armed_drop: tuple[str, threading.Event] | None = None
        self._flows: list[Flow] = []
        self._active: list[Flow] = []
        self._masks: dict[socket.socket, int] = {}
        self._calls: deque[tuple[Callable[[], object], list[object], threading.Event]] = deque()
        self._stopping = False
        self._loop_error: BaseException | None = None

        self._sel = selectors.DefaultSelector()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(
            target=self._run, name=f"FaultProxy:{self._port}", daemon=True
        )
        self._thread.start()

    # -- public API -------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        return self._port

    @property
    def target(self) -> tuple[str, int]:
        return self._target

    @property
    def flows(self) -> list[Flow]:
        """Every flow ever accepted, in accept order."""
        return list(self._flows)

    @property
    def flows_opened(self) -> int:
        return len(self._flows)

    @property
    def open_flows(self) -> int:
        """Flows whose client side is still open (what the client sees)."""
        return sum(1 for flow in self._flows if flow.client_open)

    def url_for(
        self,
        base_url: str | None = None,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int | None = None,
    ) -> str:
        """redis:// URL for the proxy; credentials, db and query kept from
        ``base_url`` unless overridden."""
        parts = urlsplit(base_url or "redis://")
        user = username if username is not None else parts.username
        secret = password if password is not None else parts.password
        auth = ""
        if user or secret:
            auth = quote(user or "", safe="")
            if secret is not None:
                auth += ":" + quote(secret, safe="")
            auth += "@"
        path = f"/{db}" if db is not None else (parts.path or "/0")
        netloc = f"{auth}{self.host}:{self.port}"
        return urlunsplit((parts.scheme or "redis", netloc, path, parts.query, ""))

    def set_delay(self, seconds: float) -> None:
        """Delay every chunk received from now on by ``seconds`` (each way)."""
        self._call(lambda: setattr(self, "_delay", max(0.0, seconds)))

    def drop_next_reply(self, then: Literal["reset", "hang"] = "reset") -> threading.Event:
        """Forward the next client chunk (on any flow), discard the server's
        reply to it, then RST that flow's client side or leave it hanging.
        Returns an Event set once the reply has been dropped."""
        if then not in ("reset", "hang"):
            raise ValueError(f"then must be 'reset' or 'hang', not {then!r}")
        fired = threading.Event()
        self._call(lambda: setattr(self, "_armed_drop", (then, fired)))
        return fired

    def blackhole_existing(self) -> None:
        """Open flows forward nothing either way (no FIN, no RST); new ones pass."""
        self._call(self._blackhole_existing)

    def blackhole_all(self) -> None:
        """Like blackhole_existing(), and new connects are accepted but never
        reach the server."""

        def apply() -> None:
            self._blackhole_new = True
            self._blackhole_existing()

        self._call(apply)

    def reset_all(self) -> None:
        """RST every open flow's client side and close its server side."""
        self._call(self._reset_all)

    def retarget(self, host: str, port: int) -> None:
        """Flows opened from now on go to ``host:port``."""
        self._call(lambda: setattr(self, "_target", (host, port)))

    def heal(self) -> None:
        """Back to pass-through: no delay, no armed drop, blackholed flows resume
        (bytes discarded meanwhile stay lost); dead and hung flows stay so."""
        self._call(self._heal)

    def close(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(ProxyError, TimeoutError):
                self._call(self._shutdown)
            self._thread.join(CALL_TIMEOUT)
        if self._thread.is_alive():
            raise ProxyError(f"{self._thread.name} did not stop")
        # Covers a crashed loop; a no-op after a clean stop.
        self._shutdown()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FaultProxy {self.host}:{self.port} -> {self._target[0]}:{self._target[1]}>"

    # -- control plumbing -------------------------------------------------

    def _call(self, fn: Callable[[], _T]) -> _T:
        if self._loop_error is not None:
            raise ProxyError("proxy loop crashed") from self._loop_error
        if not self._thread.is_alive():
            raise ProxyError("proxy is closed")
        result: list[object] = []
        done = threading.Event()
        self._calls.append((fn, result, done))
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not done.wait(CALL_TIMEOUT):
            raise TimeoutError("proxy loop did not run the control call in time")
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]  # type: ignore[return-value]

    def _run_calls(self) -> None:
        while self._calls:
            fn, result, done = self._calls.popleft()
            try:
                result.append(fn())
            except BaseException as exc:
                result.append(exc)
            done.set()

    # -- control actions (loop thread) ------------------------------------

    def _blackhole_existing(self) -> None:
        for flow in self._active:
            if flow.state in ("pass", "connecting"):
                flow.state = "blackhole"
                flow._to_server.clear()
                flow._to_client.clear()

    def _reset_all(self) -> None:
        for flow in list(self._active):
            self._close_flow(flow, rst=True)

    def _heal(self) -> None:
        self._delay = 0.0
        self._blackhole_new = False
        self._armed_drop = None
        for flow in list(self._active):
            if flow.state != "blackhole" or flow._client is None:
                continue
            if flow._upstream is not None:
                flow.state = "pass"
            elif not flow._connecting:
                self._connect_upstream(flow)

    def _shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for flow in list(self._active):
            self._close_flow(flow, rst=False)
        for sock in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(sock)
            sock.close()
        with contextlib.suppress(RuntimeError, OSError):
            self._sel.close()

    # -- event loop (loop thread) -----------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                events = self._sel.select(self._next_timeout())
                for key, mask in events:
                    self._dispatch(key, mask)
                self._run_calls()
                if not self._stopping:
                    for flow in list(self._active):
                        self._flush(flow)
                    self._update_interest()
        except BaseException as exc:
            self._loop_error = exc
            raise
        finally:
            # Unblock callers waiting on a control call that will never run.
            for _, result, done in self._calls:
                result.append(ProxyError("proxy loop stopped"))
                done.set()

    def _next_timeout(self) -> float | None:
        now = time.monotonic()
        nearest: float | None = None
        for flow in self._active:
            if flow.state != "pass":
                continue
            for pipe in (flow._to_server, flow._to_client):
                if pipe.queue and not pipe.blocked:
                    due = pipe.queue[0][0]
                    nearest = due if nearest is None else min(nearest, due)
        return None if nearest is None else max(0.0, nearest - now)

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        if key.data == "wake":
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
        elif key.data == "accept":
            self._accept()
        else:
            flow, side = key.data
            if flow.state == "closed":
                return
            if side == "upstream" and flow._connecting and mask & selectors.EVENT_WRITE:
                self._finish_connect(flow)
                return
            if mask & selectors.EVENT_WRITE:
                pipe = flow._to_client if side == "client" else flow._to_server
                pipe.blocked = False
            if mask & selectors.EVENT_READ:
                self._read(flow, side)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            try:
                client.setblocking(False)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                flow = Flow(len(self._flows), client, self._target)
            except OSError:
                # The client hung up before we got to it.
                client.close()
                continue
            self._flows.append(flow)
            self._active.append(flow)
            if self._blackhole_new:
                flow.state = "blackhole"
            else:
                self._connect_upstream(flow)

    def _connect_upstream(self, flow: Flow) -> None:
        flow.target = self._target
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        flow._upstream = upstream
        flow._connecting = True
        flow.state = "connecting"
        if upstream.connect_ex(flow.target) not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._close_flow(flow, rst=True)

    def _finish_connect(self, flow: Flow) -> None:
        assert flow._upstream is not None
        err = flow._upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        flow._connecting = False
        if err:
            # Target down: the client sees a reset, as behind a load balancer.
            self._close_flow(flow, rst=True)
        elif flow.state == "connecting":
            flow.state = "pass"

    def _read(self, flow: Flow, side: str) -> None:
        from_client = side == "client"
        sock = flow._client if from_client else flow._upstream
        if sock is None:
            return
        try:
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof(flow, from_client)
            return
        if from_client:
            flow.client_chunks += 1
            flow.client_bytes += len(data)
        else:
            flow.server_chunks += 1
            flow.server_bytes += len(data)
        if flow.state in ("blackhole", "hang"):
            return
        if from_client:
            if self._armed_drop is not None and flow._drop is None:
                flow._drop, flow._drop_event = self._armed_drop
                self._armed_drop = None
            self._enqueue(flow._to_server, data)
        elif flow._drop is not None:
            self._fire_drop(flow)
        else:
            self._enqueue(flow._to_client, data)

    def _fire_drop(self, flow: Flow) -> None:
        then, event = flow._drop, flow._drop_event
        flow._drop = flow._drop_event = None
        if then == "reset":
            self._close_flow(flow, rst=True)
        else:
            flow.state = "hang"
            flow._to_server.clear()
            flow._to_client.clear()
        assert event is not None
        event.set()

    def _enqueue(self, pipe: _Pipe, data: bytes) -> None:
        # Never let a chunk overtake an earlier one when the delay shrinks.
        due = max(time.monotonic() + self._delay, pipe.last_due)
        pipe.last_due = due
        pipe.queue.append((due, data))
        pipe.queued += len(data)

    def _on_eof(self, flow: Flow, from_client: bool) -> None:
        if flow.state in ("blackhole", "hang"):
            # Close only the side that went away: the other sees nothing.
            sock = flow._client if from_client else flow._upstream
            if sock is not None:
                self._forget(sock)
                sock.close()
            if from_client:
                flow._client = None
            else:
                flow._upstream = None
            if flow._client is None and flow._upstream is None:
                self._close_flow(flow, rst=False)
            return
        (flow._to_server if from_client else flow._to_client).eof = True

    def _flush(self, flow: Flow) -> None:
        if flow.state != "pass":
            return
        now = time.monotonic()
        for pipe, dst in ((flow._to_server, flow._upstream), (flow._to_client, flow._client)):
            while dst is not None and pipe.queue and not pipe.blocked and pipe.queue[0][0] <= now:
                due, data = pipe.queue[0]
                try:
                    sent = dst.send(data)
                except (BlockingIOError, InterruptedError):
                    pipe.blocked = True
                    break
                except OSError:
                    self._close_flow(flow, rst=False)
                    return
                pipe.queued -= sent
                if sent < len(data):
                    pipe.queue[0] = (due, data[sent:])
                    pipe.blocked = True
                else:
                    pipe.queue.popleft()
            if pipe.eof and not pipe.queue:
                self._close_flow(flow, rst=False)
                return

    def _update_interest(self) -> None:
        for flow in self._active:
            reading = flow.state != "pass"
            client_mask = 0
            if flow._client is not None:
                if not flow._to_server.eof and (reading or flow._to_server.queued < MAX_QUEUED):
                    client_mask |= selectors.EVENT_READ
                if flow._to_client.blocked:
                    client_mask |= selectors.EVENT_WRITE
                self._want(flow._client, client_mask, (flow, "client"))
            if flow._upstream is not None:
                if flow._connecting:
                    upstream_mask = selectors.EVENT_WRITE
                else:
                    upstream_mask = 0
                    if not flow._to_client.eof and (reading or flow._to_client.queued < MAX_QUEUED):
                        upstream_mask |= selectors.EVENT_READ
                    if flow._to_server.blocked:
                        upstream_mask |= selectors.EVENT_WRITE
                self._want(flow._upstream, upstream_mask, (flow, "upstream"))

    def _want(self, sock: socket.socket, mask: int, data: tuple[Flow, str]) -> None:
        current = self._masks.get(sock, 0)
        if mask == current:
            return
        if not current:
            self._sel.register(sock, mask, data)
        elif not mask:
            self._sel.unregister(sock)
        else:
            self._sel.modify(sock, mask, data)
        self._masks[sock] = mask

    def _forget(self, sock: socket.socket) -> None:
        if self._masks.pop(sock, 0):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._sel.unregister(sock)

    def _close_flow(self, flow: Flow, *, rst: bool) -> None:
        if flow._client is not None:
            self._forget(flow._client)
            if rst:
                _rst(flow._client)
            else:
                flow._client.close()
            flow._client = None
        if flow._upstream is not None:
            self._forget(flow._upstream)
            flow._upstream.close()
            flow._upstream = None
        flow.state = "closed"
        flow._connecting = False
        flow._to_server.clear()
        flow._to_client.clear()
        if flow in self._active:
            self._active.remove(flow)
