"""The shop's data in Redis, with no platform in sight: products, orders, and a stream of
placed orders that a consumer fulfils.

    product:<sku>      hash: name, price_cents, stock
    order:<id>         hash: sku, qty, status (placed, then fulfilled)
    orders             stream of placed orders: order, sku, qty
    orders:fulfilled   the stream id up to which orders are fulfilled
    sales:<sku>        units fulfilled

Each function takes the cached faaspool client (a ``redis.Redis`` made with
``decode_responses=True``), so it runs unchanged on Lambda, Cloud Functions and Azure.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from redis import Redis, WatchError

import faaspool

STREAM = "orders"
CHECKPOINT = "orders:fulfilled"
MAX_ATTEMPTS = 10


class ShopError(Exception):
    """A request the shop refuses; ``status`` is the HTTP status to answer with."""

    status = 400


class NotFound(ShopError):
    status = 404


class OutOfStock(ShopError):
    status = 409


class Contended(ShopError):
    """Other orders kept changing the stock; the client may try again."""

    status = 503


def product_key(sku: str) -> str:
    return f"product:{sku}"


def order_key(order_id: str) -> str:
    return f"order:{order_id}"


def get_product(redis: Redis, sku: str) -> dict[str, Any]:
    """The product, or `NotFound`."""
    fields: dict[str, str] = redis.hgetall(product_key(sku))
    if not fields:
        raise NotFound(f"no product {sku!r}")
    return _product(sku, fields)


def put_product(redis: Redis, sku: str, body: Any) -> dict[str, Any]:
    """Create or replace a product from ``{"name", "price_cents", "stock"}``."""
    if not isinstance(body, Mapping):
        raise ShopError("the body must be a JSON object")
    name = body.get("name")
    price = body.get("price_cents")
    stock = body.get("stock")
    if not isinstance(name, str) or not name:
        raise ShopError("'name' must be a non-empty string")
    for label, value in (("price_cents", price), ("stock", stock)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ShopError(f"{label!r} must be a whole number >= 0")
    fields = {"name": name, "price_cents": str(price), "stock": str(stock)}
    redis.hset(product_key(sku), mapping=fields)
    return _product(sku, fields)


def place_order(redis: Redis, body: Any) -> dict[str, Any]:
    """Take ``qty`` units of ``sku`` out of stock and queue the order, atomically.

    An optimistic transaction: WATCH the product, check its stock, then MULTI/EXEC the
    decrement, the order and its stream entry. If another order changed the stock in
    between, EXEC does nothing and we try again, so stock never goes below zero.
    """
    if not isinstance(body, Mapping):
        raise ShopError("the body must be a JSON object")
    sku, qty = body.get("sku"), body.get("qty", 1)
    if not isinstance(sku, str) or not sku:
        raise ShopError("'sku' must be a non-empty string")
    if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
        raise ShopError("'qty' must be a whole number >= 1")
    key = product_key(sku)
    order_id = uuid.uuid4().hex
    # The pipeline holds one connection for the whole WATCH ... EXEC; faaspool never
    # returns a connection to the pool with a WATCH or MULTI still open.
    with redis.pipeline() as pipe:
        for _ in range(MAX_ATTEMPTS):
            try:
                pipe.watch(key)
                stock = pipe.hget(key, "stock")
                if stock is None:
                    raise NotFound(f"no product {sku!r}")
                if int(stock) < qty:
                    raise OutOfStock(f"only {stock} of {sku!r} left")
                pipe.multi()
                pipe.hincrby(key, "stock", -qty)
                pipe.hset(order_key(order_id), mapping={"sku": sku, "qty": qty, "status": "placed"})
                pipe.xadd(STREAM, {"order": order_id, "sku": sku, "qty": qty})
                pipe.execute()
            except WatchError:
                continue
            return {"id": order_id, "sku": sku, "qty": qty, "status": "placed"}
    raise Contended(f"{sku!r} is in high demand: try again")


def get_order(redis: Redis, order_id: str) -> dict[str, Any]:
    """The order, or `NotFound`."""
    fields: dict[str, str] = redis.hgetall(order_key(order_id))
    if not fields:
        raise NotFound(f"no order {order_id!r}")
    return {
        "id": order_id,
        "sku": fields["sku"],
        "qty": int(fields["qty"]),
        "status": fields["status"],
    }


def fulfil_orders(redis: Redis, *, wait_seconds: float, count: int = 100) -> list[str]:
    """Wait up to ``wait_seconds`` for orders placed after the checkpoint, fulfil them,
    and return their ids (an empty list when none came).

    The wait is an ``XREAD BLOCK`` on a connection of its own (`faaspool.dedicated`): it
    may block for seconds, and no other command of this process must queue behind it.
    Fulfilling is one transaction that also moves the checkpoint and trims the stream,
    under a WATCH on the checkpoint: if another consumer fulfilled the same orders first,
    ours changes nothing.
    """
    after = redis.get(CHECKPOINT) or "0-0"
    block_ms = int(wait_seconds * 1000)
    with faaspool.dedicated(redis) as conn:
        reply = conn.xread({STREAM: after}, count=count, block=block_ms if block_ms > 0 else None)
    entries = _stream_entries(reply, STREAM)
    if not entries:
        return []
    with redis.pipeline() as pipe:
        try:
            pipe.watch(CHECKPOINT)
            if (pipe.get(CHECKPOINT) or "0-0") != after:
                return []
            pipe.multi()
            for _, fields in entries:
                pipe.hset(order_key(fields["order"]), "status", "fulfilled")
                pipe.incrby(f"sales:{fields['sku']}", int(fields["qty"]))
            last = entries[-1][0]
            pipe.set(CHECKPOINT, last)
            # Fulfilled entries are done with; keep the stream short.
            pipe.xtrim(STREAM, minid=last, approximate=False)
            pipe.execute()
        except WatchError:
            return []
    return [fields["order"] for _, fields in entries]


def _product(sku: str, fields: Mapping[str, str]) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": fields["name"],
        "price_cents": int(fields["price_cents"]),
        "stock": int(fields["stock"]),
    }


def _stream_entries(reply: Any, stream: str) -> list[tuple[str, dict[str, str]]]:
    # RESP3: {stream: [entries]} (redis-py wraps the entries in one more list);
    # RESP2: [[stream, entries]].
    if not reply:
        return []
    if isinstance(reply, Mapping):
        wrapped = reply.get(stream)
        entries = wrapped[0] if wrapped else []
    else:
        entries = next((found for name, found in reply if name == stream), [])
    return [(entry_id, dict(fields)) for entry_id, fields in entries]
