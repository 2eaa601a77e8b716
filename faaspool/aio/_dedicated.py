"""One connection held for a stretch of async work: blocking commands, WATCH
transactions, subscriptions."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from .. import _deadline, _scope
from .pool import ConnectionPool

if TYPE_CHECKING:
    from .client import Redis


class dedicated:  # used like a function: `async with dedicated(client) as r:`
    """Check out one connection of ``client``'s pool for the ``async with`` block.

    Yields a `redis.asyncio.Redis` bound to that connection: use it for BLPOP, XREAD
    BLOCK, WAIT, SUBSCRIBE, or WATCH/MULTI/EXEC. On exit the connection goes back to the
    pool if its session is clean, or is closed if its state is unknown (an exception or
    cancellation mid-command, an open MULTI or WATCH, a subscription, a changed db).
    Inside an invocation scope, a connection never released is reclaimed at its end.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._conn: Any = None
        self._bound: Any = None

    async def __aenter__(self) -> Redis:
        pool = self._client.connection_pool
        if not isinstance(pool, ConnectionPool):
            raise TypeError(
                "faaspool.aio.dedicated() needs a client from faaspool.aio.get_redis(); "
                "for a sync client use `with faaspool.dedicated(client)`"
            )
        scope = _scope.current.get()
        conn = await pool.checkout(scope, _deadline.budget(scope, pool.faaspool_config))
        conn.lease_site = _scope.caller_site()
        self._conn = conn
        bound = type(self._client)(connection_pool=pool)
        bound.faaspool_config = pool.faaspool_config
        bound.connection = conn
        self._bound = bound
        return bound

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._bound.connection = None
        if exc_type is not None and conn.in_flight:
            conn.close_now()
        self._client.connection_pool.release_now(conn)
