"""Asyncio connections: redis-py's, plus what reuse inside a FaaS instance needs.

The only asyncio classes that touch sockets. On top of `redis.asyncio.Connection` they
add the pipelined handshake (one round trip), a zero-round-trip liveness check with an
idle PING, a flag that tells whether any byte of the current command was written, the
session state a returned connection must not carry, and timeouts clipped by the
invocation's budget. The decisions come from the pure modules shared with the sync core.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import select
import socket
from collections.abc import Iterable
from typing import Any

import redis.asyncio.connection as rac
import redis.exceptions as rx
from redis._parsers import _AsyncHiredisParser

from .. import _handshake, _policy, _sockets, _tls
from .._commands import STICKY
from .._config import Config
from .._deadline import clip
from .._stats import counters

# What `Connection.check` finds on an idle connection.
OK = 0  # reuse as it is
STALE = 1  # unsafe: discard before use
PING = 2  # idle for long: a PING must answer first
UNSURE = 3  # a TLS socket turned readable: let the loop read it, then look again

_AddrInfo = tuple[int, int, int, str, Any]


class Connection(rac.Connection):
    """A TCP (or TLS, per the configuration) connection with faaspool's reuse checks."""

    # redis-py's private state, used here as redis-py itself uses it.
    _reader: Any
    _writer: Any
    _parser: Any

    def __init__(self, *, faaspool_config: Config, **kwargs: Any) -> None:
        self.faaspool_config = faaspool_config
        self.sent = False  # some byte of the current command may have reached the socket
        self.in_flight = False  # a command was sent and its reply not yet fully read
        self.session = 0  # _commands bits: MULTI, WATCH, DB, STICKY
        self.last_used = 0.0
        self.lease_site: str | None = None
        self.scope: Any = None
        self.generation = 0
        self.ever_connected = False
        self._raw: socket.socket | None = None
        self._poller: Any = None
        self._budget: float | None = None
        self._tls_handshake = False
        super().__init__(**kwargs)
        self._hiredis = isinstance(self._parser, _AsyncHiredisParser)

    # -- connecting -----------------------------------------------------------------

    async def connect(self) -> None:
        await self.connect_check_health()

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """Open the socket and run the pipelined handshake, once: the client retries."""
        if self._writer is not None:
            return
        cfg = self.faaspool_config
        self._tls_handshake = False
        try:
            await asyncio.wait_for(self._open(), clip(cfg.socket_connect_timeout, self._budget))
        except (TimeoutError, asyncio.TimeoutError):
            if self._tls_handshake:
                raise _tls.explain(TimeoutError(), cfg) from None
            raise rx.TimeoutError(f"Timeout connecting to {self._host_error()}") from None
        except OSError as exc:
            if self._tls_handshake:
                raise _tls.explain(exc, cfg) from None
            raise rx.ConnectionError(self._error_message(exc)) from exc
        try:
            await self.on_connect_check_health(check_health=check_health)
        except BaseException:
            self.close_now()
            raise
        counters.connects += 1
        if self.ever_connected:
            counters.reconnects += 1
        self.ever_connected = True
        # Connect callbacks are how pub/sub resubscribes after a reconnect.
        self._connect_callbacks = [ref for ref in self._connect_callbacks if ref()]
        for ref in self._connect_callbacks:
            callback = ref()
            if callback is not None:
                result = callback(self)
                if inspect.isawaitable(result):
                    await result

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        infos: list[Any] = _literal_address(self.host, self.port) or await loop.getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )
        sock = await _connect_first(loop, infos)
        cfg = self.faaspool_config
        self._tls_handshake = cfg.tls
        try:
            reader, writer = await asyncio.open_connection(
                sock=sock,
                ssl=_tls.context(cfg) if cfg.tls else None,
                server_hostname=self.host if cfg.tls else None,
            )
        except BaseException:
            sock.close()
            raise
        self._tls_handshake = False
        poller = select.poll()
        poller.register(sock.fileno(), _sockets.POLL_FLAGS)
        self._reader, self._writer, self._raw, self._poller = reader, writer, sock, poller

    async def on_connect_check_health(self, check_health: bool = True) -> None:
        """Send the whole handshake in one write and read the replies together."""
        self._reset_himport_state()
        self._parser.on_connect(self)
        credentials: Any = None
        if self.credential_provider is not None:
            credentials = await self.credential_provider.get_credentials_async()
        elif self.username or self.password:
            credentials = (self.username, self.password) if self.username else (self.password,)
        driver: Any = self.driver_info
        steps = _handshake.commands(
            protocol=self.protocol,
            credentials=credentials,
            client_name=self.client_name,
            db=int(self.db),
            lib_name=driver.formatted_name if driver else None,
            lib_version=driver.lib_version if driver else None,
        )
        if not steps:
            return
        if not self._put(self.pack_commands([args for _, args in steps])):
            raise rx.ConnectionError(f"Error while writing to {self._host_error()}")
        if self._writer.transport.get_write_buffer_size():
            await self._drain()
        for index, (kind, _args) in enumerate(steps):
            try:
                reply = await self.read_response()
            except rx.ResponseError as exc:
                reply = exc
            except rx.ConnectionError as exc:
                if index == 0 and type(exc) is rx.ConnectionError and not self.faaspool_config.tls:
                    raise _handshake.expects_tls(exc) from exc
                raise
            if kind == _handshake.HELLO and not isinstance(reply, rx.ResponseError):
                self.handshake_metadata = reply
            _handshake.check(kind, reply, self.protocol)

    # -- sending ------------------------------------------------------------------------

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        name = args[0]
        if _policy.tracks_session(name):
            self._track_session(args)
        self.in_flight = True
        await self.send_packed_command(self.pack_command(*args), False)

    def _track_session(self, args: tuple[Any, ...]) -> None:
        name = _policy.command_name(args)
        if name in _policy.SESSION_NAMES:
            self.session = _policy.session_bits(name, args, self.faaspool_config.db, self.session)

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        """Write ``command``; ``sent`` turns True right before the first byte may leave."""
        if self._writer is None:
            await self.connect_check_health(check_health=False)
        if isinstance(command, str):
            command = command.encode()
        chunks = [command] if isinstance(command, bytes) else list(command)
        self.sent = True
        if not self._put(chunks):
            raise rx.ConnectionError(
                f"Error while writing to {self._host_error()}: the connection was lost"
            )
        if self._writer.transport.get_write_buffer_size():
            await self._drain()

    def _put(self, chunks: list[bytes]) -> bool:
        """Hand ``chunks`` to the transport; False (and closed) if the connection is gone.

        A plain transport's ``write`` calls ``send()`` at once and closes itself when that
        fails, so a transport found closing right after it means no byte left: ``sent`` is
        cleared. Over TLS the failure shows later, so ``sent`` stays as it was.
        """
        transport = self._writer.transport
        if transport.is_closing() or self._reader.at_eof():
            # A held connection is not checked out again: this is its check before a write.
            counters.stale_found += 1
            self.sent = False
            self.close_now()
            return False
        try:
            if len(chunks) == 1:
                transport.write(chunks[0])
            else:
                transport.writelines(chunks)
        except BaseException:
            self.close_now()
            raise
        if transport.is_closing():
            if not self.faaspool_config.tls:
                self.sent = False
            self.close_now()
            return False
        return True

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self._writer.drain(), self.socket_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            self.close_now()
            raise rx.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            self.close_now()
            raise rx.ConnectionError(
                f"Error while writing to {self._host_error()}: {exc}"
            ) from None
        except BaseException:
            self.close_now()
            raise

    # -- checking on reuse ----------------------------------------------------------------

    def check(self, now: float) -> int:
        """Judge an idle connection without a round trip: `OK`, `STALE`, `PING` or `UNSURE`.

        Anything readable while idle (EOF, RST, stray bytes), seen by the transport or
        still waiting in the kernel because the loop has not run since, is unsafe.
        """
        writer = self._writer
        if writer is None:
            return OK
        reader = self._reader
        if writer.transport.is_closing() or reader.at_eof() or reader._buffer:
            return STALE
        if self._parser_has_data():
            return STALE
        events = self._poller.poll(0)
        if events:
            if self.faaspool_config.tls and not events[0][1] & _sockets.CLOSED_FLAGS:
                return UNSURE
            return STALE
        if now - self.last_used >= self.faaspool_config.idle_probe_after:
            return PING
        return OK

    def _parser_has_data(self) -> bool:
        parser = self._parser
        if self._hiredis:
            return parser._reader is not None and bool(parser._reader.has_data())
        return bool(parser._buffer)

    async def settle(self, state: int, now: float, budget: float | None) -> bool:
        """Finish what `check` found: discard a stale socket, or PING an idle one.

        Returns True when the socket may be reused, False when it was closed.
        """
        if state == UNSURE:
            # Two loop turns: one to select the socket, one to run its read callback.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            state = self.check(now)
            if state == UNSURE:
                state = STALE
        if state == OK:
            counters.reuses += 1
            return True
        if state == STALE:
            counters.stale_found += 1
            self.close_now()
            return False
        return await self._ping(budget)

    async def _ping(self, budget: float | None) -> bool:
        counters.probes += 1
        cfg = self.faaspool_config
        self.socket_timeout = clip(cfg.probe_timeout, budget)
        try:
            await self.send_packed_command(self.pack_command("PING"), False)
            reply = await self.read_response()
            ok = reply in (b"PONG", "PONG")
        except (rx.ConnectionError, rx.TimeoutError, OSError):
            ok = False
        if not ok:
            counters.stale_found += 1
            self.close_now()
            return False
        self.socket_timeout = cfg.socket_timeout
        counters.reuses += 1
        return True

    # -- timeouts ------------------------------------------------------------------------

    def set_timeout(self, timeout: float | None, slack: float = 0.0) -> None:
        """The read and write timeout of the next command (None: wait for ever).

        Setting it costs nothing here (no syscall), so ``slack`` is not needed.
        """
        self.socket_timeout = timeout

    def set_budget(self, budget: float | None) -> None:
        """Bound the next connect by ``budget`` seconds (None: configured timeouts)."""
        self._budget = budget

    # -- closing -------------------------------------------------------------------------

    def close_now(self) -> None:
        """Drop the socket at once, synchronously; safe after its event loop closed."""
        writer, sock = self._writer, self._raw
        self._reader = self._writer = None
        self._raw = self._poller = None
        self.session = 0
        self.in_flight = False
        self.socket_timeout = self.faaspool_config.socket_timeout
        self._parser.on_disconnect()
        self._reset_himport_state()
        self._should_reconnect = False
        if writer is not None:
            # RuntimeError: its loop is closed, and closing the socket below is all that's left.
            with contextlib.suppress(RuntimeError):
                writer.transport.abort()
        if sock is not None:
            # The transport closes it only on the loop's next turn, which may never come.
            sock.close()

    async def disconnect(
        self,
        nowait: bool = False,
        error: Exception | None = None,
        failure_count: int | None = None,
        health_check_failed: bool = False,
    ) -> None:
        self.close_now()

    def _close(self) -> None:
        self.close_now()

    def is_clean(self) -> bool:
        """True when the connection may go back to the pool as it is."""
        return not self.in_flight and not self.session

    def is_sticky(self) -> bool:
        return bool(self.session & STICKY)


def _literal_address(host: str, port: int) -> list[_AddrInfo] | None:
    """The address of an IP literal, so it needs no resolver (and no executor thread)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]


async def _connect_first(loop: asyncio.AbstractEventLoop, infos: list[Any]) -> socket.socket:
    error: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for opt, value in _sockets.KEEPALIVE:
                sock.setsockopt(socket.IPPROTO_TCP, opt, value)
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error if error is not None else OSError("getaddrinfo returned no address")
