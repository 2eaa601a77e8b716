"""The shop on AWS Lambda: an HTTP API and a scheduled consumer, sharing one Redis.

    app.handler   API Gateway HTTP API (payload 2.0):
                    GET /products/{sku}    PUT /products/{sku}
                    POST /orders           GET /orders/{id}
    app.consume   an EventBridge schedule: waits on the order stream (XREAD BLOCK) and
                  fulfils what arrives

Powertools routes the requests and writes the structured logs; faaspool keeps each
execution environment's Redis connection warm between invocations and bounds every wait
by the time Lambda says is left. template.yaml deploys both functions.
"""

from __future__ import annotations

import os
from typing import Any

import shop
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from faaspool.adapters.aws_lambda import with_redis
from redis import Redis

import faaspool

logger = Logger(service="shop")
api = APIGatewayHttpResolver()

# The longest one consumer invocation waits for new orders.
ORDER_WAIT_SECONDS = float(os.environ.get("ORDER_WAIT_SECONDS", "20"))
# Kept back from the invocation's remaining time to fulfil what the wait brought.
FULFIL_RESERVE_SECONDS = 1.0


def _redis() -> Redis:
    client: Redis = api.context["redis"]
    return client


def _body() -> Any:
    try:
        return api.current_event.json_body
    except ValueError:
        return None


@api.get("/products/<sku>")
def get_product(sku: str) -> dict[str, Any]:
    return shop.get_product(_redis(), sku)


@api.put("/products/<sku>")
def put_product(sku: str) -> dict[str, Any]:
    return shop.put_product(_redis(), sku, _body())


@api.post("/orders")
def place_order() -> tuple[dict[str, Any], int]:
    order = shop.place_order(_redis(), _body())
    logger.info("order placed", extra={"order": order})
    return order, 201


@api.get("/orders/<order_id>")
def get_order(order_id: str) -> dict[str, Any]:
    return shop.get_order(_redis(), order_id)


@api.exception_handler(shop.ShopError)
def shop_error(error: shop.ShopError) -> Response[dict[str, str]]:
    return Response(
        status_code=error.status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": str(error)},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@with_redis(decode_responses=True)
def handler(event: dict[str, Any], context: LambdaContext, redis: Redis) -> dict[str, Any]:
    """The HTTP API. ``@with_redis`` is innermost, below the Powertools decorators."""
    api.append_context(redis=redis)
    return api.resolve(event, context)


@logger.inject_lambda_context
@with_redis(decode_responses=True)
def consume(event: dict[str, Any], context: LambdaContext, redis: Redis) -> dict[str, Any]:
    """Fulfil the orders placed since the last run, waiting for new ones while time is left."""
    left = faaspool.remaining()
    wait = ORDER_WAIT_SECONDS if left is None else left - FULFIL_RESERVE_SECONDS
    fulfilled = shop.fulfil_orders(redis, wait_seconds=max(0.0, min(ORDER_WAIT_SECONDS, wait)))
    logger.info("orders fulfilled", extra={"count": len(fulfilled)})
    return {"fulfilled": fulfilled}
