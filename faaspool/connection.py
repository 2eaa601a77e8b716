"""Connections: redis-py's, plus what reuse inside a FaaS instance needs.

These are the only sync classes that touch sockets. On top of redis-py's `Connection`
they add a pipelined handshake (one round trip), a zero-round-trip liveness probe with an
idle PING, a flag that tells whether any byte of the current command was written, the
session state a returned connection must not carry, and a per-call timeout budget.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from typing import Any

import redis.connection as rc
import redis.exceptions as rx
from redis._parsers import _RESP2Parser, _RESP3Parser

from . import _handshake, _policy, _sockets, _tls
from ._commands import STICKY
from ._config import Config
from ._deadline import clip
from ._stats import counters


class FaaspoolConnectionMixin:
    """Behaviour shared by the TCP and TLS connection classes."""

    # Set by the pool; read on the hot path.
    faaspool_config: Config
    _plain_hint = True  # a handshake cut short may mean the port expects TLS
    _sock: socket.socket | None
    _parser: Any
    _command_packer: Any

    def _faaspool_init(self, config: Config) -> None:
        self.faaspool_config = config
        self.sent = False  # some byte of the current command may have reached the socket
        self.in_flight = False  # a command was sent and its reply not yet fully read
        self.session = 0  # _commands bits: MULTI, WATCH, DB, STICKY
        self.last_used = 0.0
        self.lease_site: str | None = None
        self.scope: Any = None
        self.generation = 0
        self.ever_connected = False
        self._poller: Any = None
        self._timeout: float | None = config.socket_timeout  # what the socket has
        self._wanted: float | None = config.socket_timeout  # what the next read should get
        self._budget: float | None = None

    # -- connecting -----------------------------------------------------------------

    def _faaspool_after_connect(self) -> None:
        sock = self._sock
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), _sockets.POLL_FLAGS)
        self._poller = poller
        self._timeout = sock.gettimeout()
        counters.connects += 1
        if self.ever_connected:
            counters.reconnects += 1
        self.ever_connected = True
        # The handshake ran under the connect bounds; the command gets its own timeout.
        self.set_timeout(self._wanted)

    def _tcp_socket(self, host: str, port: int) -> socket.socket:
        """Open a TCP socket with the connect wait bounded by the budget."""
        cfg = self.faaspool_config
        connect_timeout = clip(cfg.socket_connect_timeout, self._budget)
        err: OSError | None = None
        for family, socktype, proto, _, address in socket.getaddrinfo(
            host, port, 0, socket.SOCK_STREAM
        ):
            sock = socket.socket(family, socktype, proto)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                for opt, value in _sockets.KEEPALIVE:
                    sock.setsockopt(socket.IPPROTO_TCP, opt, value)
                sock.settimeout(connect_timeout)
                sock.connect(address)
                sock.settimeout(clip(cfg.socket_timeout, self._budget))
                return sock
            except OSError as exc:
                err = exc
                sock.close()
        raise err if err is not None else OSError("getaddrinfo returned nothing")

    def on_connect_check_health(self, check_health: bool = True) -> None:
        """Send the whole handshake in one write and read the replies together."""
        conn: Any = self
        conn._reset_himport_state()
        if conn.protocol == 3 and isinstance(self._parser, _RESP2Parser):
            old = self._parser
            conn.set_parser(_RESP3Parser)
            self._parser.EXCEPTION_CLASSES = old.EXCEPTION_CLASSES
        self._parser.on_connect(self)
        credentials = None
        if conn.credential_provider is not None:
            credentials = conn.credential_provider.get_credentials()
        elif conn.username or conn.password:
            credentials = (
                (conn.username, conn.password) if conn.username else (conn.password,)
            )
        driver = conn.driver_info
        steps = _handshake.commands(
            protocol=conn.protocol,
            credentials=credentials,
            client_name=conn.client_name,
            db=conn.db,
            lib_name=driver.formatted_name if driver else None,
            lib_version=driver.lib_version if driver else None,
        )
        if steps:
            self._handshake(steps)
        # Right after the handshake: redis-py runs its connect callbacks next, and those
        # may already send commands.
        self._faaspool_after_connect()

    def _handshake(self, steps: list[tuple[str, tuple[Any, ...]]]) -> None:
        conn: Any = self
        packed = conn.pack_commands([args for _, args in steps])
        self._sendall(packed)
        for index, (kind, _args) in enumerate(steps):
            try:
                reply = conn.read_response()
            except rx.ResponseError as exc:
                reply = exc
            except rx.ConnectionError as exc:
                if index == 0 and type(exc) is rx.ConnectionError and self._plain_hint:
                    raise _handshake.expects_tls(exc) from exc
                raise
            if kind == _handshake.HELLO and not isinstance(reply, rx.ResponseError):
                conn.handshake_metadata = reply
            _handshake.check(kind, reply, conn.protocol)

    def _sendall(self, chunks: list[bytes]) -> None:
        sock = self._sock
        if sock is None:
            raise rx.ConnectionError("Connection closed by client")
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except TimeoutError:
            self.disconnect()
            raise rx.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            self.disconnect()
            raise rx.ConnectionError(f"Error while writing to socket: {exc}") from None

    # -- sending ------------------------------------------------------------------------

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        name = args[0]
        if _policy.tracks_session(name):
            self._track_session(args)
        self.in_flight = True
        self.send_packed_command(self._command_packer.pack(*args), False)

    def _track_session(self, args: tuple[Any, ...]) -> None:
        name = _policy.command_name(args)
        if name in _policy.SESSION_NAMES:
            self.session = _policy.session_bits(name, args, self.faaspool_config.db, self.session)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._sock is None:
            conn: Any = self
            conn.connect_check_health(check_health=False, retry_socket_connect=False)
        sock = self._sock
        assert sock is not None
        self.sent = True
        try:
            if isinstance(command, bytes | str):
                command = [command]
            for item in command:
                sock.sendall(item)
        except TimeoutError:
            self.disconnect()
            raise rx.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            self.disconnect()
            raise rx.ConnectionError(f"Error while writing to socket: {exc}") from None
        except BaseException:
            self.disconnect()
            raise

    # -- checking on reuse ----------------------------------------------------------------

    def probe(self, now: float, budget: float | None) -> bool:
        """Check a pooled socket before reuse; close it and return False if unsafe.

        No round trip unless the socket sat idle longer than ``idle_probe_after``. A
        socket that is readable at all while idle (EOF, RST, stray bytes) is unsafe.
        """
        if self._sock is None:
            return True
        if self._poller.poll(0) and not self._only_tls_records():
            counters.stale_found += 1
            self.disconnect()
            return False
        cfg = self.faaspool_config
        if now - self.last_used >= cfg.idle_probe_after:
            return self._ping(budget)
        counters.reuses += 1
        return True

    def _only_tls_records(self) -> bool:
        """True when a TLS socket polled readable only for TLS records (session tickets)."""
        sock = self._sock
        if not isinstance(sock, ssl.SSLSocket):
            return False
        events = self._poller.poll(0)
        if not events or events[0][1] & _sockets.CLOSED_FLAGS:
            return False
        timeout = sock.gettimeout()
        try:
            sock.setblocking(False)
            sock.recv(1)
        except ssl.SSLWantReadError:
            return True
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(timeout)
        return False

    def _ping(self, budget: float | None) -> bool:
        counters.probes += 1
        timeout = clip(self.faaspool_config.probe_timeout, budget)
        conn: Any = self
        try:
            self.set_timeout(timeout)
            self.send_packed_command(conn.pack_command("PING"), False)
            reply = conn.read_response()
            ok = reply in (b"PONG", "PONG")
        except (rx.ConnectionError, rx.TimeoutError, OSError):
            ok = False
        if not ok:
            counters.stale_found += 1
            self.disconnect()
            return False
        self.set_timeout(self.faaspool_config.socket_timeout)
        counters.reuses += 1
        return True

    # -- timeouts ------------------------------------------------------------------------

    def set_timeout(self, timeout: float | None, slack: float = 0.0) -> None:
        """Set the read/write timeout (applied at connect if there is no socket yet).

        The syscall is skipped when nothing changes, or when the socket's timeout is
        within ``slack`` of what is asked: deadline-bound commands then do not pay a
        syscall each time their budget moves by a few microseconds.
        """
        self._wanted = timeout
        current = self._timeout
        if timeout == current or self._sock is None:
            return
        if timeout is not None and current is not None and abs(current - timeout) <= slack:
            return
        self._sock.settimeout(timeout)
        self._timeout = timeout

    def set_budget(self, budget: float | None) -> None:
        """Bound the next connect by ``budget`` seconds (None: configured timeouts)."""
        self._budget = budget

    # -- closing -------------------------------------------------------------------------

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._poller = None
        self.session = 0
        self.in_flight = False
        self._timeout = self._wanted = self.faaspool_config.socket_timeout
        super().disconnect(*args, **kwargs)  # type: ignore[misc]

    def is_clean(self) -> bool:
        """True when the connection may go back to the pool as it is."""
        return not self.in_flight and not self.session

    def is_sticky(self) -> bool:
        return bool(self.session & STICKY)


class Connection(FaaspoolConnectionMixin, rc.Connection):  # type: ignore[misc]
    """A TCP connection to Redis with faaspool's reuse checks."""

    def __init__(self, *, faaspool_config: Config, **kwargs: Any) -> None:
        self._faaspool_init(faaspool_config)
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    def _connect(self) -> socket.socket:
        return self._tcp_socket(self.host, self.port)

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock is not None:
            return
        super().connect_check_health(check_health=check_health, retry_socket_connect=False)


class SSLConnection(Connection):
    """A TLS connection: the context is built once per configuration, the session is
    resumed on reconnect, and a failed handshake says what is wrong in plain words."""

    _plain_hint = False

    def _connect(self) -> socket.socket:
        cfg = self.faaspool_config
        ctx = _tls.context(cfg)
        sock = self._tcp_socket(self.host, self.port)
        # The TLS handshake is bounded like a connect, then reads fall back to socket_timeout.
        sock.settimeout(clip(cfg.socket_connect_timeout, self._budget))
        try:
            tls = ctx.wrap_socket(
                sock, server_hostname=self.host, session=_sessions.get(cfg)
            )
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise _tls.explain(exc, cfg) from None
        tls.settimeout(clip(cfg.socket_timeout, self._budget))
        return tls

    def on_connect_check_health(self, check_health: bool = True) -> None:
        super().on_connect_check_health(check_health)
        # A TLS 1.3 session ticket arrives right after the handshake, before the replies
        # just read: keep it for the next reconnect.
        sock = self._sock
        if isinstance(sock, ssl.SSLSocket) and sock.session is not None:
            _sessions[self.faaspool_config] = sock.session


# The last TLS session per configuration, so a reconnect resumes instead of verifying the
# server's certificate chain again.
_sessions: dict[Config, ssl.SSLSession] = {}

