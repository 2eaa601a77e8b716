"""Google Cloud Functions / Cloud Run functions: ``@with_redis`` for functions-framework.

Works with ``@functions_framework.http``, ``@functions_framework.cloud_event`` and their
``functions_framework.aio`` forms, above or below them: the wrapper is a plain function
that keeps the handler's ``__name__`` (the framework registers by name), and an
``async def`` handler gets an ``async def`` wrapper (the framework tells them apart with
`inspect.iscoroutinefunction`).

The deadline of each request is ``timeout`` (argument), else ``$FAASPOOL_TIMEOUT``, else
``$CLOUD_RUN_TIMEOUT_SECONDS`` (the request timeout the platform and the framework use),
counted from the moment the handler is called. Importing this module imports nothing from
functions-framework.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, overload

from faaspool._errors import ConfigError

from . import _common

__all__ = ["with_redis"]

F = TypeVar("F", bound=Callable[..., Any])
PLATFORM = "gcf"
EXPLICIT = "faaspool.adapters.gcf.with_redis"
TIMEOUT_ENV = "CLOUD_RUN_TIMEOUT_SECONDS"


@overload
def with_redis(func: F, /) -> F: ...


@overload
def with_redis(
    func: None = None,
    /,
    *,
    url: str | None = None,
    param: str = "redis",
    timeout: float | None = None,
    log_invocations: bool | None = None,
    logger: Any = None,
    **options: Any,
) -> Callable[[F], F]: ...


def with_redis(func: Any = None, /, *, url: str | None = None, **options: Any) -> Any:
    """Inject the cached Redis client into a functions-framework handler as ``redis``.

    Bare (``@with_redis``) or configured (``@with_redis(url=..., param="cache", ...)``):
    ``url`` defaults to ``$REDIS_URL``; other keywords are faaspool options, plus ``param``
    (the keyword's name), ``timeout`` (seconds per request; default
    ``$CLOUD_RUN_TIMEOUT_SECONDS``), ``log_invocations`` and ``logger``. The configuration
    is resolved when the decorator is applied: a bad URL or option raises `ConfigError`
    then.

    Each request runs in an invocation scope (deadline and leak guard). The client is
    shared by the framework's threads; a connection in use when an exception of any kind
    reaches it (including the framework's ``THREADED_TIMEOUT_ENABLED`` timeout) is closed,
    never returned to the pool.
    """
    if func is None:
        return lambda f: _decorate(f, url, options)
    if isinstance(func, str):
        raise ConfigError("pass the Redis URL by keyword: @with_redis(url=...)")
    return _decorate(func, url, options)


def platform_timeout() -> float | None:
    """``$CLOUD_RUN_TIMEOUT_SECONDS`` as seconds, or None when unset or 0 (no limit)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"${TIMEOUT_ENV} must be a number of seconds, got {raw!r}") from None
    return seconds if seconds > 0 else None


def _decorate(func: Any, url: str | None, options: dict[str, Any]) -> Any:
    _common.refuse_function_builder(func, EXPLICIT)
    settings = _common.make_settings(
        PLATFORM, url, options, default_timeout=platform_timeout, where=_common.describe(func)
    )
    signature = _common.check_handler(func, settings, EXPLICIT)
    return _common.wrap(func, settings, signature, name_of=_execution_id)


def _execution_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if not args:
        return None
    first = args[0]
    headers = getattr(first, "headers", None)
    if headers is not None:
        found = headers.get("Function-Execution-Id")
        return None if found is None else str(found)
    try:
        return str(first["id"])  # a CloudEvent
    except Exception:  # any other event shape has no id to show
        return None
