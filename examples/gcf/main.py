"""The shop on Google Cloud Functions (Cloud Run functions): an HTTP function and an event
consumer, sharing one Redis.

    api       HTTP:  GET /products/<sku>    PUT /products/<sku>
                     POST /orders           GET /orders/<id>
    consume   a CloudEvent (a Pub/Sub message that Cloud Scheduler publishes every
              minute): waits on the order stream (XREAD BLOCK) and fulfils what arrives

functions-framework serves each function from many threads; faaspool gives those threads
one connection pool per instance, checks every connection before reuse, and bounds every
wait by the request timeout ($CLOUD_RUN_TIMEOUT_SECONDS). deploy.sh deploys both.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import functions_framework
import shop
from cloudevents.http import CloudEvent
from faaspool.adapters.gcf import with_redis
from flask import Request
from redis import Redis
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

import faaspool

logger = logging.getLogger("shop")

# The longest one consumer run waits for new orders.
ORDER_WAIT_SECONDS = float(os.environ.get("ORDER_WAIT_SECONDS", "20"))
# Kept back from the request's remaining time to fulfil what the wait brought.
FULFIL_RESERVE_SECONDS = 1.0

Reply = tuple[dict[str, Any], int]

ROUTES = Map(
    [
        Rule("/products/<sku>", endpoint="get_product", methods=["GET"]),
        Rule("/products/<sku>", endpoint="put_product", methods=["PUT"]),
        Rule("/orders", endpoint="place_order", methods=["POST"]),
        Rule("/orders/<order_id>", endpoint="get_order", methods=["GET"]),
    ]
)


def _get_product(redis: Redis, request: Request, sku: str) -> Reply:
    return shop.get_product(redis, sku), 200


def _put_product(redis: Redis, request: Request, sku: str) -> Reply:
    return shop.put_product(redis, sku, request.get_json(silent=True)), 200


def _place_order(redis: Redis, request: Request) -> Reply:
    order = shop.place_order(redis, request.get_json(silent=True))
    logger.info("order placed: %s", order["id"])
    return order, 201


def _get_order(redis: Redis, request: Request, order_id: str) -> Reply:
    return shop.get_order(redis, order_id), 200


ENDPOINTS: dict[str, Callable[..., Reply]] = {
    "get_product": _get_product,
    "put_product": _put_product,
    "place_order": _place_order,
    "get_order": _get_order,
}


@functions_framework.http
@with_redis(decode_responses=True)
def api(request: Request, redis: Redis) -> Reply:
    """The HTTP API. ``@functions_framework.http`` on top, ``@with_redis`` on the function."""
    try:
        endpoint, args = ROUTES.bind_to_environ(request.environ).match()
    except HTTPException as error:
        return {"error": error.description or error.name}, error.code or 404
    try:
        return ENDPOINTS[str(endpoint)](redis, request, **args)
    except shop.ShopError as error:
        return {"error": str(error)}, error.status


@functions_framework.cloud_event
@with_redis(decode_responses=True)
def consume(cloud_event: CloudEvent, redis: Redis) -> None:
    """Fulfil the orders placed since the last run, waiting for new ones while time is left."""
    left = faaspool.remaining()
    wait = ORDER_WAIT_SECONDS if left is None else left - FULFIL_RESERVE_SECONDS
    fulfilled = shop.fulfil_orders(redis, wait_seconds=max(0.0, min(ORDER_WAIT_SECONDS, wait)))
    logger.info("event %s: %d orders fulfilled", cloud_event["id"], len(fulfilled))
