"""examples/lambda, run by the real awslambdaric against the tests' Runtime API and a
private redis-server: the HTTP API through Powertools' resolver, orders placed by two
execution environments at once, and the consumer blocking on the stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.platforms.lambda_runtime import LambdaFunction, Outcome
from tests.support.fixtures import copy_example
from tests.support.server import RedisServer, wait_for

pytest.importorskip("awslambdaric", reason="awslambdaric is not installed (the aws extra)")
pytest.importorskip("aws_lambda_powertools", reason="aws-lambda-powertools is not installed")

WAIT = 30.0


@pytest.fixture(scope="module")
def server(module_redis_server: RedisServer) -> RedisServer:
    return module_redis_server


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory, "lambda")


def start(app_dir: Path, handler: str, server: RedisServer, **env: str) -> LambdaFunction:
    return LambdaFunction(
        app_dir, handler, env={"REDIS_URL": server.url, "FAASPOOL_LOG_INVOCATIONS": "true", **env}
    ).start()


@pytest.fixture(scope="module")
def api(app_dir: Path, server: RedisServer) -> Iterator[LambdaFunction]:
    fn = start(app_dir, "app.handler", server)
    try:
        yield fn
    finally:
        fn.close()


@pytest.fixture(scope="module")
def consumer(app_dir: Path, server: RedisServer) -> Iterator[LambdaFunction]:
    fn = start(app_dir, "app.consume", server, ORDER_WAIT_SECONDS="10")
    try:
        yield fn
    finally:
        fn.close()


def http_event(method: str, path: str, body: Any = None) -> dict[str, Any]:
    """An API Gateway HTTP API event (payload format 2.0)."""
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": f"api-{time.monotonic_ns()}",
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def reply(outcome: Outcome) -> tuple[int, Any]:
    assert outcome.ok, outcome.error
    return outcome.body["statusCode"], json.loads(outcome.body["body"])


def call(fn: LambdaFunction, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return reply(fn.invoke(http_event(method, path, body)))


def drain(consumer: LambdaFunction) -> None:
    """Fulfil whatever earlier tests left in the stream."""
    for _ in range(20):
        outcome = consumer.invoke({}, timeout_ms=1_200)
        assert outcome.ok, outcome.error
        if not outcome.body["fulfilled"]:
            return
    raise AssertionError("the stream did not drain")


def faaspool_records(fn: LambdaFunction) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in fn.log().splitlines() if line.startswith("{")]
    return [line["faaspool"] for line in lines if "faaspool" in line]


def test_products_are_written_and_read_through_the_api(api: LambdaFunction) -> None:
    lamp = {"name": "Lamp", "price_cents": 1999, "stock": 3}
    assert call(api, "PUT", "/products/lamp", lamp) == (200, {"sku": "lamp", **lamp})
    assert call(api, "GET", "/products/lamp") == (200, {"sku": "lamp", **lamp})
    status, body = call(api, "GET", "/products/nope")
    assert status == 404 and "nope" in body["error"]
    assert call(api, "PUT", "/products/bad", "not json")[0] == 400
    assert call(api, "PUT", "/products/bad", {"name": "x", "price_cents": -5, "stock": 1})[0] == 400


def test_two_environments_ordering_at_once_never_oversell(
    app_dir: Path, api: LambdaFunction, server: RedisServer
) -> None:
    stock = 5
    call(api, "PUT", "/products/chair", {"name": "Chair", "price_cents": 4900, "stock": stock})
    second = start(app_dir, "app.handler", server)
    try:
        order = http_event("POST", "/orders", {"sku": "chair", "qty": 1})
        pending = [fn.api.submit(order)[1] for _ in range(6) for fn in (api, second)]
        for item in pending:
            assert item.done.wait(WAIT), "an order got no answer"
        replies = [reply(item.outcome) for item in pending if item.outcome is not None]
    finally:
        second.close()
    placed = [body for status, body in replies if status == 201]
    refused = [body for status, body in replies if status == 409]
    assert len(placed) == stock and len(refused) == len(replies) - stock == 7
    assert call(api, "GET", "/products/chair")[1]["stock"] == 0
    entries = server.admin().xrange("orders")
    assert sorted(e[1]["order"] for e in entries if e[1]["sku"] == "chair") == sorted(
        p["id"] for p in placed
    )
    for body in placed:
        assert call(api, "GET", f"/orders/{body['id']}") == (200, body)


def test_the_consumer_blocks_on_the_stream_until_an_order_arrives(
    api: LambdaFunction, consumer: LambdaFunction, server: RedisServer
) -> None:
    call(api, "PUT", "/products/desk", {"name": "Desk", "price_cents": 15000, "stock": 2})
    drain(consumer)
    _, waiting = consumer.api.submit({}, timeout_ms=20_000)
    admin = server.admin()
    wait_for(
        lambda: any(c.get("cmd") == "xread" for c in admin.client_list()),
        WAIT,
        "the consumer to block in XREAD",
    )
    assert not waiting.done.is_set()
    status, order = call(api, "POST", "/orders", {"sku": "desk", "qty": 2})
    assert status == 201
    assert waiting.done.wait(WAIT), consumer.log()[-3000:]
    assert waiting.outcome is not None and waiting.outcome.ok, waiting.outcome
    assert waiting.outcome.body == {"fulfilled": [order["id"]]}
    assert call(api, "GET", f"/orders/{order['id']}")[1]["status"] == "fulfilled"
    assert admin.get("sales:desk") == "2"


def test_the_consumer_stops_waiting_before_its_deadline(consumer: LambdaFunction) -> None:
    drain(consumer)
    outcome = consumer.invoke({}, timeout_ms=2_500)
    assert outcome.ok, outcome.error  # not DeadlineExceeded: the wait was cut short in time
    assert outcome.body == {"fulfilled": []}


def test_warm_invocations_reuse_the_environments_connection(api: LambdaFunction) -> None:
    earlier = len(faaspool_records(api))  # the function may have served other tests first
    for _ in range(3):
        call(api, "GET", "/products/lamp")
    records = faaspool_records(api)
    assert records[0]["connects"] == 1  # the cold start
    for record in records[max(1, earlier) :]:
        assert (record["connects"], record["outcome"]) == (0, "ok")
        assert record["reuses"] >= 1
