"""``faaspool.with_redis``: the decorator that picks the platform adapter by itself.

It reads the handler's shape, its parameter annotations and what its module imports, and
hands over to ``faaspool.adapters.<platform>.with_redis``. Where those do not settle the
platform it raises `ConfigError` at decoration time, naming the explicit import to use.
No platform package is imported here, nor by the check: only objects the handler's
module already holds are looked at.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from ._errors import ConfigError

__all__ = ["detect_platform", "with_redis"]

F = TypeVar("F", bound=Callable[..., Any])

LAMBDA = "aws_lambda"
GCF = "gcf"
AZURE = "azure"
_EXPLICIT = {
    LAMBDA: "from faaspool.adapters.aws_lambda import with_redis",
    GCF: "from faaspool.adapters.gcf import with_redis",
    AZURE: "from faaspool.adapters.azure import with_redis",
}
_LABEL = {LAMBDA: "AWS Lambda", GCF: "Google Cloud Functions", AZURE: "Azure Functions"}

# Where a type or object comes from -> the platform it belongs to.
_MODULE_PLATFORMS = (
    ("azure.functions", AZURE),
    ("azurefunctions", AZURE),
    ("functions_framework", GCF),
    ("flask", GCF),
    ("werkzeug", GCF),
    ("cloudevents", GCF),
    ("aws_lambda_powertools", LAMBDA),
    ("awslambdaric", LAMBDA),
    ("aws_lambda_typing", LAMBDA),
    ("mypy_boto3_lambda", LAMBDA),
)
# Textual annotations that could not be evaluated: (pattern in the text, platform).
_TEXT_PLATFORMS = (
    ("func.", AZURE),
    ("azure.functions", AZURE),
    ("LambdaContext", LAMBDA),
    ("flask.", GCF),
    ("CloudEvent", GCF),
)
# Module globals that say nothing about the platform (only code objects from these trees).
_IGNORED_FOR_GLOBALS = ("flask", "werkzeug", "cloudevents")


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
    """Inject the cached Redis client into a serverless handler as keyword ``redis``.

    Bare (``@with_redis``) or configured (``@with_redis(url=..., param="cache", ...)``).
    The platform is read from the handler: two positional parameters ``(event, context)``
    are AWS Lambda; a handler annotated with, or defined in a module using,
    functions-framework / flask / CloudEvent types is Google Cloud Functions, and
    azure.functions ones Azure Functions. When that does not settle it, `ConfigError` is
    raised here, naming the explicit import
    (``faaspool.adapters.{aws_lambda,gcf,azure}.with_redis``), which takes the same
    arguments. The configuration is resolved once, when the decorator is applied; see
    the adapter's ``with_redis`` for what each platform adds.
    """
    if func is None:
        return lambda f: _apply(f, url, options)
    if isinstance(func, str):
        raise ConfigError("pass the Redis URL by keyword: @with_redis(url=...)")
    return _apply(func, url, options)


def _apply(func: Any, url: str | None, options: dict[str, Any]) -> Any:
    param = options.get("param", "redis")
    platform = detect_platform(func, param=param if isinstance(param, str) else "redis")
    adapter = importlib.import_module(f"faaspool.adapters.{platform}")
    return adapter.with_redis(url=url, **options)(func)


def detect_platform(func: Any, *, param: str = "redis") -> str:
    """``"aws_lambda"``, ``"gcf"`` or ``"azure"`` for ``func``, or raise ConfigError."""
    cls = type(func)
    if cls.__name__ == "FunctionBuilder" and cls.__module__.startswith("azure.functions"):
        # The Azure adapter refuses it with the full explanation.
        return AZURE
    if isinstance(func, type) or not callable(func):
        raise ConfigError(f"@with_redis needs a function, got {func!r}")
    if getattr(func, "__faaspool__", None) is not None:
        raise ConfigError(f"@with_redis is applied twice to {getattr(func, '__qualname__', func)}")
    target = inspect.unwrap(func)
    name = getattr(target, "__qualname__", getattr(target, "__name__", repr(target)))
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"@with_redis cannot read the signature of {name}(): {exc}") from None
    if all(p.name != param and p.kind is not p.VAR_KEYWORD for p in parameters):
        raise ConfigError(
            f"{name}() has no parameter {param!r} to receive the Redis client: add `{param}` "
            f"to its parameters, or name another one with @with_redis(param=...)"
        )
    positional = [
        p
        for p in parameters
        if p.name != param and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    annotated = _annotation_platforms(target, param)
    imported = _module_platforms(getattr(target, "__globals__", {}))
    count = len(positional)

    if len(annotated) == 1:
        return next(iter(annotated))
    if len(annotated) > 1:
        reason = f"its parameter annotations mix {_names(annotated)} types"
        raise _ambiguous(name, reason, annotated)
    if len(imported) == 1:
        platform = next(iter(imported))
        if platform != LAMBDA or count == 2:
            return platform
    if count == 2 and not imported - {LAMBDA}:
        return LAMBDA
    if count == 2:
        reason = (
            f"it takes two parameters like a Lambda handler, but its module uses "
            f"{_names(imported - {LAMBDA})}"
        )
        raise _ambiguous(name, reason, imported | {LAMBDA})
    shape = "no parameter" if count == 0 else f"{count} positional parameter(s)"
    if imported - {LAMBDA}:
        reason = f"its module uses {_names(imported)}"
        raise _ambiguous(name, reason, imported)
    if imported:
        reason = (
            f"its module uses AWS Lambda packages, but it takes {shape} where a Lambda "
            f"handler takes (event, context)"
        )
        raise _ambiguous(name, reason, imported)
    reason = (
        f"it takes {shape} without a platform type annotation, and its module imports "
        f"no platform package"
    )
    candidates = {GCF, AZURE} if count else {LAMBDA, GCF, AZURE}
    raise _ambiguous(name, reason, candidates)


def _ambiguous(name: str, reason: str, candidates: Iterable[str]) -> ConfigError:
    ordered = [p for p in (LAMBDA, GCF, AZURE) if p in set(candidates)]
    imports = " or ".join(f"`{_EXPLICIT[p]}`" for p in ordered)
    return ConfigError(
        f"faaspool.with_redis cannot tell which platform {name}() is for: {reason}. "
        f"Use the explicit decorator: {imports}."
    )


def _names(platforms: Iterable[str]) -> str:
    return " and ".join(_LABEL[p] for p in (LAMBDA, GCF, AZURE) if p in set(platforms))


def _platform_of_module(module: str) -> str | None:
    for prefix, platform in _MODULE_PLATFORMS:
        if module == prefix or module.startswith(prefix + "."):
            return platform
    return None


def _annotation_platforms(target: Any, param: str) -> set[str]:
    raw = getattr(target, "__annotations__", None)
    if not isinstance(raw, dict):
        return set()
    try:
        hints: dict[str, Any] = typing.get_type_hints(target)
    except Exception:  # unresolvable names: fall back to the text
        hints = dict(raw)
    found: set[str] = set()
    for key, value in hints.items():
        if key in (param, "return"):
            continue
        found.update(_platforms_in_annotation(value))
    return found


def _platforms_in_annotation(value: Any) -> set[str]:
    if isinstance(value, str):
        return {p for text, p in _TEXT_PLATFORMS if text in value}
    found: set[str] = set()
    for part in (value, *typing.get_args(value)):
        module = getattr(part, "__module__", None)
        if isinstance(module, str):
            platform = _platform_of_module(module)
            if platform is not None:
                found.add(platform)
        origin = typing.get_origin(part)
        if origin is not None and origin is not part:
            found.update(_platforms_in_annotation(origin))
    return found


def _module_platforms(namespace: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for value in list(namespace.values()):
        if isinstance(value, types.ModuleType):
            module = value.__name__
        elif isinstance(value, type | types.FunctionType | types.BuiltinFunctionType):
            module = getattr(value, "__module__", None) or ""
        else:
            module = type(value).__module__
        if module.startswith(_IGNORED_FOR_GLOBALS):
            # flask and werkzeug are plain web libraries too: only an annotation counts.
            continue
        platform = _platform_of_module(module)
        if platform is not None:
            found.add(platform)
    return found
