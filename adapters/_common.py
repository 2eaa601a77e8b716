"""What every platform adapter shares: options, handler checks, the wrapper, the log record.

An adapter only says how its platform hands over the deadline and which wrapper shape its
platform inspects; everything else lives here. Nothing platform-specific is imported.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import keyword
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from faaspool import _cache, _scope
from faaspool._config import Config
from faaspool._errors import ConfigError
from faaspool._stats import counters

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_PARAM = "redis"
TIMEOUT_ENV = "FAASPOOL_TIMEOUT"
LOG_ENV = "FAASPOOL_LOG_INVOCATIONS"
# Options the adapters consume themselves; every other keyword goes to the core's config.
ADAPTER_OPTIONS = ("param", "timeout", "log_invocations", "logger")

#: ``timeout_of(args, kwargs, configured) -> seconds or None`` for one call.
TimeoutOf = Callable[[tuple[Any, ...], dict[str, Any], "float | None"], "float | None"]
#: ``name_of(args, kwargs) -> str | None``: what the log record calls one invocation.
NameOf = Callable[[tuple[Any, ...], dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class Settings:
    """One decoration's resolved settings (resolved once, when the decorator is applied)."""

    platform: str
    config: Config
    param: str
    timeout: float | None
    log: bool
    logger: Any


def make_settings(
    platform: str,
    url: str | None,
    options: Mapping[str, Any],
    *,
    default_timeout: Callable[[], float | None] = lambda: None,
    where: str = "",
) -> Settings:
    """Validate the adapter options and resolve the Redis configuration, or raise ConfigError.

    ``where`` names the decorated function in messages.
    """
    opts = dict(options)
    param = opts.pop("param", DEFAULT_PARAM)
    timeout_arg = opts.pop("timeout", None)
    log_arg = opts.pop("log_invocations", None)
    logger = opts.pop("logger", None)
    prefix = f"@with_redis on {where}: " if where else "@with_redis: "

    if not isinstance(param, str) or not param.isidentifier() or keyword.iskeyword(param):
        raise ConfigError(f"{prefix}option 'param' must be a Python identifier, got {param!r}")
    if timeout_arg is not None:
        timeout = _seconds(timeout_arg, "argument timeout=", prefix)
    elif os.environ.get(TIMEOUT_ENV):
        timeout = _seconds(os.environ[TIMEOUT_ENV], f"${TIMEOUT_ENV}", prefix)
    else:
        timeout = default_timeout()
    if log_arg is None:
        log = _flag(os.environ.get(LOG_ENV, ""), f"${LOG_ENV}", prefix)
    elif isinstance(log_arg, bool):
        log = log_arg
    else:
        raise ConfigError(f"{prefix}option 'log_invocations' must be True or False")
    if logger is not None and not callable(getattr(logger, "info", None)):
        raise ConfigError(f"{prefix}option 'logger' must be a logger (an object with .info())")
    try:
        config = _cache.resolve(url, opts)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None
    return Settings(platform, config, param, timeout, log, logger)


def _seconds(value: Any, source: str, prefix: str) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if number != number or number == float("inf") or number < 0:
        raise ConfigError(
            f"{prefix}option 'timeout' (from {source}) must be a number of seconds "
            f"(0 for none), got {value!r}"
        )
    return number or None


def _flag(value: str, source: str, prefix: str) -> bool:
    text = value.strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{prefix}option 'log_invocations' (from {source}) must be true or false")


def describe(func: Any) -> str:
    """``module.qualname()`` of a handler, for messages."""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", None)
    return f"{module}.{name}()" if module else f"{name}()"


def refuse_function_builder(obj: Any, explicit: str) -> None:
    """Raise ConfigError if ``obj`` is what an Azure ``@app.*`` decorator returned.

    Decorating that object wraps the app's builder, which the worker never calls.
    """
    cls = type(obj)
    if cls.__name__ == "FunctionBuilder" and cls.__module__.startswith("azure.functions"):
        inner = getattr(getattr(obj, "_function", None), "_func", None)
        name = getattr(inner, "__name__", "the function")
        raise ConfigError(
            f"@with_redis is above an Azure @app.* decorator on {name}(): there it wraps "
            f"the app's function builder, and the worker would call {name}() without the "
            f"client. Put @with_redis directly on the function, below every @app.* "
            f"decorator ({explicit})."
        )


def check_handler(func: Any, settings: Settings, explicit: str) -> inspect.Signature:
    """Check that ``func`` can receive the client; return the signature to expose.

    The exposed signature is ``func``'s without the injected parameter.
    """
    refuse_function_builder(func, explicit)
    where = describe(func)
    if isinstance(func, type) or not callable(func):
        raise ConfigError(f"@with_redis needs a function, got {func!r}")
    if getattr(func, "__faaspool__", None) is not None:
        raise ConfigError(f"@with_redis is applied twice to {where}")
    param = settings.param
    try:
        outer = inspect.signature(func, follow_wrapped=False)
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"@with_redis cannot read the signature of {where}: {exc}") from None
    found = sig.parameters.get(param)
    if found is None and not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        raise ConfigError(
            f"{where} has no parameter {param!r} to receive the Redis client: add "
            f"`{param}` to its parameters, or name another one with @with_redis(param=...)"
        )
    if found is not None and found.kind is found.POSITIONAL_ONLY:
        raise ConfigError(
            f"{where}: parameter {param!r} is positional-only; the client is passed by keyword"
        )
    if not _accepts_keyword(outer, param):
        raise ConfigError(
            f"@with_redis cannot pass {param!r} to {where}: the decorator below it does not "
            f"accept keyword arguments. Put @with_redis directly on the function, below "
            f"every other decorator."
        )
    if found is None:
        return sig
    return sig.replace(parameters=[p for p in sig.parameters.values() if p.name != param])


def _accepts_keyword(sig: inspect.Signature, name: str) -> bool:
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return True
        if p.name == name and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            return True
    return False


# -- the wrapper ------------------------------------------------------------------------------


def _enter(timeout: float | None) -> _scope.Invocation:
    outer = _scope.current.get()
    if outer is not None and outer.deadline is not None and outer.deadline <= time.monotonic():
        # A scope left behind by an interrupted invocation on this thread (a platform
        # timeout raised between its enter and exit) must not clip this one's deadline.
        _scope.current.set(None)
    scope = _scope.Invocation(timeout)
    scope.__enter__()
    return scope


def _leave(scope: _scope.Invocation) -> None:
    try:
        scope.__exit__(None, None, None)
    except BaseException:
        # GCF's THREADED_TIMEOUT raises into this thread at any bytecode, once: if it lands
        # in the leak guard, finish reclaiming before letting it propagate.
        with contextlib.suppress(Exception):
            scope.reclaim()
        raise


def wrap(
    func: Callable[..., Any],
    settings: Settings,
    signature: inspect.Signature,
    *,
    timeout_of: TimeoutOf | None = None,
    name_of: NameOf | None = None,
    async_runner: Callable[[Any], Any] | None = None,
) -> Callable[..., Any]:
    """The wrapper: inject the client, scope the call, keep what the platform inspects.

    A coroutine function gets an ``async def`` wrapper, unless ``async_runner`` is given:
    then the wrapper is synchronous and hands the coroutine to it (Lambda's runtime
    cannot await).
    """
    is_async = inspect.iscoroutinefunction(func)
    log = InvocationLog(settings, func, name_of) if settings.log else None
    if is_async and async_runner is not None:
        wrapper = _sync_over_async(func, settings, timeout_of, log, async_runner)
    elif is_async:
        wrapper = _async(func, settings, timeout_of, log)
    else:
        wrapper = _sync(func, settings, timeout_of, log)
    functools.update_wrapper(wrapper, func)
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    annotations = _own_annotations(func)
    if annotations is not None:
        wrapper.__annotations__ = {k: v for k, v in annotations.items() if k != settings.param}
    wrapper.__faaspool__ = settings  # type: ignore[attr-defined]
    return wrapper


def _own_annotations(func: Any) -> dict[str, Any] | None:
    # The worker resolves every annotation of what it is given (typing.get_type_hints); the
    # injected parameter's may name a type imported only for type checkers.
    try:
        found = func.__annotations__
    except Exception:  # an annotation that cannot even be evaluated
        return None
    return dict(found) if isinstance(found, dict) else None


def _sync(
    func: Callable[..., Any],
    settings: Settings,
    timeout_of: TimeoutOf | None,
    log: InvocationLog | None,
) -> Callable[..., Any]:
    config, param, fixed = settings.config, settings.param, settings.timeout
    client_for = _cache.client_for

    if log is None:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if param not in kwargs:
                kwargs[param] = client_for(config)
            scope = _enter(fixed if timeout_of is None else timeout_of(args, kwargs, fixed))
            try:
                return func(*args, **kwargs)
            finally:
                _leave(scope)

        return wrapper

    def logged(*args: Any, **kwargs: Any) -> Any:
        record = log.begin(args, kwargs)
        try:
            if param not in kwargs:
                kwargs[param] = client_for(config)
            scope = _enter(fixed if timeout_of is None else timeout_of(args, kwargs, fixed))
            try:
                return func(*args, **kwargs)
            finally:
                _leave(scope)
        except BaseException as exc:
            record.failed(exc)
            raise
        finally:
            log.end(record)

    return logged


_aio_client_for: Callable[[Config], Any] | None = None


def _aio_client(config: Config) -> Any:
    """The running loop's cached `redis.asyncio` client (faaspool.aio loads on first use)."""
    global _aio_client_for
    if _aio_client_for is None:
        from faaspool.aio._cache import client_for

        _aio_client_for = client_for
    return _aio_client_for(config)


def _async(
    func: Callable[..., Any],
    settings: Settings,
    timeout_of: TimeoutOf | None,
    log: InvocationLog | None,
) -> Callable[..., Any]:
    config, param, fixed = settings.config, settings.param, settings.timeout

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        record = None if log is None else log.begin(args, kwargs)
        try:
            if param not in kwargs:
                kwargs[param] = _aio_client(config)
            scope = _enter(fixed if timeout_of is None else timeout_of(args, kwargs, fixed))
            try:
                return await func(*args, **kwargs)
            finally:
                _leave(scope)
        except BaseException as exc:
            if record is not None:
                record.failed(exc)
            raise
        finally:
            if log is not None and record is not None:
                log.end(record)

    return wrapper


def _sync_over_async(
    func: Callable[..., Any],
    settings: Settings,
    timeout_of: TimeoutOf | None,
    log: InvocationLog | None,
    runner: Callable[[Any], Any],
) -> Callable[..., Any]:
    config, param, fixed = settings.config, settings.param, settings.timeout

    async def scoped(timeout: float | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if param not in kwargs:
            kwargs[param] = _aio_client(config)
        scope = _enter(timeout)
        try:
            return await func(*args, **kwargs)
        finally:
            _leave(scope)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        record = None if log is None else log.begin(args, kwargs)
        try:
            # The deadline is read here, before the loop runs: the clock started with the call.
            timeout = fixed if timeout_of is None else timeout_of(args, kwargs, fixed)
            return runner(scoped(timeout, args, kwargs))
        except BaseException as exc:
            if record is not None:
                record.failed(exc)
            raise
        finally:
            if log is not None and record is not None:
                log.end(record)

    return wrapper


# -- the per-invocation log record ------------------------------------------------------------

_LOGGED_COUNTERS = (
    "connects",
    "reconnects",
    "reuses",
    "probes",
    "stale_found",
    "retries",
    "backoffs",
    "leaks_reclaimed",
    "deadline_hits",
    "pool_waits",
)


class _Record:
    __slots__ = ("before", "error", "name", "started")

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.error: str | None = None
        self.before = tuple(getattr(counters, f) for f in _LOGGED_COUNTERS)
        self.started = time.perf_counter()

    def failed(self, exc: BaseException) -> None:
        self.error = type(exc).__name__


class InvocationLog:
    """Emits one INFO record per invocation: what faaspool did for it, and how long it took.

    The counts are this process's counters over the invocation: exact on Lambda (one
    invocation at a time), and including concurrent invocations on GCF and Azure.
    The record goes to ``logger`` when given; else to the Powertools Logger of the
    function's service when Powertools is in use; else to the stdlib logger
    ``faaspool.invocation``.
    """

    def __init__(self, settings: Settings, func: Any, name_of: NameOf | None) -> None:
        self.settings = settings
        self.function = getattr(func, "__name__", "handler")
        self.name_of = name_of
        self._logger: Any = settings.logger

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Record:
        name = None
        if self.name_of is not None:
            try:
                name = self.name_of(args, kwargs)
            except Exception:  # the record must never fail the invocation
                name = None
        return _Record(name)

    def end(self, record: _Record) -> None:
        elapsed_ms = (time.perf_counter() - record.started) * 1000
        after = tuple(getattr(counters, f) for f in _LOGGED_COUNTERS)
        delta = {f: a - b for f, a, b in zip(_LOGGED_COUNTERS, after, record.before, strict=True)}
        fields: dict[str, Any] = {
            "platform": self.settings.platform,
            "function": self.function,
            "invocation": record.name,
            "redis": self.settings.config.redacted_url(),
            "duration_ms": round(elapsed_ms, 3),
            "outcome": record.error or "ok",
            **delta,
        }
        with contextlib.suppress(Exception):  # the record must never fail the invocation
            self._emit(fields)

    def _emit(self, fields: dict[str, Any]) -> None:
        logger = self._logger
        if logger is None:
            logger = self._logger = _default_logger()
        message = (
            "faaspool invocation {function} {outcome} in {duration_ms:.1f} ms: "
            "reuses={reuses} connects={connects} reconnects={reconnects} "
            "probes={probes} stale_found={stale_found} retries={retries} "
            "leaks_reclaimed={leaks_reclaimed} deadline_hits={deadline_hits}"
        ).format(**fields)
        logger.info(message, extra={"faaspool": fields})


def _default_logger() -> Any:
    if "aws_lambda_powertools" in sys.modules:
        service = _powertools_service()
        if service is not None:
            # A child of the service's logger: the record goes through Powertools' handler
            # and JSON formatter, with the Lambda context keys it injected.
            return logging.getLogger(f"{service}.faaspool")
    return logging.getLogger("faaspool.invocation")


def _powertools_service() -> str | None:
    wanted = os.environ.get("POWERTOOLS_SERVICE_NAME")
    found = []
    for name, candidate in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(candidate, logging.Logger) and getattr(candidate, "powertools_handler", None):
            if name == wanted:
                return name
            found.append(name)
    return found[0] if len(found) == 1 else None
