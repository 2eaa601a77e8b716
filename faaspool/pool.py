"""The bounded, deadline-aware connection pool.

A subclass of redis-py's `ConnectionPool`, so every part of redis-py that borrows a
connection (pipelines, pub/sub, locks) keeps working; checkout and return are replaced,
not wrapped, so reuse costs less than redis-py's own path.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig
from redis.retry import Retry

from . import _deadline, _runtime, _scope
from ._config import Config
from ._errors import PoolExhaustedError
from ._stats import counters
from .connection import Connection, SSLConnection

_NO_RETRY = Retry(NoBackoff(), 0)
def exhausted_error(config: Config, waited: float, budget: float | None) -> PoolExhaustedError:
    """The error for a pool whose every connection stayed out for ``waited`` seconds."""
    cut_by_deadline = budget is not None and budget < config.pool_timeout
    if cut_by_deadline:
        counters.deadline_hits += 1
    return PoolExhaustedError(
        f"all {config.max_connections} connections of the pool for {config.address} "
        f"(max_connections={config.max_connections}) stayed checked out for "
        f"{waited * 1000:.0f} ms"
        + (" (the invocation's deadline)" if cut_by_deadline else " (pool_timeout)")
        + ". Raise max_connections (argument or FAASPOOL_MAX_CONNECTIONS), or release "
        "dedicated connections and pub/sub clients sooner."
    )


def connection_kwargs(config: Config) -> dict[str, Any]:
    """The keyword arguments redis-py's connection classes take for ``config``."""
    from redis.driver_info import DriverInfo

    from . import __version__

    driver = DriverInfo().add_upstream_driver("faaspool", __version__)
    return {
        "faaspool_config": config,
        "host": config.host,
        "port": config.port,
        "db": config.db,
        "username": config.username,
        "password": config.password,
        "socket_timeout": config.socket_timeout,
        "socket_connect_timeout": config.socket_connect_timeout,
        "decode_responses": config.decode_responses,
        "encoding": config.encoding,
        "protocol": config.protocol,
        "client_name": config.default_client_name(),
        "driver_info": driver,
        "retry": _NO_RETRY,
    }


class ConnectionPool(redis.ConnectionPool):
    """At most ``max_connections`` connections, handed out after a liveness check.

    Waiting for a free connection is bounded by the invocation's deadline and
    ``pool_timeout``; running out raises `PoolExhaustedError` naming the limit.
    """

    def __init__(self, config: Config, connection_class: type[Any] | None = None) -> None:
        self.faaspool_config = config
        if connection_class is None:
            connection_class = SSLConnection if config.tls else Connection
        self._generation = 0
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
        self._created_connections = 0
        self._available_connections: list[Any] = []
        self._in_use_connections: set[Any] = set()
        self._available = threading.Condition(self._lock)
        self.pid = os.getpid()

    # -- checkout -------------------------------------------------------------------------

    def checkout(self, scope: Any, budget: float | None) -> Any:
        """Hand out a connection that passed its liveness check (or has no socket yet)."""
        if self.pid != _runtime.pid:
            self._checkpid()
        with self._lock:
            if self._available_connections:
                conn = self._available_connections.pop()
            elif self._created_connections < self.max_connections:
                self._created_connections += 1
                conn = self.make_connection()
            else:
                conn = self._wait_for_connection(budget)
            self._in_use_connections.add(conn)
            conn.scope = scope
            if scope is not None:
                scope.out += 1
        if conn._sock is not None:
            now = time.monotonic()
            if conn.generation != self._generation:
                conn.disconnect()
            else:
                conn.probe(now, budget)
        conn.generation = self._generation
        return conn

    def _wait_for_connection(self, budget: float | None) -> Any:
        cfg = self.faaspool_config
        limit = cfg.pool_timeout if budget is None else min(cfg.pool_timeout, budget)
        counters.pool_waits += 1
        end = time.monotonic() + limit
        while not self._available_connections:
            left = end - time.monotonic()
            if (left <= 0 or not self._available.wait(left)) and not self._available_connections:
                raise exhausted_error(cfg, limit, budget)
        conn = self._available_connections.pop()
        return conn


    def make_connection(self) -> Any:
        return self.connection_class(**self.connection_kwargs)

    def get_connection(self, command_name: Any = None, *keys: Any, **options: Any) -> Any:
        """Checkout for redis-py's own borrowers (pipelines, pub/sub, locks)."""
        scope = _scope.current.get()
        conn = self.checkout(scope, _deadline.budget(scope, self.faaspool_config))
        conn.lease_site = _scope.caller_site()
        # These borrowers read with redis-py's own timeouts, not a deadline-bound one.
        conn.set_timeout(self.faaspool_config.socket_timeout)
        return conn

    # -- return ---------------------------------------------------------------------------

    def release(self, connection: Any) -> None:
        """Take a connection back; one with leftover session state is closed first."""
        if connection.pid != _runtime.pid:
            return
        if connection._sock is not None and not connection.is_clean():
            counters.dirty_discarded += 1
            connection.disconnect()
        connection.last_used = time.monotonic()
        connection.lease_site = None
        connection.set_budget(None)
        with self._lock:
            try:
                self._in_use_connections.remove(connection)
            except KeyError:
                return
            scope = connection.scope
            if scope is not None:
                scope.out -= 1
                connection.scope = None
            self._available_connections.append(connection)
            self._available.notify()

    def checked_out_by(self, scope: Any) -> list[Any]:
        with self._lock:
            return [c for c in self._in_use_connections if c.scope is scope]

    def reclaim(self, connection: Any) -> bool:
        """Return a leaked connection if clean, else close it. True if it was returned."""
        clean = connection._sock is None or connection.is_clean()
        if not clean:
            connection.disconnect()
        # An abandoned pub/sub would otherwise re-subscribe on the next user's reconnect.
        connection._connect_callbacks = []
        self.release(connection)
        return clean

    # -- failover and shutdown ------------------------------------------------------------

    def invalidate(self) -> None:
        """Drop every socket: idle ones now, checked-out ones at their next checkout."""
        counters.failovers += 1
        with self._lock:
            self._generation += 1
            idle = list(self._available_connections)
        for conn in idle:
            conn.disconnect()

    def disconnect(self, inuse_connections: bool = True) -> None:
        with self._lock:
            conns = list(self._available_connections)
            if inuse_connections:
                conns.extend(self._in_use_connections)
        for conn in conns:
            conn.disconnect()

    def get_connection_count(self) -> list[tuple[int, dict[str, Any]]]:
        return []
