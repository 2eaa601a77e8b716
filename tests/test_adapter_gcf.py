"""faaspool.adapters.gcf: handlers served by the real functions-framework server (gunicorn
threads, or uvicorn for functions_framework.aio), driven by real HTTP requests and
CloudEvents."""

from __future__ import annotations

import concurrent.futures
import inspect
import textwrap
import threading
import urllib.error
from pathlib import Path
from typing import Any

import pytest

import faaspool
from faaspool._errors import ConfigError
from tests.platforms.gcf_server import FunctionsFramework
from tests.support.server import RedisServer, wait_for

functions_framework = pytest.importorskip(
    "functions_framework", reason="functions-framework is not installed (the gcf extra)"
)

from faaspool.adapters import gcf  # noqa: E402

AUTO = "from faaspool._decorator import with_redis as auto_with_redis"

HTTP_APP = f"""
    import os
    import faaspool
    import functions_framework
    from faaspool.adapters.gcf import with_redis
    {AUTO}

    IMPORTED_IN = os.getpid()

    def report(redis):
        return {{
            "imported_in": IMPORTED_IN,
            "served_by": os.getpid(),
            "n": redis.incr("n"),
            "client_id": redis.client_id(),
            "remaining": faaspool.remaining(),
            "stats": faaspool.stats(),
        }}

    @functions_framework.http
    @auto_with_redis
    def below(request, redis):
        return report(redis)

    @with_redis
    @functions_framework.http
    def above(request, redis):
        return report(redis)

    @functions_framework.http
    @auto_with_redis
    def blocking(request, redis):
        try:
            redis.blpop("gcf:never-filled", timeout=30)
        except faaspool.DeadlineExceeded as exc:
            return {{"error": type(exc).__name__, "stats": faaspool.stats()}}
        return {{"error": None}}
"""


def write(directory: Path, source: str, name: str = "main") -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def clients(server: RedisServer, target: str) -> list[dict[str, str]]:
    return server.clients_named(f"faaspool:{target}:")


@pytest.mark.parametrize("target", ["below", "above"])
def test_http_function_in_either_decorator_order_reuses_one_connection(
    tmp_path: Path, redis_server: RedisServer, target: str
) -> None:
    source = write(tmp_path, HTTP_APP)
    with FunctionsFramework(source, target, env={"REDIS_URL": redis_server.url}) as ff:
        bodies = [ff.get_json("/") for _ in range(3)]
        assert [b["n"] for b in bodies] == [1, 2, 3]
        assert len({b["client_id"] for b in bodies}) == 1
        assert bodies[-1]["stats"]["connects"] == 1
        assert bodies[0]["remaining"] is None  # no CLOUD_RUN_TIMEOUT_SECONDS: no deadline
        # Decorated in the gunicorn master, before the fork; connected in the worker.
        assert bodies[0]["imported_in"] != bodies[0]["served_by"]
        assert len(clients(redis_server, target)) == 1


def test_the_request_deadline_is_cloud_run_timeout_seconds(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    source = write(tmp_path, HTTP_APP)
    env = {"REDIS_URL": redis_server.url, "CLOUD_RUN_TIMEOUT_SECONDS": "2"}
    with FunctionsFramework(source, "below", env=env) as ff:
        remaining = ff.get_json("/")["remaining"]
        assert 0 < remaining <= 2
    with FunctionsFramework(source, "blocking", env=env) as ff:
        body = ff.get_json("/")
        assert body["error"] == "DeadlineExceeded"
        assert body["stats"]["deadline_hits"] >= 1


CLOUD_EVENT_APP = f"""
    import json
    import functions_framework
    from faaspool.adapters.gcf import with_redis
    {AUTO}

    @functions_framework.cloud_event
    @auto_with_redis
    def below(cloud_event, redis):
        redis.set("ce:" + cloud_event["id"], json.dumps(cloud_event.data))

    @with_redis
    @functions_framework.cloud_event
    def above(cloud_event, redis):
        redis.set("ce:" + cloud_event["id"], json.dumps(cloud_event.data))
"""


@pytest.mark.parametrize("target", ["below", "above"])
def test_cloud_event_function_in_either_decorator_order(
    tmp_path: Path, redis_server: RedisServer, target: str
) -> None:
    source = write(tmp_path, CLOUD_EVENT_APP)
    with FunctionsFramework(source, target, env={"REDIS_URL": redis_server.url}) as ff:
        for i in range(3):
            reply = ff.cloud_event(f"{target}-{i}", {"i": i})
            assert reply.status == 200, (reply.body, ff.log())
        admin = redis_server.admin()
        assert [admin.get(f"ce:{target}-{i}") for i in range(3)] == [
            '{"i": 0}',
            '{"i": 1}',
            '{"i": 2}',
        ]
        assert len(clients(redis_server, target)) == 1


AIO_APP = f"""
    import json
    import faaspool
    import functions_framework.aio
    from faaspool.adapters.gcf import with_redis
    {AUTO}

    @functions_framework.aio.http
    @auto_with_redis
    async def async_below(request, redis):
        return {{
            "n": await redis.incr("n"),
            "client_id": await redis.client_id(),
            "client": type(redis).__module__,
            "remaining": faaspool.remaining(),
        }}

    @with_redis
    @functions_framework.aio.http
    async def async_above(request, redis):
        return {{"n": await redis.incr("n"), "client_id": await redis.client_id(),
                 "client": type(redis).__module__, "remaining": faaspool.remaining()}}

    @functions_framework.aio.http
    @with_redis
    def sync_in_aio(request, redis):
        return {{"n": redis.incr("n"), "client_id": redis.client_id(),
                 "client": type(redis).__module__, "remaining": faaspool.remaining()}}

    @functions_framework.aio.cloud_event
    @with_redis
    async def async_event(cloud_event, redis):
        await redis.set("ce:" + cloud_event["id"], json.dumps(cloud_event.data))
"""


@pytest.mark.parametrize(
    ("target", "client"),
    [
        ("async_below", "faaspool.aio.client"),
        ("async_above", "faaspool.aio.client"),
        ("sync_in_aio", "faaspool.client"),
    ],
)
def test_functions_framework_aio_http(
    tmp_path: Path, redis_server: RedisServer, target: str, client: str
) -> None:
    source = write(tmp_path, AIO_APP)
    env = {"REDIS_URL": redis_server.url, "CLOUD_RUN_TIMEOUT_SECONDS": "5"}
    with FunctionsFramework(source, target, env=env) as ff:
        bodies = [ff.get_json("/") for _ in range(3)]
        assert [b["n"] for b in bodies] == [1, 2, 3]
        assert len({b["client_id"] for b in bodies}) == 1
        assert bodies[0]["client"] == client
        assert 0 < bodies[0]["remaining"] <= 5
        assert len(clients(redis_server, target)) == 1


def test_functions_framework_aio_cloud_event(tmp_path: Path, redis_server: RedisServer) -> None:
    source = write(tmp_path, AIO_APP)
    with FunctionsFramework(source, "async_event", env={"REDIS_URL": redis_server.url}) as ff:
        reply = ff.cloud_event("aio-1", {"hello": "world"})
        assert reply.status == 200, (reply.body, ff.log())
        assert redis_server.admin().get("ce:aio-1") == '{"hello": "world"}'


BUSY_APP = f"""
    import functions_framework
    {AUTO}

    @functions_framework.http
    @auto_with_redis(max_connections=3)
    def busy(request, redis):
        # Each request holds its connection for a moment, so the threads contend.
        redis.blpop("gcf:never-filled", timeout=0.02)
        return {{"ok": True}}
"""


def test_200_concurrent_requests_on_8_threads_use_at_most_the_configured_connections(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    source = write(tmp_path, BUSY_APP)
    env = {"REDIS_URL": redis_server.url, "THREADS": "8", "WORKERS": "1"}
    with FunctionsFramework(source, "busy", env=env) as ff:
        received_before = redis_server.total_connections_received()
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, len(clients(redis_server, "busy")))
                stop.wait(0.005)

        monitor = threading.Thread(target=sample)
        monitor.start()
        start = threading.Barrier(200, timeout=30)

        def one(_: int) -> int:
            start.wait()
            return ff.request("/", timeout=60).status

        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
                statuses = list(pool.map(one, range(200)))
        finally:
            stop.set()
            monitor.join(10)
        assert statuses == [200] * 200, ff.log()[-4000:]
        assert 1 <= peak <= 3
        # No connection was ever opened beyond the three: every request reused one.
        assert redis_server.total_connections_received() - received_before <= 3
        assert len(clients(redis_server, "busy")) <= 3


TIMEOUT_APP = f"""
    import time
    import faaspool
    import functions_framework
    {AUTO}

    @functions_framework.http
    @auto_with_redis(max_connections=2, timeout=60)
    def slow(request, redis):
        op = request.args.get("op")
        if op == "mid-command":
            # The framework's timeout is raised into this thread while the command is in
            # flight: that connection's state is unknown, it must be closed.
            redis.blpop("gcf:never-filled", timeout=3)
        elif op == "leak":
            pubsub = redis.pubsub()
            pubsub.subscribe("news")
            while True:  # the framework's timeout lands here, the pubsub still holding
                time.sleep(0.001)
        elif op == "churn":
            while True:  # the timeout lands at any point of the command path
                redis.incr("churn")
        elif op == "stats":
            pool = redis.connection_pool
            return {{
                "stats": faaspool.stats(),
                "created": pool._created_connections,
                "available": len(pool._available_connections),
                "in_use": len(pool._in_use_connections),
            }}
        return {{"pong": redis.ping()}}
"""


def test_threaded_timeout_never_returns_a_connection_in_use_and_the_pool_recovers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    source = write(tmp_path, TIMEOUT_APP)
    env = {
        "REDIS_URL": redis_server.url,
        "THREADS": "4",
        "CLOUD_RUN_TIMEOUT_SECONDS": "1",
        "THREADED_TIMEOUT_ENABLED": "true",
    }
    with FunctionsFramework(source, "slow", env=env) as ff:
        assert ff.get_json("/")["pong"] is True

        def interrupted(op: str) -> int:
            try:
                return ff.request(f"/?op={op}", timeout=30).status
            except (urllib.error.URLError, ConnectionError):
                return -1  # the worker dropped the connection: also not a success

        # Two at a time: two connections, so none of them waits for the pool.
        for op in ("leak", "mid-command", "churn"):
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
                statuses = list(pool.map(interrupted, [op, op]))
            assert all(s != 200 for s in statuses), (op, statuses)
        assert "Request handling exceeded" in ff.log() or "RequestTimeoutException" in ff.log()

        after = ff.get_json("/?op=stats")
        # Nothing stays checked out, and what the leaking handlers held was taken back.
        assert after["in_use"] == 0, after
        assert after["stats"]["leaks_reclaimed"] >= 2, after
        assert after["created"] <= 2
        # The pool still serves: more requests than connections, all succeed.
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            pongs = list(pool.map(lambda _: ff.get_json("/")["pong"], range(40)))
        assert pongs == [True] * 40
        wait_for(lambda: len(clients(redis_server, "slow")) <= 2, 10, "at most 2 connections")


# -- in process -------------------------------------------------------------------------------


def test_the_wrapper_is_a_plain_function_with_the_handlers_name(redis_server: RedisServer) -> None:
    import types

    def hello(request: Any, redis: Any) -> str:
        return "hi"

    async def ahello(request: Any, redis: Any) -> str:
        return "hi"

    wrapped = gcf.with_redis(url=redis_server.url)(hello)
    awrapped = gcf.with_redis(url=redis_server.url)(ahello)
    assert isinstance(wrapped, types.FunctionType) and wrapped.__name__ == "hello"
    assert not inspect.iscoroutinefunction(wrapped)
    assert inspect.iscoroutinefunction(awrapped) and awrapped.__name__ == "ahello"
    assert list(inspect.signature(wrapped).parameters) == ["request"]


def test_registration_by_name_survives_either_order(redis_server: RedisServer) -> None:
    from functions_framework import _function_registry

    def first(request: Any, redis: Any) -> str:
        return "1"

    def second(request: Any, redis: Any) -> str:
        return "2"

    below = functions_framework.http(gcf.with_redis(url=redis_server.url)(first))
    above = gcf.with_redis(url=redis_server.url)(functions_framework.http(second))
    assert _function_registry.REGISTRY_MAP["first"] == "http"
    assert _function_registry.REGISTRY_MAP["second"] == "http"
    assert below.__name__ == "first" and above.__name__ == "second"


def test_cloud_run_timeout_seconds_must_be_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLOUD_RUN_TIMEOUT_SECONDS", "soon")

    def hello(request: Any, redis: Any) -> None:
        pass

    with pytest.raises(ConfigError, match="CLOUD_RUN_TIMEOUT_SECONDS"):
        gcf.with_redis(url="redis://127.0.0.1:1/0")(hello)
    monkeypatch.setenv("CLOUD_RUN_TIMEOUT_SECONDS", "0")
    assert gcf.with_redis(url="redis://127.0.0.1:1/0")(hello).__faaspool__.timeout is None


def test_faaspool_timeout_wins_over_cloud_run_timeout(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUD_RUN_TIMEOUT_SECONDS", "300")
    monkeypatch.setenv("FAASPOOL_TIMEOUT", "2")

    def hello(request: Any, redis: Any) -> float | None:
        return faaspool.remaining()

    wrapped = gcf.with_redis(url=redis_server.url)(hello)
    left = wrapped(object())
    assert left is not None and 0 < left <= 2
    explicit = gcf.with_redis(url=redis_server.url, timeout=1)(hello)
    left = explicit(object())
    assert left is not None and 0 < left <= 1
