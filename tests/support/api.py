"""One surface for the fault scenarios, so each is written once and run against both
the sync core and faaspool.aio (whose facade lives in aio_api.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import faaspool
from faaspool import _cache


class SyncApi:
    """The sync core, as the scenarios call it."""

    name = "sync"

    def get_redis(self, url: str | None = None, **options: Any) -> Any:
        return faaspool.get_redis(url, **options)

    def invocation(self, **kwargs: Any) -> Any:
        return faaspool.invocation(**kwargs)

    def dedicated(self, client: Any) -> Any:
        return faaspool.dedicated(client)

    def pool_of(self, client: Any) -> Any:
        return client.connection_pool

    def clear(self) -> None:
        _cache.clear()

    def close(self) -> None:
        self.clear()


@contextlib.contextmanager
def stats_delta() -> Iterator[dict[str, int]]:
    """Yields a dict filled, at exit, with how much each counter grew inside the block."""
    before = faaspool.stats()
    delta: dict[str, int] = {}
    try:
        yield delta
    finally:
        after = faaspool.stats()
        delta.update({k: after[k] - before[k] for k in after})


def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true, failing after ``timeout`` seconds."""
    import time

    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def _idle_sockets_closed(pool: Any) -> bool:
    import select

    for conn in list(pool._available_connections):
        sock = conn._sock
        if sock is None:
            continue
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLHUP)
        if not poller.poll(0):
            return False
    return True


def _wait_for_server_close(self: SyncApi, client: Any, timeout: float = 10.0) -> None:
    """Wait until the server's close has reached every idle pooled socket."""
    wait_until(lambda: _idle_sockets_closed(client.connection_pool), timeout, "server close")


SyncApi.wait_for_server_close = _wait_for_server_close  # type: ignore[attr-defined]
