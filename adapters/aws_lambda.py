"""AWS Lambda: ``@with_redis`` for ``handler(event, context)``.

The deadline of each invocation is ``context.get_remaining_time_in_millis()``. Put
``@with_redis`` innermost, directly on the function, under any Powertools decorators
(``@logger.inject_lambda_context``, ``@tracer.capture_lambda_handler``, middlewares made
with ``lambda_handler_decorator``, ``@event_source``). An ``async def`` handler runs on one
event loop kept for the life of the execution environment (`faaspool.aio.run`), so its
connections survive between invocations.

Importing this module imports no AWS package; ``snapshot_restore_py`` is imported only when
the function runs with SnapStart.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar, overload

from faaspool import _cache
from faaspool._errors import ConfigError

from . import _common

__all__ = ["with_redis"]

F = TypeVar("F", bound=Callable[..., Any])
PLATFORM = "aws_lambda"
EXPLICIT = "faaspool.adapters.aws_lambda.with_redis"
SNAPSTART_ENV = "AWS_LAMBDA_INITIALIZATION_TYPE"

logger = logging.getLogger("faaspool")


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
    """Inject the cached Redis client into a Lambda handler as keyword ``redis``.

    Bare (``@with_redis``) or configured (``@with_redis(url=..., param="cache", ...)``):
    ``url`` defaults to ``$REDIS_URL``; other keywords are faaspool options, plus ``param``
    (the keyword's name), ``timeout`` (seconds: a cap below Lambda's remaining time),
    ``log_invocations`` (one log record per invocation; ``$FAASPOOL_LOG_INVOCATIONS``)
    and ``logger``. The configuration is resolved when the decorator is applied: a bad
    URL or option raises `ConfigError` then, not on the first request.

    Each call runs in an invocation scope whose deadline is the context's remaining
    time; whatever it leaves checked out is reclaimed when it returns. SIGTERM closes the
    connections (then runs any handler installed before), and under SnapStart they are
    closed before the snapshot and reopened lazily after restore.
    """
    if func is None:
        return lambda f: _decorate(f, url, options)
    if isinstance(func, str):
        raise ConfigError("pass the Redis URL by keyword: @with_redis(url=...)")
    return _decorate(func, url, options)


def _decorate(func: Any, url: str | None, options: dict[str, Any]) -> Any:
    _common.refuse_function_builder(func, EXPLICIT)
    where = _common.describe(func)
    settings = _common.make_settings(PLATFORM, url, options, where=where)
    signature = _common.check_handler(func, settings, EXPLICIT)
    _refuse_dropping_middleware(func, settings.param, where)
    runner = _aio_run if inspect.iscoroutinefunction(func) else None
    install_lifecycle()
    return _common.wrap(
        func,
        settings,
        signature,
        timeout_of=_remaining,
        name_of=_request_id,
        async_runner=runner,
    )


def _aio_run(coro: Any) -> Any:
    from faaspool import aio

    return aio.run(coro)


def _context(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[1] if len(args) > 1 else kwargs.get("context")


def _remaining(args: tuple[Any, ...], kwargs: dict[str, Any], cap: float | None) -> float | None:
    if not _lifecycle_checked:
        install_lifecycle(first_call=True)
    get = getattr(_context(args, kwargs), "get_remaining_time_in_millis", None)
    if get is None:
        return cap
    left: float = get() / 1000.0
    return left if cap is None or left < cap else cap


def _request_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    found = getattr(_context(args, kwargs), "aws_request_id", None)
    return None if found is None else str(found)


def _refuse_dropping_middleware(func: Any, param: str, where: str) -> None:
    # A Powertools middleware (lambda_handler_decorator, e.g. @event_source) calls the
    # handler as handler(event, context) unless the middleware itself takes **kwargs:
    # above one, the client could never reach the function.
    current = func
    for _ in range(100):
        code = getattr(current, "__code__", None)
        closure = getattr(current, "__closure__", None)
        if code is not None and closure and "decorator" in code.co_freevars:
            filename = code.co_filename.replace("\\", "/")
            if filename.endswith("aws_lambda_powertools/middleware_factory/factory.py"):
                middleware = closure[code.co_freevars.index("decorator")].cell_contents
                try:
                    sig = inspect.signature(middleware)
                except (TypeError, ValueError):
                    sig = None
                if sig is not None and not any(
                    p.kind is p.VAR_KEYWORD for p in sig.parameters.values()
                ):
                    name = getattr(middleware, "__qualname__", repr(middleware))
                    raise ConfigError(
                        f"@with_redis is above the Powertools middleware {name} on {where}, "
                        f"which calls the handler without keyword arguments, so {param!r} "
                        f"would never arrive. Put @with_redis innermost, directly on the "
                        f"function, below every Powertools decorator."
                    )
        current = getattr(current, "__wrapped__", None)
        if current is None:
            return


# -- lifecycle: SIGTERM and SnapStart ---------------------------------------------------------

_lifecycle_lock = threading.Lock()
_lifecycle_checked = False
_snapstart_registered = False


class _SigtermHandler:
    """Closes every cached connection, then does what the previous SIGTERM disposition did."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        close_connections()
        previous = self.previous
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            # The default disposition: terminate, as if we had never been here.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


def close_connections() -> None:
    """Close every cached connection of this process, sync and asyncio (best effort)."""
    _cache.close_all()
    aio = sys.modules.get("faaspool.aio")
    closer = getattr(aio, "close_all", None)
    if closer is not None:
        with contextlib.suppress(Exception):  # best effort on the way out
            closer()


def install_lifecycle(first_call: bool = False) -> None:
    """Install the SIGTERM handler and, under SnapStart, the snapshot hooks (idempotent).

    Called when a handler is decorated and again on its first invocation, so that a
    SIGTERM handler the user installed after decorating is chained as well.
    """
    global _lifecycle_checked, _snapstart_registered
    with _lifecycle_lock:
        if first_call:
            _lifecycle_checked = True
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGTERM)
            if not isinstance(current, _SigtermHandler):
                with contextlib.suppress(ValueError, OSError):
                    signal.signal(signal.SIGTERM, _SigtermHandler(current))
        if not _snapstart_registered and os.environ.get(SNAPSTART_ENV) == "snap-start":
            _snapstart_registered = True
            _register_snapstart()


def _register_snapstart() -> None:
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        logger.warning(
            "faaspool: %s is snap-start but snapshot_restore_py is not importable; "
            "connections opened during init may be restored dead",
            SNAPSTART_ENV,
        )
        return
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)


def before_snapshot() -> None:
    """SnapStart hook: no socket may be frozen into the snapshot."""
    close_connections()


def after_restore() -> None:
    """SnapStart hook: drop any socket a later-registered hook opened before the snapshot,
    and give this clone its own instance id, so the fleet view tells clones apart.

    Nothing reconnects here; the first command of the first invocation does.
    """
    close_connections()
    _cache.refresh_identity()
