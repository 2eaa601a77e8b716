"""faaspool for `redis.asyncio`: the same guarantees, one pool per event loop.

``get_redis()`` returns a cached `redis.asyncio.Redis` for the running loop; ``run()``
runs an async handler on a loop that persists across invocations, so its connections
do too. Imported only when used: ``import faaspool`` does not load asyncio.
"""

from __future__ import annotations

from .._scope import Invocation as invocation
from ._cache import client_for, close_all, get_redis
from ._dedicated import dedicated
from ._errors import WrongLoopError
from ._runner import Runner, run
from .client import Pipeline, Redis
from .pool import ConnectionPool

__all__ = [
    "ConnectionPool",
    "Pipeline",
    "Redis",
    "Runner",
    "WrongLoopError",
    "client_for",
    "close_all",
    "dedicated",
    "get_redis",
    "invocation",
    "run",
]
