"""faaspool.adapters.aws_lambda: handlers run by the real awslambdaric against a local
Runtime API, composed with the real aws-lambda-powertools, SnapStart hooks, SIGTERM."""

from __future__ import annotations

import inspect
import io
import itertools
import json
import logging
import os
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import faaspool
from faaspool import _cache
from faaspool._errors import ConfigError, DeadlineExceeded
from tests.platforms.lambda_runtime import FUNCTION_NAME, LambdaFunction
from tests.support.server import RedisServer, wait_for

pytest.importorskip("awslambdaric", reason="awslambdaric is not installed (the aws extra)")
powertools = pytest.importorskip(
    "aws_lambda_powertools", reason="aws-lambda-powertools is not installed (the aws extra)"
)

from awslambdaric.lambda_context import LambdaContext  # noqa: E402
from faaspool.adapters import aws_lambda  # noqa: E402
from faaspool.adapters.aws_lambda import with_redis  # noqa: E402

CLIENT_PREFIX = f"faaspool:{FUNCTION_NAME}:"


@pytest.fixture(autouse=True)
def _lambda_process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Decorating installs a SIGTERM handler and may register SnapStart hooks: undo both."""
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE", raising=False)
    monkeypatch.delenv("FAASPOOL_LOG_INVOCATIONS", raising=False)
    monkeypatch.delenv("FAASPOOL_TIMEOUT", raising=False)
    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(aws_lambda, "_lifecycle_checked", False)
    monkeypatch.setattr(aws_lambda, "_snapstart_registered", False)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def lambda_context(timeout_ms: int = 30_000, request_id: str = "req-local") -> Any:
    """awslambdaric's own LambdaContext, as the runtime builds it for one invocation."""
    deadline = int(time.time() * 1000) + timeout_ms
    return LambdaContext(
        request_id,
        None,
        None,
        deadline,
        f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}",
    )


def write_app(directory: Path, source: str, name: str = "app") -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def faaspool_clients(server: RedisServer) -> list[dict[str, str]]:
    return server.clients_named(CLIENT_PREFIX)


# -- through the real runtime ------------------------------------------------------------------

BASIC_APP = """
    import faaspool
    from faaspool.adapters.aws_lambda import with_redis

    @with_redis
    def handler(event, context, redis):
        op = event.get("op")
        if op == "block":
            redis.blpop("never-filled", timeout=30)
        return {
            "n": redis.incr("n"),
            "client_id": redis.client_id(),
            "remaining": faaspool.remaining(),
            "context_type": f"{type(context).__module__}.{type(context).__name__}",
            "request_id": context.aws_request_id,
            "stats": faaspool.stats(),
        }
"""


def test_the_runtime_calls_the_handler_and_every_invocation_reuses_one_connection(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    write_app(tmp_path, BASIC_APP)
    with LambdaFunction(tmp_path, env={"REDIS_URL": redis_server.url}) as fn:
        outcomes = [fn.invoke({"i": i}) for i in range(3)]
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        bodies = [o.body for o in outcomes]
        assert [b["n"] for b in bodies] == [1, 2, 3]
        assert len({b["client_id"] for b in bodies}) == 1
        assert bodies[-1]["stats"]["connects"] == 1
        assert bodies[0]["context_type"] == "awslambdaric.lambda_context.LambdaContext"
        assert [b["request_id"] for b in bodies] == [o.request_id for o in outcomes]
        assert len(faaspool_clients(redis_server)) == 1


def test_the_deadline_is_the_context_remaining_time(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    write_app(tmp_path, BASIC_APP)
    with LambdaFunction(tmp_path, env={"REDIS_URL": redis_server.url}) as fn:
        short = fn.invoke({}, timeout_ms=4_000)
        assert short.ok, short.error
        assert 0 < short.body["remaining"] <= 4.0
        # A blocking command cannot outlive the invocation: it is cut before Lambda would
        # kill the environment, and the handler fails with DeadlineExceeded.
        blocked = fn.invoke({"op": "block"}, timeout_ms=1_500)
        assert not blocked.ok
        assert blocked.error_type == "DeadlineExceeded", blocked.error
        after = fn.invoke({})
        assert after.ok, after.error
        assert after.body["stats"]["deadline_hits"] >= 1


def test_an_async_handler_keeps_its_connection_on_the_persistent_loop(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    write_app(
        tmp_path,
        """
        import faaspool
        from faaspool.adapters.aws_lambda import with_redis

        @with_redis
        async def handler(event, context, redis):
            return {
                "n": await redis.incr("n"),
                "client_id": await redis.client_id(),
                "client": type(redis).__module__,
                "remaining": faaspool.remaining(),
                "stats": faaspool.stats(),
            }
        """,
    )
    with LambdaFunction(tmp_path, env={"REDIS_URL": redis_server.url}) as fn:
        outcomes = [fn.invoke({}, timeout_ms=5_000) for _ in range(4)]
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        bodies = [o.body for o in outcomes]
        assert [b["n"] for b in bodies] == [1, 2, 3, 4]
        assert len({b["client_id"] for b in bodies}) == 1
        assert bodies[-1]["stats"]["connects"] == 1
        assert bodies[0]["client"] == "faaspool.aio.client"
        assert 0 < bodies[0]["remaining"] <= 5.0
        assert len(faaspool_clients(redis_server)) == 1


POWERTOOLS_APP = """
    import faaspool
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, event_source
    from faaspool.adapters.aws_lambda import with_redis

    logger = Logger(service="orders")
    tracer = Tracer(service="orders")

    @lambda_handler_decorator
    def stamp(handler, event, context):
        response = handler(event, context)
        response["stamped"] = True
        return response

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler
    @stamp
    @event_source(data_class=APIGatewayProxyEvent)
    @with_redis
    def handler(event, context, redis):
        logger.info("handling")
        return {
            "event_type": type(event).__name__,
            "path": event.path,
            "hits": redis.incr("hits:" + event.path),
            "client": type(redis).__module__,
        }
"""


def test_powertools_decorators_stack_above_it_under_the_real_runtime(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    write_app(tmp_path, POWERTOOLS_APP)
    env = {"REDIS_URL": redis_server.url, "FAASPOOL_LOG_INVOCATIONS": "true"}
    with LambdaFunction(tmp_path, env=env) as fn:
        first = fn.invoke({"path": "/orders", "httpMethod": "GET"})
        second = fn.invoke({"path": "/orders", "httpMethod": "GET"})
        assert first.ok and second.ok, (first.error, second.error, fn.log())
        assert first.body == {
            "event_type": "APIGatewayProxyEvent",
            "path": "/orders",
            "hits": 1,
            "client": "faaspool.client",
            "stamped": True,
        }
        assert second.body["hits"] == 2
        records = [json.loads(line) for line in fn.log().splitlines() if line.startswith("{")]
        ours = [r for r in records if "faaspool" in r]
        # The per-invocation record goes through the service's Powertools Logger, so it
        # carries the Lambda context keys inject_lambda_context added.
        assert [r["function_request_id"] for r in ours] == [first.request_id, second.request_id]
        assert ours[0]["faaspool"]["connects"] == 1
        assert ours[1]["faaspool"]["reuses"] >= 1 and ours[1]["faaspool"]["connects"] == 0
        assert ours[0]["service"] == "orders"


def test_a_bad_option_fails_the_init_phase_with_config_error(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    write_app(
        tmp_path,
        """
        from faaspool.adapters.aws_lambda import with_redis

        @with_redis(max_conections=3)
        def handler(event, context, redis):
            return "unreachable"
        """,
    )
    fn = LambdaFunction(tmp_path, env={"REDIS_URL": redis_server.url})
    with fn:
        assert fn.api.init_error_posted.wait(30), fn.log()
        assert fn.wait_exit() != 0
    (error,) = fn.api.init_errors
    assert error["errorType"] == "ConfigError"
    assert "max_conections" in error["errorMessage"]
    assert "max_connections" in error["errorMessage"]


def test_snapstart_closes_before_the_snapshot_and_reconnects_after_restore(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    write_app(
        tmp_path,
        """
        import os
        import faaspool
        from faaspool.adapters.aws_lambda import with_redis

        # Warm the connection during init, as SnapStart functions do.
        faaspool.get_redis().ping()

        @with_redis
        def handler(event, context, redis):
            return {"pong": redis.ping(), "stats": faaspool.stats()}
        """,
    )
    env = {"REDIS_URL": redis_server.url, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    fn = LambdaFunction(tmp_path, env=env)
    fn.api.hold_restore = True
    with fn.start():
        # The runtime asks for /restore/next after the before-snapshot hooks ran.
        assert fn.api.restore_reached.wait(30), fn.log()
        wait_for(lambda: not faaspool_clients(redis_server), 10, "the init connection to close")
        fn.api.restore_release.set()
        outcome = fn.invoke({})
        assert outcome.ok, outcome.error
        assert outcome.body["pong"] is True
        assert outcome.body["stats"]["connects"] == 2
        # A close the server has not processed yet may still be listed for a moment.
        wait_for(
            lambda: len(faaspool_clients(redis_server)) == 1, 10, "one connection after restore"
        )
    assert not fn.api.restore_errors


SIGTERM_APP = """
    import json, os, signal
    import faaspool
    from faaspool import _cache
    from faaspool.adapters.aws_lambda import with_redis

    def open_sockets():
        return sum(
            1
            for client in list(_cache._clients.values())
            for conn in list(client.connection_pool._available_connections)
            + list(client.connection_pool._in_use_connections)
            if conn._sock is not None
        )

    def on_sigterm(signum, frame):
        with open(os.environ["REPORT"], "w") as f:
            json.dump({"open_sockets_seen_by_user_handler": open_sockets()}, f)
        os._exit(0)

    if os.environ.get("INSTALL") == "before":
        signal.signal(signal.SIGTERM, on_sigterm)

    @with_redis
    def handler(event, context, redis):
        redis.ping()
        return {"open_sockets": open_sockets()}

    if os.environ.get("INSTALL") == "after":
        signal.signal(signal.SIGTERM, on_sigterm)
"""


# awslambdaric polls for the next event on a thread on the python3.12+ runtimes, and on
# the main thread before: the handler must run in both.
_POLLING = {"main-thread": "AWS_Lambda_python3.11", "thread": "AWS_Lambda_python3.12"}


@pytest.mark.parametrize("polling", sorted(_POLLING))
@pytest.mark.parametrize("install", ["before", "after"])
def test_sigterm_closes_connections_then_runs_the_users_handler(
    tmp_path: Path, redis_server: RedisServer, install: str, polling: str
) -> None:
    write_app(tmp_path, SIGTERM_APP)
    report = tmp_path / "report.json"
    env = {
        "REDIS_URL": redis_server.url,
        "REPORT": str(report),
        "INSTALL": install,
        "AWS_EXECUTION_ENV": _POLLING[polling],
    }
    with LambdaFunction(tmp_path, env=env) as fn:
        outcome = fn.invoke({})
        assert outcome.ok and outcome.body["open_sockets"] == 1, outcome.error
        fn.send_signal(signal.SIGTERM)
        assert fn.wait_exit() == 0, fn.log()
    assert json.loads(report.read_text()) == {"open_sockets_seen_by_user_handler": 0}


def test_sigterm_without_a_user_handler_still_terminates(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    write_app(tmp_path, SIGTERM_APP)
    env = {
        "REDIS_URL": redis_server.url,
        "REPORT": str(tmp_path / "unused.json"),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    }
    with LambdaFunction(tmp_path, env=env) as fn:
        assert fn.invoke({}).ok
        fn.send_signal(signal.SIGTERM)
        assert fn.wait_exit() == -signal.SIGTERM


# -- in process, with awslambdaric's LambdaContext ------------------------------------------


def test_wrapper_keeps_the_handlers_identity_and_hides_the_injected_parameter(
    redis_server: RedisServer,
) -> None:
    def handler(event: dict[str, Any], context: Any, redis: Any) -> Any:
        """Doc."""
        return redis.ping()

    wrapped = with_redis(url=redis_server.url)(handler)
    assert wrapped.__name__ == "handler"
    assert wrapped.__doc__ == "Doc."
    assert wrapped.__wrapped__ is handler
    assert list(inspect.signature(wrapped).parameters) == ["event", "context"]
    assert "redis" not in wrapped.__annotations__
    assert wrapped({}, lambda_context()) is True


def test_bare_form_uses_redis_url(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)

    @with_redis
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.set("bare", "yes")

    assert handler({}, lambda_context()) is True
    assert redis_server.admin().get("bare") == "yes"


def test_configured_form_with_another_parameter_name(redis_server: RedisServer) -> None:
    @with_redis(url=redis_server.url, param="cache", max_connections=1)
    def handler(event: Any, context: Any, cache: Any) -> Any:
        return cache.connection_pool.max_connections

    assert handler({}, lambda_context()) == 1


def test_an_explicit_client_passed_by_the_caller_wins(redis_server: RedisServer) -> None:
    @with_redis(url=redis_server.url)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis

    sentinel = object()
    assert handler({}, lambda_context(), redis=sentinel) is sentinel


def test_bad_options_fail_at_decoration_without_leaking_the_password() -> None:
    def handler(event: Any, context: Any, redis: Any) -> None:
        pass

    with pytest.raises(ConfigError, match="max_connections") as info:
        with_redis(url="redis://:s3cret@127.0.0.1:1/0", max_connections=0)(handler)
    assert "s3cret" not in str(info.value)
    assert "handler" in str(info.value)
    with pytest.raises(ConfigError, match="param"):
        with_redis(url="redis://127.0.0.1:1/0", param="not an identifier")(handler)
    with pytest.raises(ConfigError, match="timeout"):
        with_redis(url="redis://127.0.0.1:1/0", timeout=-1)(handler)
    with pytest.raises(ConfigError, match="url="):
        with_redis("redis://127.0.0.1:1/0")  # type: ignore[call-overload]


def test_a_handler_without_the_parameter_is_refused() -> None:
    def handler(event: Any, context: Any) -> None:
        pass

    with pytest.raises(ConfigError, match=r"no parameter 'redis'.*param=") as info:
        with_redis(url="redis://127.0.0.1:1/0")(handler)
    assert "handler()" in str(info.value)


def test_the_timeout_option_caps_the_remaining_time(redis_server: RedisServer) -> None:
    @with_redis(url=redis_server.url, timeout=2)
    def handler(event: Any, context: Any, redis: Any) -> float | None:
        return faaspool.remaining()

    capped = handler({}, lambda_context(timeout_ms=60_000))
    assert capped is not None and 0 < capped <= 2
    shorter = handler({}, lambda_context(timeout_ms=1_000))
    assert shorter is not None and 0 < shorter <= 1


def test_an_expired_context_fails_the_first_command_with_deadline_exceeded(
    redis_server: RedisServer,
) -> None:
    @with_redis(url=redis_server.url)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.get("x")

    with pytest.raises(DeadlineExceeded):
        handler({}, lambda_context(timeout_ms=-1))


def test_a_connection_left_checked_out_is_reclaimed_when_the_handler_returns(
    redis_server: RedisServer,
) -> None:
    @with_redis(url=redis_server.url, max_connections=1)
    def leaky(event: Any, context: Any, redis: Any) -> None:
        pubsub = redis.pubsub()
        pubsub.subscribe("news")  # never closed: the connection stays checked out

    @with_redis(url=redis_server.url, max_connections=1)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    leaky({}, lambda_context())
    assert faaspool.stats()["leaks_reclaimed"] >= 1
    # One connection in the pool: it would wait forever had the leak not been reclaimed.
    assert handler({}, lambda_context(timeout_ms=2_000)) is True


# -- Powertools, every order ------------------------------------------------------------------


def _powertools_decorators(service: str, stream: io.StringIO) -> dict[str, Any]:
    from aws_lambda_powertools import Logger, Tracer
    from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, event_source

    logger = Logger(service=service, stream=stream)
    tracer = Tracer(service=service, disabled=True)

    @lambda_handler_decorator
    def stamp(handler: Callable[..., Any], event: Any, context: Any) -> Any:
        response = handler(event, context)
        response["stamped"] = True
        return response

    return {
        "logger": logger.inject_lambda_context,
        "tracer": tracer.capture_lambda_handler,
        "middleware": stamp,
        "event_source": event_source(data_class=APIGatewayProxyEvent),
    }


_ORDERS = list(itertools.permutations(["logger", "tracer", "middleware", "event_source"]))


@pytest.mark.parametrize("order", _ORDERS, ids=["-".join(o) for o in _ORDERS])
def test_powertools_decorators_in_any_order_above_it(
    redis_server: RedisServer, order: tuple[str, ...]
) -> None:
    stream = io.StringIO()
    decorators = _powertools_decorators(f"svc-{'-'.join(order)}", stream)

    def handler(event: Any, context: Any, redis: Any) -> dict[str, Any]:
        return {"event": type(event).__name__, "hits": redis.incr("hits")}

    composed: Any = with_redis(url=redis_server.url)(handler)
    for name in reversed(order):
        composed = decorators[name](composed)
    result = composed({"path": "/x"}, lambda_context())
    assert result == {"event": "APIGatewayProxyEvent", "hits": 1, "stamped": True}
    assert composed.__name__ == "handler"


def test_above_logger_and_tracer_it_still_works(redis_server: RedisServer) -> None:
    decorators = _powertools_decorators("svc-outer", io.StringIO())

    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    composed = with_redis(url=redis_server.url)(decorators["logger"](decorators["tracer"](handler)))
    assert composed({}, lambda_context()) is True


@pytest.mark.parametrize("middleware", ["middleware", "event_source"])
def test_above_a_middleware_that_drops_keywords_is_refused(middleware: str) -> None:
    decorators = _powertools_decorators("svc-refused", io.StringIO())

    def handler(event: Any, context: Any, redis: Any) -> None:
        pass

    below = decorators[middleware](handler)
    with pytest.raises(ConfigError, match="innermost"):
        with_redis(url="redis://127.0.0.1:1/0")(below)


def test_above_a_middleware_that_forwards_keywords_works(redis_server: RedisServer) -> None:
    from aws_lambda_powertools.middleware_factory import lambda_handler_decorator

    @lambda_handler_decorator
    def forwarding(handler: Callable[..., Any], event: Any, context: Any, **kwargs: Any) -> Any:
        return handler(event, context, **kwargs)

    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    composed = with_redis(url=redis_server.url)(forwarding(handler))
    assert composed({}, lambda_context()) is True


# -- the per-invocation log record ------------------------------------------------------------


def test_no_log_record_by_default(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    @with_redis(url=redis_server.url)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    with caplog.at_level(logging.DEBUG, logger="faaspool"):
        handler({}, lambda_context())
    assert not [r for r in caplog.records if r.name.startswith("faaspool.invocation")]


def test_the_log_record_goes_to_stdlib_logging_without_powertools_logger(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAASPOOL_LOG_INVOCATIONS", "true")
    # No configured Powertools Logger in this process for this service name.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "no-such-service")
    monkeypatch.setattr(
        logging.Logger.manager, "loggerDict", dict(logging.Logger.manager.loggerDict)
    )
    for name, candidate in list(logging.Logger.manager.loggerDict.items()):
        if getattr(candidate, "powertools_handler", None):
            del logging.Logger.manager.loggerDict[name]

    @with_redis(url=redis_server.url)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    with caplog.at_level(logging.INFO, logger="faaspool.invocation"):
        handler({}, lambda_context(request_id="req-A"))
        handler({}, lambda_context(request_id="req-B"))
    records = [r for r in caplog.records if r.name == "faaspool.invocation"]
    assert len(records) == 2
    first, second = (r.faaspool for r in records)  # type: ignore[attr-defined]
    assert first["invocation"] == "req-A" and first["connects"] == 1
    assert second["invocation"] == "req-B" and second["connects"] == 0
    assert second["reuses"] >= 1
    assert first["platform"] == "aws_lambda" and first["outcome"] == "ok"
    assert "reuses=" in records[1].getMessage()


def test_the_log_record_names_the_error_and_never_the_password(
    redis_server_factory: Callable[..., RedisServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory(password="pw-9f8e")
    logged: list[logging.LogRecord] = []
    target = logging.getLogger("faaspool.test.explicit")

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record)

    target.addHandler(Keep())
    target.setLevel(logging.INFO)

    @with_redis(url=server.url, log_invocations=True, logger=target)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        redis.ping()
        raise ValueError("boom")

    with pytest.raises(ValueError):
        handler({}, lambda_context())
    (record,) = logged
    assert record.faaspool["outcome"] == "ValueError"  # type: ignore[attr-defined]
    assert "pw-9f8e" not in json.dumps(record.faaspool) + record.getMessage()  # type: ignore[attr-defined]


def test_the_log_record_uses_the_services_powertools_logger(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools import Logger

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "payments-log-test")
    stream = io.StringIO()
    logger = Logger(service="payments-log-test", stream=stream)

    @logger.inject_lambda_context
    @with_redis(url=redis_server.url, log_invocations=True)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    handler({}, lambda_context(request_id="req-PT"))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (ours,) = [line for line in lines if "faaspool" in line]
    assert ours["service"] == "payments-log-test"
    assert ours["function_request_id"] == "req-PT"
    assert ours["faaspool"]["platform"] == "aws_lambda"


# -- lifecycle, in process --------------------------------------------------------------------


def _open_sockets() -> int:
    return sum(
        1
        for client in list(_cache._clients.values())
        for conn in list(client.connection_pool._available_connections)
        if conn._sock is not None
    )


def test_snapstart_hooks_are_registered_only_under_snap_start(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import snapshot_restore_py
    from awslambdaric import lambda_runtime_hooks_runner

    before: list[Any] = []
    after: list[Any] = []
    monkeypatch.setattr(snapshot_restore_py, "_before_snapshot_registry", before)
    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", after)

    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    with_redis(url=redis_server.url)(handler)
    assert before == [] and after == []

    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    wrapped = with_redis(url=redis_server.url)(handler)
    with_redis(url=redis_server.url, param="redis")(lambda event, context, redis: None)
    assert len(before) == 1 and len(after) == 1  # once per process, not per handler

    assert wrapped({}, lambda_context()) is True
    assert _open_sockets() == 1
    (snapshotted,) = [c["name"] for c in redis_server.clients_named("faaspool:")]
    lambda_runtime_hooks_runner.run_before_snapshot()
    assert _open_sockets() == 0
    wait_for(lambda: not faaspool_clients(redis_server), 10, "the server to see the close")
    lambda_runtime_hooks_runner.run_after_restore()
    assert _open_sockets() == 0  # nothing reconnects until the first command
    assert wrapped({}, lambda_context()) is True
    assert _open_sockets() == 1
    # Every clone of one snapshot names itself anew, so the fleet view tells them apart.
    (restored,) = [c["name"] for c in redis_server.clients_named("faaspool:")]
    assert restored != snapshotted
    assert restored.rsplit(":", 1)[0] == snapshotted.rsplit(":", 1)[0]


def test_sigterm_handler_chains_to_the_one_installed_before(
    redis_server: RedisServer,
) -> None:
    if sys.platform == "win32":
        pytest.skip("no SIGTERM delivery to oneself on Windows")
    calls: list[int] = []
    seen_open: list[int] = []

    def user_handler(signum: int, frame: Any) -> None:
        calls.append(signum)
        seen_open.append(_open_sockets())

    signal.signal(signal.SIGTERM, user_handler)

    @with_redis(url=redis_server.url)
    def handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.ping()

    handler({}, lambda_context())
    assert _open_sockets() == 1
    os.kill(os.getpid(), signal.SIGTERM)
    wait_for(lambda: bool(calls), 5, "the chained SIGTERM handler")
    assert calls == [signal.SIGTERM]
    assert seen_open == [0]


def test_importing_the_adapter_imports_no_aws_package() -> None:
    code = (
        "import sys, faaspool.adapters.aws_lambda as a\n"
        "def h(event, context, redis): pass\n"
        "a.with_redis(url='redis://127.0.0.1:1/0')(h)\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('boto3', 'botocore', 'aws_lambda_powertools', 'awslambdaric', 'snapshot_restore_py')]\n"
        "print(heavy)\n"
    )
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
