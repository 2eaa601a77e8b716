"""The bounded, deadline-aware asyncio connection pool: one per event loop.

A subclass of `redis.asyncio.ConnectionPool`, so every part of redis-py that borrows a
connection (pipelines, pub/sub, locks) keeps working. Checkout and return are replaced:
a pooled socket is checked before it is handed out (redis-py 8.1's own pool hands out
sockets the server already closed, redis/redis-py#4252), waiting for a free connection is
bounded by the deadline, and a pool refuses to run on a loop it was not made on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any

import redis.asyncio.connection as rac
from redis.maint_notifications import MaintNotificationsConfig

from .. import _deadline, _scope
from .._config import Config
from .._stats import counters
from ..pool import connection_kwargs, exhausted_error
from ._errors import WrongLoopError
from .connection import OK, Connection


class ConnectionPool(rac.ConnectionPool):
    """At most ``max_connections`` connections, handed out after a liveness check.

    Bound to the event loop it is first used on. Waiting for a free connection is
    bounded by the invocation's deadline and ``pool_timeout``; running out raises
    `PoolExhaustedError` naming the limit.
    """

    def __init__(self, config: Config, connection_class: type[Any] = Connection) -> None:
        self.faaspool_config = config
        self.loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._created = 0
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        super().__init__(
            connection_class=connection_class,
            max_connections=config.max_connections,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
            **connection_kwargs(config),
        )
        _scope.pools.add(self)

    def __repr__(self) -> str:
        cfg = self.faaspool_config
        return (
            f"<{type(self).__module__}.{type(self).__name__}({cfg.redacted_url()}, "
            f"name={cfg.name!r}, max_connections={cfg.max_connections})>"
        )

    def reset(self) -> None:
        self._available_connections: list[Any] = []
        self._in_use_connections: set[Any] = set()
        self._created = 0

    # -- checkout -------------------------------------------------------------------------

    async def checkout(self, scope: Any, budget: float | None) -> Any:
        """Hand out a connection that passed its liveness check (or has no socket yet)."""
        running = asyncio.get_running_loop()
        if running is not self.loop:
            self._bind(running)
        available = self._available_connections
        if available:
            conn = available.pop()
        elif self._created < self.max_connections:
            self._created += 1
            conn = self.make_connection()
        else:
            conn = await self._wait(running, budget)
        self._in_use_connections.add(conn)
        conn.scope = scope
        if scope is not None:
            scope.out += 1
        if conn._writer is not None:
            if conn.generation != self._generation:
                conn.close_now()
            else:
                now = time.monotonic()
                state = conn.check(now)
                if state == OK:
                    counters.reuses += 1
                else:
                    try:
                        await conn.settle(state, now, budget)
                    except BaseException:
                        self.release_now(conn)
                        raise
        conn.generation = self._generation
        return conn

    def _bind(self, running: asyncio.AbstractEventLoop) -> None:
        if self.loop is None:
            self.loop = running
            return
        raise WrongLoopError(
            f"this faaspool.aio client for {self.faaspool_config.address} belongs to "
            "another event loop. Call faaspool.aio.get_redis() inside the running loop "
            "(it returns that loop's client), or run handlers with faaspool.aio.run(), "
            "whose loop persists across invocations."
        )

    async def _wait(self, loop: asyncio.AbstractEventLoop, budget: float | None) -> Any:
        cfg = self.faaspool_config
        limit = cfg.pool_timeout if budget is None else min(cfg.pool_timeout, budget)
        counters.pool_waits += 1
        waiter: asyncio.Future[Any] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(limit, _expire, waiter)
        try:
            conn = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                # Handed a connection in the same turn we were cancelled: pass it on.
                self._put_back(waiter.result())
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
        if conn is None:
            raise exhausted_error(self.faaspool_config, limit, budget)
        return conn

    def make_connection(self) -> Any:
        return self.connection_class(**self.connection_kwargs)

    async def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        """Checkout for redis-py's own borrowers (pipelines, pub/sub, locks)."""
        scope = _scope.current.get()
        conn = await self.checkout(scope, _deadline.budget(scope, self.faaspool_config))
        conn.lease_site = _scope.caller_site()
        return conn

    def get_available_connection(self) -> Any:
        raise NotImplementedError("faaspool.aio pools hand out connections via checkout()")

    def can_get_connection(self) -> bool:
        return bool(self._available_connections) or self._created < self.max_connections

    async def ensure_connection(self, connection: Any) -> None:
        await connection.connect()

    # -- return ---------------------------------------------------------------------------

    async def release(self, connection: Any) -> None:
        """Take a connection back; one with leftover session state is closed first."""
        self.release_now(connection)

    def release_now(self, connection: Any) -> None:
        """`release`, synchronously: what the client's hot path calls."""
        try:
            self._in_use_connections.remove(connection)
        except KeyError:
            return  # not ours, or already back
        if connection.scope is not None:
            connection.scope.out -= 1
        if connection._writer is not None and not connection.is_clean():
            counters.dirty_discarded += 1
            connection.close_now()
        connection.last_used = time.monotonic()
        connection.scope = None
        connection.lease_site = None
        connection._budget = None
        self._put_back(connection)

    def _put_back(self, connection: Any) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._available_connections.append(connection)

    def checked_out_by(self, scope: Any) -> list[Any]:
        return [c for c in list(self._in_use_connections) if c.scope is scope]

    def reclaim(self, connection: Any) -> bool:
        """Return a leaked connection if clean, else close it. True if it was returned.

        Synchronous, callable from any thread: when the pool's loop runs in another
        thread, the work is handed to that loop.
        """
        clean = connection._writer is None or connection.is_clean()
        loop = self.loop
        if loop is not None and loop.is_running() and not _running_here(loop):
            loop.call_soon_threadsafe(self._reclaim_here, connection, clean)
        else:
            self._reclaim_here(connection, clean)
        return clean

    def _reclaim_here(self, connection: Any, clean: bool) -> None:
        if not clean:
            connection.close_now()
        # An abandoned pub/sub would otherwise re-subscribe on the next user's reconnect.
        connection._connect_callbacks = []
        self.release_now(connection)

    # -- failover and shutdown ------------------------------------------------------------

    def invalidate(self) -> None:
        """Drop every socket: idle ones now, checked-out ones at their next checkout."""
        counters.failovers += 1
        self._generation += 1
        for conn in list(self._available_connections):
            conn.close_now()

    def close_now(self, inuse_connections: bool = True) -> None:
        """Close the sockets at once, synchronously (idle ones, and in-use ones if asked)."""
        conns = list(self._available_connections)
        if inuse_connections:
            conns.extend(self._in_use_connections)
        for conn in conns:
            conn.close_now()

    def close_threadsafe(self) -> None:
        """`close_now`, from any thread: handed to the pool's loop if it runs elsewhere."""
        loop = self.loop
        if loop is not None and loop.is_running() and not _running_here(loop):
            loop.call_soon_threadsafe(self.close_now)
        else:
            self.close_now()

    async def disconnect(self, inuse_connections: bool = True) -> None:
        self.close_now(inuse_connections)

    async def aclose(self) -> None:
        self.close_now()

    async def update_active_connections_for_reconnect(self) -> None:
        self.invalidate()

    def set_retry(self, retry: Any) -> None:
        """Ignored: faaspool decides retries itself and never replays a write."""

    def get_connection_count(self) -> list[tuple[int, dict[str, Any]]]:
        return []


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _running_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
