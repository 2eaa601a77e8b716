"""pytest fixtures; load with ``pytest_plugins = ["tests.support.fixtures"]``.

Tests always get private servers. Only a test that requests
``external_redis_url`` sees $REDIS_URL.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.proxy import FaultProxy
from tests.support.server import SHARED_PORT, RedisServer

__all__ = [
    "FaultProxyFactory",
    "RedisServerFactory",
    "copy_example",
    "external_redis_url",
    "fault_proxy_factory",
    "module_redis_server",
    "redis_server",
    "redis_server_factory",
]

RedisServerFactory = Callable[..., RedisServer]
FaultProxyFactory = Callable[[RedisServer], FaultProxy]


def _close_all(closers: list[Callable[[], None]]) -> None:
    # Close everything even if one close fails, then report the first failure.
    errors: list[BaseException] = []
    for close in reversed(closers):
        try:
            close()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def _started() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A started private redis-server with default options."""
    yield from _started()


@pytest.fixture(scope="module")
def module_redis_server() -> Iterator[RedisServer]:
    """One private redis-server shared by a module's tests (for apps started once per module)."""
    yield from _started()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy_example(factory: pytest.TempPathFactory, name: str) -> Path:
    """A private copy of ``examples/<name>``: the local runners write logs beside the source."""
    target = factory.mktemp(f"{name}-example") / "app"
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture
def redis_server_factory() -> Iterator[RedisServerFactory]:
    """``factory(**RedisServer kwargs) -> started RedisServer``; all closed at teardown."""
    closers: list[Callable[[], None]] = []

    def factory(**kwargs: Any) -> RedisServer:
        server = RedisServer(**kwargs)
        closers.append(server.close)
        return server.start()

    try:
        yield factory
    finally:
        _close_all(closers)


@pytest.fixture
def fault_proxy_factory() -> Iterator[FaultProxyFactory]:
    """``factory(target: RedisServer) -> FaultProxy`` in front of it; all closed at teardown."""
    closers: list[Callable[[], None]] = []

    def factory(target: RedisServer) -> FaultProxy:
        proxy = FaultProxy(target.host, target.port)
        closers.append(proxy.close)
        return proxy

    try:
        yield factory
    finally:
        _close_all(closers)


@pytest.fixture
def external_redis_url() -> str:
    """$REDIS_URL, for tests that explicitly target an external server.

    Skips when unset, and refuses the machine's shared server on port 6379.
    """
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set")
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost", "::1") and (parts.port or 6379) == SHARED_PORT:
        pytest.skip("REDIS_URL points at the machine's shared server on port 6379")
    return url
