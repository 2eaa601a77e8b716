"""The module-scope cache for asyncio: one client per configuration, process and event loop.

A `redis.asyncio` client belongs to the loop its sockets were made on, so the loop is
part of the key. An entry lives as long as its loop: the loop's own async-generator
shutdown (which ``asyncio.run`` and `Runner.close` perform) closes its sockets and drops
it, and entries of loops closed some other way are dropped when the next loop arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncGenerator
from typing import Any

from .. import _runtime, _tls
from .._cache import resolve
from .._config import Config
from . import _runner
from .client import Redis

_Key = tuple[Config, int, asyncio.AbstractEventLoop]


class _Entry:
    __slots__ = ("client", "watcher")

    def __init__(self, client: Redis, watcher: AsyncGenerator[None, None] | None) -> None:
        self.client = client
        self.watcher = watcher


_entries: dict[_Key, _Entry] = {}
# Reentrant: finishing a watcher runs its cleanup, which takes the lock again.
_lock = threading.RLock()


def get_redis(url: str | None = None, **options: Any) -> Redis:
    """The cached `redis.asyncio.Redis` for this configuration and the running loop.

    Lazy: nothing connects until the first command. Inside a coroutine it returns the
    running loop's client; called where no loop runs (module scope), the client of this
    thread's persistent loop, the one `faaspool.aio.run` uses. Options are those of
    `faaspool.get_redis`.
    """
    return client_for(resolve(url, options))


def client_for(config: Config) -> Redis:
    """The cached client for an already resolved configuration and the current loop."""
    try:
        loop = asyncio.get_running_loop()
        running = True
    except RuntimeError:
        loop = _runner.default().loop
        running = False
    key = (config, _runtime.pid, loop)
    entry = _entries.get(key)
    if entry is not None:
        return entry.client
    with _lock:
        entry = _entries.get(key)
        if entry is None:
            if config.tls:
                _tls.context(config)  # a bad CA file fails here, not mid-invocation
            _prune()
            client = Redis.from_config(config)
            client.connection_pool.loop = loop
            entry = _Entry(client, _watch(key) if running else None)
            _entries[key] = entry
    return entry.client


def _watch(key: _Key) -> AsyncGenerator[None, None]:
    """An async generator the running loop registers; its shutdown releases ``key``."""

    async def watcher() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            _release(key)

    gen = watcher()
    # The first step registers the generator with the running loop's shutdown_asyncgens().
    with contextlib.suppress(StopIteration):
        gen.asend(None).send(None)
    return gen


def _finish(gen: AsyncGenerator[None, None] | None) -> None:
    # Close a suspended watcher synchronously, so the loop's finalizer never has to.
    if gen is None:
        return
    with contextlib.suppress(StopIteration, RuntimeError):
        gen.aclose().send(None)


def _release(key: _Key) -> None:
    with _lock:
        entry = _entries.pop(key, None)
    if entry is not None:
        entry.client.connection_pool.close_now()


def _prune() -> None:
    pid = os.getpid()
    with _lock:
        dead = [k for k in _entries if k[1] != pid or k[2].is_closed()]
        gone = [(k, _entries.pop(k)) for k in dead]
    for key, entry in gone:
        if key[1] == pid:
            entry.client.connection_pool.close_now()
        # A forked child never touches its parent's sockets: it only forgets them.
        _finish(entry.watcher)


def forget_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Close and drop every entry of ``loop`` (called before the loop closes)."""
    with _lock:
        keys = [k for k in _entries if k[2] is loop]
    for key in keys:
        with _lock:
            entry = _entries.pop(key, None)
        if entry is not None:
            entry.client.connection_pool.close_now()
            _finish(entry.watcher)


def close_all() -> None:
    """Close every cached connection of this process (SIGTERM, SnapStart, tests).

    The clients stay cached and reconnect lazily on their next command; entries of
    closed loops are dropped.
    """
    pid = os.getpid()
    with _lock:
        clients = [e.client for k, e in _entries.items() if k[1] == pid]
    for client in clients:
        with contextlib.suppress(Exception):  # best effort on the way out
            client.connection_pool.close_threadsafe()
    _prune()


def clear() -> None:
    """Forget every cached client, closing their sockets."""
    close_all()
    with _lock:
        gone = list(_entries.values())
        _entries.clear()
    for entry in gone:
        _finish(entry.watcher)


def size() -> int:
    """How many clients are cached (all loops, this process)."""
    return len(_entries)
