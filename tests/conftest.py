from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from faaspool import _cache, _scope

pytest_plugins = ["tests.support.fixtures"]

API_PARAMS = ["sync", "aio"]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts with no cached clients and leaves none behind."""
    _cache.clear()
    _scope._warned_sites.clear()
    yield
    _cache.clear()


@pytest.fixture(params=API_PARAMS)
def api(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The client API under test: the sync core (and faaspool.aio when present)."""
    if request.param == "sync":
        from tests.support.api import SyncApi

        impl: Any = SyncApi()
    else:
        from tests.support.aio_api import AsyncApi

        impl = AsyncApi()
    try:
        yield impl
    finally:
        impl.close()
