"""faaspool.with_redis: the platform is read from the handler, never guessed, and the
options are checked once, at decoration time."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import faaspool
from faaspool import _decorator
from faaspool._decorator import detect_platform, with_redis
from faaspool._errors import ConfigError
from tests.support.server import RedisServer

URL = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _restore_sigterm() -> Iterator[None]:
    """Decorating a Lambda handler installs faaspool's SIGTERM handler: put back the old one."""
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def module_with(source: str) -> types.ModuleType:
    """Run ``source`` as a fresh module, as a function's own file would be."""
    name = f"handler_module_{uuid.uuid4().hex[:8]}"
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(compile(textwrap.dedent(source), f"<{name}>", "exec"), module.__dict__)
    return module


def test_faaspool_exports_with_redis() -> None:
    assert faaspool.with_redis is _decorator.with_redis


def test_two_positional_parameters_are_a_lambda_handler() -> None:
    module = module_with(
        """
        def handler(event, context, redis):
            return redis
        """
    )
    assert detect_platform(module.handler) == "aws_lambda"
    wrapped = with_redis(url=URL)(module.handler)
    assert wrapped.__faaspool__.platform == "aws_lambda"


@pytest.mark.parametrize(
    ("source", "platform"),
    [
        (
            """
            from awslambdaric.lambda_context import LambdaContext
            def handler(event: dict, context: LambdaContext, redis): pass
            """,
            "aws_lambda",
        ),
        (
            """
            from aws_lambda_powertools import Logger
            logger = Logger(service="detect")
            def handler(event, context, redis): pass
            """,
            "aws_lambda",
        ),
        (
            """
            import flask
            def handler(request: flask.Request, redis): pass
            """,
            "gcf",
        ),
        (
            """
            from cloudevents.http import CloudEvent
            def handler(cloud_event: CloudEvent, redis): pass
            """,
            "gcf",
        ),
        (
            """
            import functions_framework
            def handler(request, redis): pass
            """,
            "gcf",
        ),
        (
            """
            from functions_framework import http
            def handler(request, redis): pass
            """,
            "gcf",
        ),
        (
            """
            import functions_framework
            def handler(data, context, redis): pass  # a background function
            """,
            "gcf",
        ),
        (
            """
            import azure.functions as func
            def handler(req: func.HttpRequest, redis): pass
            """,
            "azure",
        ),
        (
            """
            from __future__ import annotations
            import azure.functions as func
            def handler(req: func.HttpRequest, context: func.Context, redis: Missing): pass
            """,
            "azure",
        ),
        (
            """
            import azure.functions as func
            app = func.FunctionApp()
            def handler(req, context, redis): pass
            """,
            "azure",
        ),
        (
            """
            import azure.functions as func
            def handler(msg: func.QueueMessage, out: func.Out[str], redis): pass
            """,
            "azure",
        ),
    ],
)
def test_annotations_and_module_imports_name_the_platform(source: str, platform: str) -> None:
    pytest.importorskip(
        {"aws_lambda": "awslambdaric", "gcf": "functions_framework", "azure": "azure.functions"}[
            platform
        ]
    )
    module = module_with(source)
    assert detect_platform(module.handler) == platform


@pytest.mark.parametrize(
    ("source", "explicit"),
    [
        (
            """
            def handler(request, redis): pass
            """,
            ["faaspool.adapters.gcf", "faaspool.adapters.azure"],
        ),
        (
            """
            import flask
            import azure.functions as func
            def handler(request: flask.Request, other: func.HttpRequest, redis): pass
            """,
            ["faaspool.adapters.gcf", "faaspool.adapters.azure"],
        ),
        (
            """
            import functions_framework
            import azure.functions as func
            def handler(request, redis): pass
            """,
            ["faaspool.adapters.gcf", "faaspool.adapters.azure"],
        ),
        (
            """
            from aws_lambda_powertools import Logger
            logger = Logger(service="detect-one")
            def handler(event, redis): pass
            """,
            ["faaspool.adapters.aws_lambda"],
        ),
        (
            """
            def handler(redis): pass
            """,
            ["faaspool.adapters.aws_lambda", "faaspool.adapters.gcf", "faaspool.adapters.azure"],
        ),
    ],
)
def test_an_ambiguous_handler_is_refused_naming_the_explicit_import(
    source: str, explicit: list[str]
) -> None:
    pytest.importorskip("functions_framework")
    pytest.importorskip("azure.functions")
    pytest.importorskip("aws_lambda_powertools")
    module = module_with(source)
    with pytest.raises(ConfigError, match="cannot tell which platform handler") as info:
        with_redis(url=URL)(module.handler)
    message = str(info.value)
    for name in explicit:
        assert f"from {name} import with_redis" in message
    for name in {
        "faaspool.adapters.aws_lambda",
        "faaspool.adapters.gcf",
        "faaspool.adapters.azure",
    } - set(explicit):
        assert name not in message


def test_above_an_azure_app_decorator_it_is_refused() -> None:
    pytest.importorskip("azure.functions")
    module = module_with(
        """
        import azure.functions as func
        app = func.FunctionApp()

        def wrong(req: func.HttpRequest, redis) -> func.HttpResponse:
            return func.HttpResponse("x")

        builder = app.route(route="wrong")(wrong)
        """
    )
    with pytest.raises(ConfigError, match=r"below every @app\.\* decorator"):
        with_redis(url=URL)(module.builder)


def test_options_are_handed_to_the_adapter_and_checked_at_decoration(
    redis_server: RedisServer,
) -> None:
    module = module_with(
        """
        def handler(event, context, cache):
            return cache.connection_pool.max_connections
        """
    )
    wrapped = with_redis(url=redis_server.url, param="cache", max_connections=4)(module.handler)
    assert wrapped({}, None) == 4
    with pytest.raises(ConfigError, match="did you mean 'max_connections'"):
        with_redis(url=redis_server.url, param="cache", max_conections=4)(module.handler)
    with pytest.raises(ConfigError, match="no parameter 'redis'"):
        with_redis(url=redis_server.url)(module.handler)


def test_bare_form(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    module = module_with(
        """
        from faaspool._decorator import with_redis

        @with_redis
        def handler(event, context, redis):
            return redis.ping()
        """
    )
    assert module.handler({}, None) is True


def test_no_url_anywhere_is_a_config_error_at_decoration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)

    def handler(event: Any, context: Any, redis: Any) -> None:
        pass

    with pytest.raises(ConfigError, match="REDIS_URL"):
        with_redis(handler)


def test_misuse_is_reported_clearly() -> None:
    with pytest.raises(ConfigError, match="url="):
        with_redis("redis://127.0.0.1/0")  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="needs a function"):
        with_redis(url=URL)(42)
    with pytest.raises(ConfigError, match="needs a function"):
        with_redis(url=URL)(type("Handler", (), {}))

    def handler(event: Any, context: Any, redis: Any) -> None:
        pass

    once = with_redis(url=URL)(handler)
    with pytest.raises(ConfigError, match="applied twice"):
        with_redis(url=URL)(once)


def test_log_and_timeout_settings_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(event: Any, context: Any, redis: Any) -> None:
        pass

    monkeypatch.setenv("FAASPOOL_LOG_INVOCATIONS", "maybe")
    with pytest.raises(ConfigError, match="FAASPOOL_LOG_INVOCATIONS"):
        with_redis(url=URL)(handler)
    monkeypatch.setenv("FAASPOOL_LOG_INVOCATIONS", "on")
    assert with_redis(url=URL)(handler).__faaspool__.log is True
    monkeypatch.delenv("FAASPOOL_LOG_INVOCATIONS")
    monkeypatch.setenv("FAASPOOL_TIMEOUT", "-3")
    with pytest.raises(ConfigError, match="FAASPOOL_TIMEOUT"):
        with_redis(url=URL)(handler)
    monkeypatch.setenv("FAASPOOL_TIMEOUT", "2.5")
    assert with_redis(url=URL)(handler).__faaspool__.timeout == 2.5
    with pytest.raises(ConfigError, match="log_invocations"):
        with_redis(url=URL, log_invocations="yes")(handler)
    with pytest.raises(ConfigError, match="logger"):
        with_redis(url=URL, logger="faaspool")(handler)


def test_configuration_is_resolved_once_at_decoration(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)

    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.connection_pool.faaspool_config.address

    wrapped = with_redis(handler)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert wrapped({}, None) == f"{redis_server.host}:{redis_server.port}"


def test_importing_faaspool_and_the_decorator_imports_no_platform_package() -> None:
    code = textwrap.dedent(
        """
        import sys
        import faaspool, faaspool._decorator
        import faaspool.adapters.aws_lambda, faaspool.adapters.gcf, faaspool.adapters.azure
        def handler(event, context, redis): pass
        faaspool._decorator.with_redis(url="redis://127.0.0.1:1/0")(handler)
        roots = ("functions_framework", "flask", "werkzeug", "cloudevents", "azure",
                 "azurefunctions", "aws_lambda_powertools", "awslambdaric", "boto3",
                 "botocore", "snapshot_restore_py")
        print(sorted({m.split(".")[0] for m in sys.modules} & set(roots)))
        """
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
