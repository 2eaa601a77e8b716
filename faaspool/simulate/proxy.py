"""The simulated network between the fleet and Redis: TCP links that can forget idle flows
(a NAT gateway or load balancer) and lose a reply after the server applied the command.

One selector loop and no threads: `Switchboard.poll` runs one round. The simulator runs it
in a process of its own (`faaspool.simulate.network`), so forwarding never waits for the
simulator's GIL. Each strategy gets its own `Link` (its own listening port and target), so a
fault armed on one link hits exactly that strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import selectors
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

__all__ = ["HOST", "Link", "LinkStats", "Switchboard"]

HOST = "127.0.0.1"
RECV_SIZE = 65536
# Stop reading one side while this much waits to be written to the other.
MAX_BUFFERED = 1024 * 1024

_CONNECTING, _OPEN, _DROPPED, _CLOSED = "connecting", "open", "dropped", "closed"


@dataclasses.dataclass
class LinkStats:
    """Counters of one link, as the network (and so the server) saw them."""

    accepted: int = 0  # TCP connections the fleet opened
    connects: int = 0  # of those, the ones the server accepted
    refused: int = 0  # of those, the ones the server refused (it was down)
    open: int = 0  # connections open at both ends right now, forgotten flows excluded
    peak_open: int = 0
    nat_dropped: int = 0  # flows silently forgotten after sitting idle
    replies_dropped: int = 0  # replies discarded after the server applied the command


class Link:
    """One listening port that forwards every accepted connection to ``target``."""

    def __init__(self, name: str, listener: socket.socket, target: tuple[str, int]) -> None:
        self.name = name
        self.listener = listener
        self.target = target
        self.port: int = listener.getsockname()[1]
        self.stats = LinkStats()
        # Flows idle at least this long are forgotten when next used (None: never).
        self.nat_idle: float | None = None
        # Byte patterns: the next client chunk containing one has its reply dropped.
        self.drop_patterns: deque[bytes] = deque()


class _Flow:
    __slots__ = (
        "client",
        "counted",
        "drop_reply",
        "last_active",
        "link",
        "state",
        "to_client",
        "to_server",
        "upstream",
    )

    def __init__(self, link: Link, client: socket.socket, upstream: socket.socket) -> None:
        self.link = link
        self.client: socket.socket | None = client
        self.upstream: socket.socket | None = upstream
        self.state = _CONNECTING
        self.counted = False  # included in link.stats.open
        self.drop_reply = False
        self.last_active = time.monotonic()
        self.to_server = bytearray()
        self.to_client = bytearray()


def _rst(sock: socket.socket) -> None:
    # Linger 0 makes close() send RST instead of FIN.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Switchboard:
    """Every link and flow of the simulated network, served by `poll`."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._links: dict[str, Link] = {}
        self._flows: set[_Flow] = set()
        self._masks: dict[socket.socket, int] = {}
        self._readers: dict[int, Callable[[], None]] = {}

    # -- configuration ------------------------------------------------------------------

    def add_link(self, name: str, target: tuple[str, int]) -> Link:
        """Listen on a free port of 127.0.0.1 and forward to ``target``."""
        if name in self._links:
            raise ValueError(f"link {name!r} exists")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen(256)
        listener.setblocking(False)
        link = Link(name, listener, target)
        self._links[name] = link
        self._sel.register(listener, selectors.EVENT_READ, link)
        return link

    def link(self, name: str) -> Link:
        try:
            return self._links[name]
        except KeyError:
            raise ValueError(f"no link named {name!r}") from None

    @property
    def links(self) -> dict[str, Link]:
        return dict(self._links)

    def add_reader(self, fd: int, callback: Callable[[], None]) -> None:
        """Call ``callback`` from `poll` whenever ``fd`` is readable (the control channel)."""
        self._readers[fd] = callback
        self._sel.register(fd, selectors.EVENT_READ, fd)

    def retarget(self, name: str, target: tuple[str, int]) -> None:
        """Connections opened from now on go to ``target``; open ones stay where they are."""
        self.link(name).target = target

    def set_nat_idle(self, name: str, idle: float | None) -> None:
        """Forget flows that carried nothing for ``idle`` seconds; None turns that off.

        A forgotten flow forwards nothing more either way, with no FIN or RST, as when a
        NAT gateway or load balancer drops its state for an idle flow.
        """
        self.link(name).nat_idle = idle

    def drop_replies(self, name: str, pattern: bytes, count: int) -> None:
        """For each of the next ``count`` client writes containing ``pattern``, forward it,
        discard the server's reply and reset the client's connection."""
        self.link(name).drop_patterns.extend([pattern] * count)

    def zombies(self, name: str) -> int:
        """Server ends of forgotten flows still open (the server cannot know)."""
        return sum(
            1
            for f in self._flows
            if f.link.name == name and f.state == _DROPPED and f.upstream is not None
        )

    def close(self) -> None:
        """Close every flow and listener."""
        for flow in list(self._flows):
            self._close(flow, rst=False)
        for link in self._links.values():
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(link.listener)
            link.listener.close()
        self._links.clear()
        self._sel.close()

    # -- the loop -----------------------------------------------------------------------

    def poll(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` seconds for traffic and forward what arrived."""
        for key, mask in self._sel.select(timeout):
            data = key.data
            if isinstance(data, Link):
                self._accept(data)
            elif isinstance(data, int):
                self._readers[data]()
            else:
                flow, side = data
                self._on_event(flow, side, mask)
        for flow in list(self._flows):
            self._flush(flow)
        for flow in list(self._flows):
            self._update_interest(flow)

    def _accept(self, link: Link) -> None:
        for _ in range(64):
            try:
                client, _ = link.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                client.setblocking(False)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                upstream.setblocking(False)
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                client.close()
                upstream.close()
                continue
            link.stats.accepted += 1
            flow = _Flow(link, client, upstream)
            self._flows.add(flow)
            if upstream.connect_ex(link.target) not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                link.stats.refused += 1
                self._close(flow, rst=True)

    def _on_event(self, flow: _Flow, side: str, mask: int) -> None:
        if flow.state == _CLOSED:
            return
        if side == "upstream" and flow.state == _CONNECTING:
            if mask & selectors.EVENT_WRITE:
                self._finish_connect(flow)
            return
        if mask & selectors.EVENT_READ:
            self._read(flow, side)

    def _finish_connect(self, flow: _Flow) -> None:
        assert flow.upstream is not None
        link = flow.link
        if flow.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            # The server is down: the client sees a reset, as behind a load balancer.
            link.stats.refused += 1
            self._close(flow, rst=True)
            return
        flow.state = _OPEN
        flow.counted = True
        link.stats.connects += 1
        link.stats.open += 1
        link.stats.peak_open = max(link.stats.peak_open, link.stats.open)

    def _forgotten(self, flow: _Flow, now: float) -> bool:
        idle = flow.link.nat_idle
        if flow.state == _OPEN and idle is not None and now - flow.last_active >= idle:
            flow.state = _DROPPED
            flow.to_client.clear()
            flow.to_server.clear()
            flow.link.stats.nat_dropped += 1
            self._uncount(flow)
        return flow.state == _DROPPED

    def _read(self, flow: _Flow, side: str) -> None:
        from_client = side == "client"
        sock = flow.client if from_client else flow.upstream
        if sock is None:
            return
        try:
            data = sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        now = time.monotonic()
        if self._forgotten(flow, now):
            if not data:
                self._close_side(flow, from_client)
            return
        if not data:
            # Redis clients and servers never half-close: an EOF ends the flow.
            self._close(flow, rst=False, flush=True)
            return
        flow.last_active = now
        if from_client:
            patterns = flow.link.drop_patterns
            if patterns and not flow.drop_reply and patterns[0] in data:
                patterns.popleft()
                flow.drop_reply = True
            flow.to_server += data
        elif flow.drop_reply:
            flow.link.stats.replies_dropped += 1
            self._close(flow, rst=True)
        else:
            flow.to_client += data

    def _flush(self, flow: _Flow) -> None:
        if flow.state != _OPEN:
            return
        for buffer, dst in ((flow.to_server, flow.upstream), (flow.to_client, flow.client)):
            if not buffer or dst is None:
                continue
            try:
                sent = dst.send(buffer)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                self._close(flow, rst=False)
                return
            del buffer[:sent]

    def _update_interest(self, flow: _Flow) -> None:
        if flow.state == _CLOSED:
            return
        forwarding = flow.state == _OPEN
        if flow.client is not None:
            mask = 0
            if not forwarding or len(flow.to_server) < MAX_BUFFERED:
                mask |= selectors.EVENT_READ
            if forwarding and flow.to_client:
                mask |= selectors.EVENT_WRITE
            self._want(flow.client, mask, (flow, "client"))
        if flow.upstream is not None:
            if flow.state == _CONNECTING:
                mask = selectors.EVENT_WRITE
            else:
                mask = 0
                if not forwarding or len(flow.to_client) < MAX_BUFFERED:
                    mask |= selectors.EVENT_READ
                if forwarding and flow.to_server:
                    mask |= selectors.EVENT_WRITE
            self._want(flow.upstream, mask, (flow, "upstream"))

    def _want(self, sock: socket.socket, mask: int, data: tuple[_Flow, str]) -> None:
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

    def _uncount(self, flow: _Flow) -> None:
        if flow.counted:
            flow.counted = False
            flow.link.stats.open -= 1

    def _close_side(self, flow: _Flow, client: bool) -> None:
        # A forgotten flow: only the end that went away closes; the other never hears.
        sock = flow.client if client else flow.upstream
        if sock is not None:
            self._forget(sock)
            sock.close()
        if client:
            flow.client = None
        else:
            flow.upstream = None
        if flow.client is None and flow.upstream is None:
            self._close(flow, rst=False)

    def _close(self, flow: _Flow, *, rst: bool, flush: bool = False) -> None:
        if flush and flow.state == _OPEN:
            # Deliver what the closing side sent just before its FIN (best effort).
            for buffer, dst in ((flow.to_server, flow.upstream), (flow.to_client, flow.client)):
                if buffer and dst is not None:
                    with contextlib.suppress(OSError):
                        dst.send(buffer)
        self._uncount(flow)
        for sock in (flow.client, flow.upstream):
            if sock is None:
                continue
            self._forget(sock)
            if rst and sock is flow.client:
                _rst(sock)
            else:
                sock.close()
        flow.client = flow.upstream = None
        flow.state = _CLOSED
        flow.to_server.clear()
        flow.to_client.clear()
        self._flows.discard(flow)
