"""The examples' shared shop logic (examples/*/shop.py) in process, against a real
redis-server: the WATCH transactions when another client gets in between, and the stream
consumer's replies under both protocols."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

import faaspool
from faaspool import client as faaspool_client
from tests.support.server import RedisServer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PLATFORMS = ("lambda", "gcf", "azure")


def load_shop() -> ModuleType:
    # A module name of its own: the examples' apps import theirs as plain `shop`.
    spec = importlib.util.spec_from_file_location("examples_shop", EXAMPLES / "lambda" / "shop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shop = load_shop()


@pytest.fixture(params=[3, 2], ids=["resp3", "resp2"])
def client(request: pytest.FixtureRequest, redis_server: RedisServer) -> redis.Redis:
    return faaspool.get_redis(redis_server.url, decode_responses=True, protocol=request.param)


@pytest.fixture
def between_watch_and_exec(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[[], Any]]]:
    """Actions to run, one per transaction, after its WATCH and reads, before MULTI."""
    actions: list[Callable[[], Any]] = []
    original = faaspool_client.Pipeline.multi

    def multi(self: Any) -> None:
        if actions:
            actions.pop(0)()
        original(self)

    monkeypatch.setattr(faaspool_client.Pipeline, "multi", multi)
    yield actions


def test_the_three_examples_share_one_shop() -> None:
    texts = {p: (EXAMPLES / p / "shop.py").read_text() for p in PLATFORMS}
    assert texts["gcf"] == texts["lambda"] and texts["azure"] == texts["lambda"]


def test_an_order_retries_when_the_stock_changes_under_its_watch(
    client: redis.Redis, redis_server: RedisServer, between_watch_and_exec: list[Any]
) -> None:
    admin = redis_server.admin()
    shop.put_product(client, "lamp", {"name": "Lamp", "price_cents": 1999, "stock": 5})
    between_watch_and_exec.append(lambda: admin.hincrby("product:lamp", "stock", -3))
    order = shop.place_order(client, {"sku": "lamp", "qty": 2})
    assert between_watch_and_exec == []  # the interference ran, and EXEC was refused once
    assert shop.get_product(client, "lamp")["stock"] == 0
    assert admin.xlen("orders") == 1
    assert shop.get_order(client, order["id"])["status"] == "placed"


def test_the_retry_sees_the_new_stock_and_refuses_to_oversell(
    client: redis.Redis, redis_server: RedisServer, between_watch_and_exec: list[Any]
) -> None:
    admin = redis_server.admin()
    shop.put_product(client, "lamp", {"name": "Lamp", "price_cents": 1999, "stock": 5})
    between_watch_and_exec.append(lambda: admin.hset("product:lamp", "stock", 1))
    with pytest.raises(shop.OutOfStock, match="only 1"):
        shop.place_order(client, {"sku": "lamp", "qty": 2})
    assert shop.get_product(client, "lamp")["stock"] == 1
    assert admin.xlen("orders") == 0


def test_endless_contention_ends_in_a_retryable_error(
    client: redis.Redis, redis_server: RedisServer, between_watch_and_exec: list[Any]
) -> None:
    admin = redis_server.admin()
    shop.put_product(client, "lamp", {"name": "Lamp", "price_cents": 1999, "stock": 100})
    for _ in range(shop.MAX_ATTEMPTS):
        between_watch_and_exec.append(lambda: admin.hincrby("product:lamp", "stock", -1))
    with pytest.raises(shop.Contended) as info:
        shop.place_order(client, {"sku": "lamp", "qty": 1})
    assert info.value.status == 503
    assert shop.get_product(client, "lamp")["stock"] == 100 - shop.MAX_ATTEMPTS


def test_the_consumer_fulfils_in_order_and_moves_the_checkpoint(
    client: redis.Redis, redis_server: RedisServer
) -> None:
    shop.put_product(client, "lamp", {"name": "Lamp", "price_cents": 1999, "stock": 5})
    ids = [shop.place_order(client, {"sku": "lamp", "qty": q})["id"] for q in (1, 2)]
    assert shop.fulfil_orders(client, wait_seconds=0) == ids
    assert [shop.get_order(client, i)["status"] for i in ids] == ["fulfilled", "fulfilled"]
    admin = redis_server.admin()
    assert admin.get("sales:lamp") == "3"
    assert admin.xlen("orders") == 1  # trimmed up to the checkpoint
    assert shop.fulfil_orders(client, wait_seconds=0) == []
    assert shop.fulfil_orders(client, wait_seconds=0.05) == []


def test_a_consumer_that_lost_the_race_changes_nothing(
    client: redis.Redis, redis_server: RedisServer, between_watch_and_exec: list[Any]
) -> None:
    shop.put_product(client, "lamp", {"name": "Lamp", "price_cents": 1999, "stock": 5})
    order = shop.place_order(client, {"sku": "lamp", "qty": 1})
    admin = redis_server.admin()
    last = admin.xrange("orders")[-1][0]
    # Another consumer fulfils the same entries while this one is between WATCH and EXEC.
    between_watch_and_exec.append(lambda: admin.set("orders:fulfilled", last))
    assert shop.fulfil_orders(client, wait_seconds=0) == []
    assert shop.get_order(client, order["id"])["status"] == "placed"
    assert admin.get("sales:lamp") is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "JSON object"),
        ({"name": "", "price_cents": 1, "stock": 1}, "'name'"),
        ({"name": "x", "price_cents": -1, "stock": 1}, "'price_cents'"),
        ({"name": "x", "price_cents": 1, "stock": True}, "'stock'"),
    ],
)
def test_bad_products_are_refused(client: redis.Redis, body: Any, message: str) -> None:
    with pytest.raises(shop.ShopError, match=message) as info:
        shop.put_product(client, "x", body)
    assert info.value.status == 400


def test_bad_orders_are_refused(client: redis.Redis) -> None:
    with pytest.raises(shop.ShopError, match="'qty'"):
        shop.place_order(client, {"sku": "x", "qty": 0})
    with pytest.raises(shop.NotFound):
        shop.place_order(client, {"sku": "missing", "qty": 1})
