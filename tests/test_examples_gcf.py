"""examples/gcf, served by the real functions-framework (gunicorn, many threads per worker)
against a private redis-server: the HTTP API, concurrent orders from the server's threads,
and the CloudEvent consumer blocking on the stream."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.platforms.gcf_server import FunctionsFramework
from tests.support.fixtures import copy_example
from tests.support.server import RedisServer, wait_for

pytest.importorskip("functions_framework", reason="functions-framework is not installed")

WAIT = 30.0


@pytest.fixture(scope="module")
def server(module_redis_server: RedisServer) -> RedisServer:
    return module_redis_server


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory, "gcf")


def serve(app_dir: Path, target: str, server: RedisServer, **env: str) -> FunctionsFramework:
    return FunctionsFramework(
        app_dir / "main.py",
        target,
        env={"REDIS_URL": server.url, "THREADS": "8", "CLOUD_RUN_TIMEOUT_SECONDS": "20", **env},
    ).start()


@pytest.fixture(scope="module")
def api(app_dir: Path, server: RedisServer) -> Iterator[FunctionsFramework]:
    ff = serve(app_dir, "api", server)
    try:
        yield ff
    finally:
        ff.close()


@pytest.fixture(scope="module")
def consumer(app_dir: Path, server: RedisServer) -> Iterator[FunctionsFramework]:
    ff = serve(app_dir, "consume", server, ORDER_WAIT_SECONDS="10")
    try:
        yield ff
    finally:
        ff.close()


def call(ff: FunctionsFramework, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None
    if body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
    reply = ff.request(path, data=data, method=method, headers={"Content-Type": "application/json"})
    return reply.status, reply.json()


def consume_event(consumer: FunctionsFramework, event_id: str) -> None:
    reply = consumer.cloud_event(
        event_id, {"message": {"data": ""}}, type_="google.cloud.pubsub.topic.v1.messagePublished"
    )
    assert reply.status == 200, (reply.status, reply.body[:500], consumer.log()[-3000:])


def test_products_are_written_and_read_through_the_api(api: FunctionsFramework) -> None:
    lamp = {"name": "Lamp", "price_cents": 1999, "stock": 3}
    assert call(api, "PUT", "/products/lamp", lamp) == (200, {"sku": "lamp", **lamp})
    assert call(api, "GET", "/products/lamp") == (200, {"sku": "lamp", **lamp})
    status, body = call(api, "GET", "/products/nope")
    assert status == 404 and "nope" in body["error"]
    assert call(api, "PUT", "/products/bad", "not json")[0] == 400
    assert call(api, "GET", "/nowhere")[0] == 404
    assert call(api, "DELETE", "/products/lamp")[0] == 405


def test_concurrent_orders_on_the_servers_threads_never_oversell(
    api: FunctionsFramework, server: RedisServer
) -> None:
    stock = 5
    call(api, "PUT", "/products/chair", {"name": "Chair", "price_cents": 4900, "stock": stock})
    order = {"sku": "chair", "qty": 1}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: call(api, "POST", "/orders", order), range(12)))
    placed = [body for status, body in replies if status == 201]
    assert len(placed) == stock
    assert sorted(status for status, _ in replies) == [201] * stock + [409] * 7
    assert call(api, "GET", "/products/chair")[1]["stock"] == 0
    for body in placed:
        assert call(api, "GET", f"/orders/{body['id']}") == (200, body)


def test_the_consumer_blocks_on_the_stream_until_an_order_arrives(
    api: FunctionsFramework, consumer: FunctionsFramework, server: RedisServer
) -> None:
    call(api, "PUT", "/products/desk", {"name": "Desk", "price_cents": 15000, "stock": 2})
    admin = server.admin()
    # With an order already in the stream, a run returns at once: it catches up on
    # everything placed so far, this order and those of earlier tests.
    first = call(api, "POST", "/orders", {"sku": "desk", "qty": 1})[1]
    consume_event(consumer, "catch-up")
    assert call(api, "GET", f"/orders/{first['id']}")[1]["status"] == "fulfilled"
    assert admin.xlen("orders") == 1  # trimmed up to the checkpoint
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(consume_event, consumer, "wait")
        wait_for(
            lambda: any(c.get("cmd") == "xread" for c in admin.client_list()),
            WAIT,
            "the consumer to block in XREAD",
        )
        assert not waiting.done()
        status, second = call(api, "POST", "/orders", {"sku": "desk", "qty": 1})
        assert status == 201
        waiting.result(timeout=WAIT)
    assert call(api, "GET", f"/orders/{second['id']}")[1]["status"] == "fulfilled"
    assert admin.get("sales:desk") == "2"


def test_requests_reuse_the_instances_connections(
    api: FunctionsFramework, server: RedisServer
) -> None:
    # Its own product: tests in this module may run in any order, or alone.
    desk = {"name": "Desk", "price_cents": 9999, "stock": 1}
    assert call(api, "PUT", "/products/desk", desk)[0] == 200
    before = {c["id"] for c in server.clients_named("faaspool:")}
    for _ in range(10):
        assert call(api, "GET", "/products/desk")[0] == 200
    assert {c["id"] for c in server.clients_named("faaspool:")} == before
