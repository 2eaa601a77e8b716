"""faaspool: safe Redis connection reuse for serverless functions.

``get_redis()`` returns a module-scope-cached `redis.Redis` whose connections survive
between invocations of a warm instance and are checked before every reuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    AmbiguousWriteError,
    ConfigError,
    DeadlineExceeded,
    FaaspoolError,
    PoolExhaustedError,
    TLSError,
)
from ._scope import Invocation as invocation
from ._scope import remaining
from ._stats import stats

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import aio
    from ._cache import close_all, get_redis
    from ._config import Config
    from ._decorator import with_redis
    from ._dedicated import dedicated

_LAZY = {
    "get_redis": ("._cache", "get_redis"),
    "close_all": ("._cache", "close_all"),
    "dedicated": ("._dedicated", "dedicated"),
    "Config": ("._config", "Config"),
    "with_redis": ("._decorator", "with_redis"),
}


def __getattr__(name: str) -> Any:
    # Heavier parts load on first use, so `import faaspool` stays cheap on cold start.
    if name == "aio":
        import importlib

        module = importlib.import_module(".aio", __name__)
        globals()["aio"] = module
        return module
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'faaspool' has no attribute {name!r}")


__all__ = [
    "AmbiguousWriteError",
    "Config",
    "ConfigError",
    "DeadlineExceeded",
    "FaaspoolError",
    "PoolExhaustedError",
    "TLSError",
    "__version__",
    "aio",
    "close_all",
    "dedicated",
    "get_redis",
    "invocation",
    "remaining",
    "stats",
    "with_redis",
]
