"""One connection held for a stretch of work: blocking commands, WATCH transactions,
subscriptions."""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from . import _deadline, _scope

if TYPE_CHECKING:
    from .aio.client import Redis as AsyncRedis
    from .client import Redis


class dedicated:
    """Check out one connection of ``client``'s pool for the ``with`` block.

    Yields a `redis.Redis` bound to that connection: use it for BLPOP, XREAD BLOCK,
    WAIT, SUBSCRIBE, or WATCH/MULTI/EXEC. On exit the connection goes back to the pool
    if its session is clean, or is closed if its state is unknown (an exception
    mid-command, an open MULTI or WATCH, a subscription, a changed db). Inside an
    invocation scope, a connection never released is reclaimed at the scope's end.
    """

    def __init__(self, client: Redis | AsyncRedis) -> None:
        self._client: Any = client
        self._conn: Any = None
        self._bound: Any = None
        self._async: Any = None

    def __enter__(self) -> Any:
        pool: Any = self._client.connection_pool
        scope = _scope.current.get()
        conn = pool.checkout(scope, _deadline.budget(scope, pool.faaspool_config))
        conn.lease_site = _scope.caller_site()
        self._conn = conn
        bound = type(self._client)(connection_pool=pool)
        bound.faaspool_config = pool.faaspool_config
        bound.connection = conn
        self._bound = bound
        return bound

    def __exit__(
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
            conn.disconnect()
        self._client.connection_pool.release(conn)

    async def __aenter__(self) -> Any:
        """``async with faaspool.dedicated(client)``, for a faaspool.aio client."""
        from .aio._dedicated import dedicated as async_dedicated

        self._async = async_dedicated(self._client)
        return await self._async.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        await self._async.__aexit__(exc_type, exc, tb)
