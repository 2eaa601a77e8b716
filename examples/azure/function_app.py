"""The shop on Azure Functions (Python v2 programming model): HTTP functions and a timer
consumer, sharing one Redis.

    product   GET /api/products/{sku}    PUT /api/products/{sku}
    orders    POST /api/orders
    order     GET /api/orders/{id}
    fulfil    a timer, every minute: waits on the order stream (XREAD BLOCK) and fulfils
              what arrives

The worker runs these synchronous functions on its thread pool; faaspool gives the
threads one connection pool per worker process, checks every connection before reuse
(Azure's load balancer drops idle flows after about 4 minutes without telling either
end), and bounds every wait by ``functionTimeout`` from host.json.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

import azure.functions as func
import shop
from faaspool.adapters.azure import with_redis
from redis import Redis

import faaspool

logger = logging.getLogger("shop")

# The longest one consumer run waits for new orders.
ORDER_WAIT_SECONDS = float(os.environ.get("ORDER_WAIT_SECONDS", "20"))
# Kept back from the invocation's remaining time to fulfil what the wait brought.
FULFIL_RESERVE_SECONDS = 1.0

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _json(status: int, body: dict[str, Any]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def _body(req: func.HttpRequest) -> Any:
    try:
        return req.get_json()
    except ValueError:
        return None


def _answer(status: int, action: Callable[[], dict[str, Any]]) -> func.HttpResponse:
    try:
        return _json(status, action())
    except shop.ShopError as error:
        return _json(error.status, {"error": str(error)})


@app.route(route="products/{sku}", methods=["GET", "PUT"])
@with_redis(decode_responses=True)
def product(req: func.HttpRequest, redis: Redis) -> func.HttpResponse:
    """Read or write one product. ``@with_redis`` goes below every ``@app.*`` decorator."""
    sku = req.route_params.get("sku", "")
    if req.method == "PUT":
        return _answer(200, lambda: shop.put_product(redis, sku, _body(req)))
    return _answer(200, lambda: shop.get_product(redis, sku))


@app.route(route="orders", methods=["POST"])
@with_redis(decode_responses=True)
def orders(req: func.HttpRequest, redis: Redis) -> func.HttpResponse:
    """Place an order (a WATCH/MULTI/EXEC transaction on the product's stock)."""
    if req.method != "POST":
        return _json(405, {"error": f"{req.method} is not allowed"})
    response = _answer(201, lambda: shop.place_order(redis, _body(req)))
    if response.status_code == 201:
        logger.info("order placed: %s", response.get_body().decode())
    return response


@app.route(route="orders/{id}", methods=["GET"])
@with_redis(decode_responses=True)
def order(req: func.HttpRequest, redis: Redis) -> func.HttpResponse:
    """Read one order."""
    return _answer(200, lambda: shop.get_order(redis, req.route_params.get("id", "")))


@app.timer_trigger(schedule="0 * * * * *", arg_name="timer", run_on_startup=False)
@with_redis(decode_responses=True)
def fulfil(timer: func.TimerRequest, redis: Redis) -> None:
    """Fulfil the orders placed since the last run, waiting for new ones while time is left."""
    left = faaspool.remaining()
    wait = ORDER_WAIT_SECONDS if left is None else left - FULFIL_RESERVE_SECONDS
    done = shop.fulfil_orders(redis, wait_seconds=max(0.0, min(ORDER_WAIT_SECONDS, wait)))
    logger.info("%d orders fulfilled%s", len(done), " (past due)" if timer.past_due else "")
