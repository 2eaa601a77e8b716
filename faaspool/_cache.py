"""The module-scope cache: one client per resolved configuration and process."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from . import _config, _runtime
from ._config import Config
from .client import Redis

_clients: dict[tuple[Config, int], Redis] = {}
# id(config) -> (config, pid, client): a decorator asks with the same Config object on every
# invocation, so an identity check spares hashing the whole configuration each time.
_by_identity: dict[int, tuple[Config, int, Redis]] = {}
_resolved: dict[Any, Config] = {}
_lock = threading.Lock()


def get_redis(url: str | None = None, **options: Any) -> Redis:
    """The cached `redis.Redis` for this configuration, created on first call.

    Lazy: nothing connects until the first command. The same URL and options return
    the same client for the life of the process; a forked child gets a fresh one.
    ``url`` defaults to ``$REDIS_URL``; options are listed in the README and may also
    come from ``FAASPOOL_<OPTION>`` variables (read when a configuration is first seen).
    """
    return client_for(resolve(url, options))


def resolve(url: str | None, options: dict[str, Any]) -> Config:
    """`_config.resolve`, memoised on the arguments and ``$REDIS_URL``."""
    try:
        key: Any = (url, os.environ.get(_config.URL_ENV), frozenset(options.items()))
        hash(key)
    except TypeError:
        return _config.resolve(url, options)
    config = _resolved.get(key)
    if config is None:
        config = _config.resolve(url, options)
        _resolved[key] = config
    return config


def client_for(config: Config) -> Redis:
    """The cached client for an already resolved configuration."""
    pid = _runtime.pid
    hit = _by_identity.get(id(config))
    if hit is not None and hit[0] is config and hit[1] == pid:
        return hit[2]
    key = (config, pid)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                if config.tls:
                    from . import _tls

                    _tls.context(config)  # a bad CA file fails here, not mid-invocation
                _drop_other_processes()
                client = Redis.from_config(config)
                _clients[key] = client
    _by_identity[id(config)] = (config, pid, client)
    return client


def _drop_other_processes() -> None:
    # A forked child must not touch its parent's sockets; just forget those clients.
    pid = os.getpid()
    for key in [k for k in _clients if k[1] != pid]:
        del _clients[key]


def close_all() -> None:
    """Close every cached connection of this process (SIGTERM, SnapStart, tests)."""
    with _lock:
        clients = [c for (_, pid), c in _clients.items() if pid == os.getpid()]
    for client in clients:
        with contextlib.suppress(Exception):  # best effort on the way out
            client.connection_pool.disconnect()


def refresh_identity() -> None:
    """After a SnapStart restore: a new instance id, and every cached pool's connections
    named with it from their next connect on (each clone must show as itself)."""
    _runtime.new_instance_id()
    close_all()
    with _lock:
        clients = list(_clients.values())
    for client in clients:
        pool: Any = client.connection_pool
        name = pool.faaspool_config.default_client_name()
        pool.connection_kwargs["client_name"] = name
        with pool._lock:
            conns = list(pool._available_connections) + list(pool._in_use_connections)
        for conn in conns:
            conn.client_name = name


def clear() -> None:
    """Forget every cached client and resolved configuration, closing their sockets."""
    close_all()
    with _lock:
        _clients.clear()
        _resolved.clear()
        _by_identity.clear()
