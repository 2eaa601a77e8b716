"""faaspool.aio behind the sync surface the shared fault scenarios call (see api.py).

Every call runs to completion on one persistent event loop owned by the `AsyncApi`, the
way `faaspool.aio.run` drives an async Lambda handler: the loop runs only during a call,
so a server's FIN or RST waits in the kernel until the next one, as on a frozen
instance. A Task copies the caller's context, so a sync ``with api.invocation(...)``
scope is the scope of the coroutines run inside it. Calls from several threads take
turns on the loop.
"""

from __future__ import annotations

import inspect
import select
import sys
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio.client as aclient

import faaspool
import faaspool.aio
from faaspool import _cache as sync_cache
from faaspool import _scope
from faaspool.aio import _cache as aio_cache

from .api import wait_until

T = TypeVar("T")


class AsyncApi:
    """faaspool.aio, as the scenarios call it."""

    name = "aio"

    def __init__(self) -> None:
        # The leak guard warns once per site and process; each scenario starts unwarned.
        _scope._warned_sites.clear()
        self.runner = faaspool.aio.Runner()
        self._turn = threading.Lock()
        self._views: dict[int, tuple[Any, Blocking]] = {}

    # -- the scenario surface ---------------------------------------------------------

    def get_redis(self, url: str | None = None, **options: Any) -> Blocking:
        async def get() -> Any:
            return faaspool.aio.get_redis(url, **options)

        view: Blocking = self.view(self.run(get()))
        return view

    def invocation(self, **kwargs: Any) -> Any:
        return faaspool.invocation(**kwargs)

    def dedicated(self, client: Blocking) -> BlockingDedicated:
        return BlockingDedicated(self, client)

    def pool_of(self, client: Blocking) -> Any:
        return client.target.connection_pool

    def wait_for_server_close(self, client: Blocking, timeout: float = 10.0) -> None:
        """Wait until the server's close has reached every idle pooled socket."""
        pool = self.pool_of(client)
        wait_until(lambda: _idle_sockets_closed(pool), timeout, "server close")

    def clear(self) -> None:
        aio_cache.clear()
        sync_cache.clear()
        self._views.clear()

    def close(self) -> None:
        self.clear()
        self.runner.close()
        _scope._warned_sites.clear()

    # -- plumbing ---------------------------------------------------------------------

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to completion on the api's loop (one caller at a time)."""
        with self._turn:
            return self.runner.loop.run_until_complete(awaitable)

    def view(self, target: Any) -> Any:
        """The blocking view of an asyncio client, pipeline or pub/sub; others as they are."""
        if not isinstance(target, aclient.Redis | aclient.PubSub):
            return target
        known = self._views.get(id(target))
        if known is None or known[0] is not target:
            known = (target, Blocking(self, target))
            self._views[id(target)] = known
        return known[1]


class Blocking:
    """A sync view of an asyncio object: awaitable results are run to completion."""

    def __init__(self, api: AsyncApi, target: Any) -> None:
        self.api = api
        self.target = target

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.target, name)
        if not callable(value):
            return value
        return self._blocking(value)

    def _blocking(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isawaitable(result):
                result = self.api.run(result)
            return self.api.view(result)

        return call

    def __enter__(self) -> Blocking:
        self.api.run(self.target.__aenter__())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.api.run(self.target.__aexit__(exc_type, exc, tb))

    def __len__(self) -> int:
        return len(self.target)

    def __repr__(self) -> str:
        return repr(self.target)


class BlockingDedicated:
    """``with api.dedicated(client) as conn`` over ``async with faaspool.dedicated(...)``."""

    def __init__(self, api: AsyncApi, client: Blocking) -> None:
        self.api = api
        self.inner = faaspool.dedicated(client.target)

    def __enter__(self) -> Blocking:
        caller = sys._getframe(1)
        bound = self.api.run(self.inner.__aenter__())
        # The acquiring coroutine ran inside this facade; the site that matters to the
        # leak guard's warning is the scenario line that called us.
        conn = self.inner._async._conn
        conn.lease_site = (
            f"{caller.f_code.co_filename}:{caller.f_lineno} in {caller.f_code.co_name}()"
        )
        view: Blocking = self.api.view(bound)
        return view

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.api.run(self.inner.__aexit__(exc_type, exc, tb))


def _idle_sockets_closed(pool: Any) -> bool:
    for conn in list(pool._available_connections):
        sock = conn._raw
        if sock is None:
            continue
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLHUP)
        if not poller.poll(0):
            return False
    return True
