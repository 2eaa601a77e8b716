"""Azure Functions (Python v2 programming model): ``@with_redis`` under ``@app.*``.

Put ``@with_redis`` directly on the function, below every ``@app.*`` decorator; above one it
would wrap the app's function builder, which the worker never calls, so that is refused.
The worker binds arguments by parameter name from `inspect.signature` and the type hints:
the wrapper exposes the function's signature and annotations without the injected
parameter, keeps ``context: func.Context`` (passed through untouched), and is itself
``async def`` for an ``async def`` function.

Azure gives a function no remaining-time API: the deadline is ``timeout`` (argument), else
``$FAASPOOL_TIMEOUT``, else ``functionTimeout`` from ``host.json`` (found in
``$AzureWebJobsScriptRoot`` or next to the function's file), else the plan's default when
``$WEBSITE_SKU`` tells the plan. Importing this module imports nothing from Azure.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, overload

from faaspool._errors import ConfigError

from . import _common

__all__ = ["with_redis"]

F = TypeVar("F", bound=Callable[..., Any])
PLATFORM = "azure"
EXPLICIT = "faaspool.adapters.azure.with_redis"
# Default functionTimeout per hosting plan ($WEBSITE_SKU), in seconds.
_PLAN_DEFAULTS = {"dynamic": 300.0}
_OTHER_PLAN_DEFAULT = 1800.0
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


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
    """Inject the cached Redis client into an Azure Functions v2 function as ``redis``.

    Bare (``@with_redis``) or configured (``@with_redis(url=..., param="cache", ...)``):
    ``url`` defaults to ``$REDIS_URL``; other keywords are faaspool options, plus ``param``
    (the keyword's name), ``timeout`` (seconds per invocation; default from host.json),
    ``log_invocations`` and ``logger``. The configuration is resolved when the decorator
    is applied: a bad URL or option, or placing it above an ``@app.*`` decorator, raises
    `ConfigError` then.

    Each invocation runs in an invocation scope (deadline and leak guard). Sync functions
    share the client across the worker's thread pool; ``async def`` functions use the
    worker's event loop through `faaspool.aio`.
    """
    if func is None:
        return lambda f: _decorate(f, url, options)
    if isinstance(func, str):
        raise ConfigError("pass the Redis URL by keyword: @with_redis(url=...)")
    return _decorate(func, url, options)


def _decorate(func: Any, url: str | None, options: dict[str, Any]) -> Any:
    _common.refuse_function_builder(func, EXPLICIT)
    settings = _common.make_settings(
        PLATFORM,
        url,
        options,
        default_timeout=lambda: platform_timeout(_source_dir(func)),
        where=_common.describe(func),
    )
    signature = _common.check_handler(func, settings, EXPLICIT)
    return _common.wrap(func, settings, signature, name_of=_invocation_id)


def _source_dir(func: Any) -> str | None:
    try:
        return str(Path(inspect.getfile(inspect.unwrap(func))).resolve().parent)
    except (TypeError, OSError, ValueError):
        return None


def platform_timeout(source_dir: str | None = None) -> float | None:
    """The function timeout in seconds from host.json, else the plan's default, else None.

    host.json is looked up in ``$AzureWebJobsScriptRoot``, then in ``source_dir`` and up
    to two folders above it (a blueprint's module may sit below the app root).
    ``"-1"`` (unbounded) gives None.
    """
    script_root = os.environ.get("AzureWebJobsScriptRoot")  # noqa: SIM112 - Azure's own name
    folders = [Path(script_root)] if script_root else []
    if source_dir:
        start = Path(source_dir)
        folders += [start, *list(start.parents)[:2]]
    for folder in folders:
        found = _host_json_timeout(str(folder / "host.json"))
        if found is not _MISSING:
            return found  # type: ignore[return-value]
    sku = os.environ.get("WEBSITE_SKU", "").strip().lower()
    if not sku:
        return None
    return _PLAN_DEFAULTS.get(sku, _OTHER_PLAN_DEFAULT)


_MISSING = object()


@functools.lru_cache(maxsize=16)
def _host_json_timeout(path: str) -> object:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return _MISSING
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read functionTimeout from {path}: {exc}") from None
    raw = data.get("functionTimeout") if isinstance(data, dict) else None
    if raw is None:
        return _MISSING
    return parse_timespan(str(raw), path)


def parse_timespan(text: str, source: str = "host.json") -> float | None:
    """``[d.]hh:mm:ss[.fff]`` as seconds; ``-1`` as None (no limit)."""
    text = text.strip()
    if text == "-1":
        return None
    match = _TIMESPAN.match(text)
    if match is None:
        raise ConfigError(
            f"functionTimeout in {source} must look like 'hh:mm:ss' or '-1', got {text!r}"
        )
    days, hours, minutes, seconds = match.groups()
    return (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)) or None


def _invocation_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    found = getattr(kwargs.get("context"), "invocation_id", None)
    return None if found is None else str(found)
