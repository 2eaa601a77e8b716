"""{{name}}: an AWS Lambda function behind an API Gateway HTTP API, using Redis.

    GET /items/{id}    the item, and how often it has been read
    PUT /items/{id}    store an item (a JSON object)

The Redis client comes from faaspool: created once per execution environment, kept
between invocations, checked before every reuse, and bounded by the invocation's
remaining time. Its address is $REDIS_URL (template.yaml wires it to ElastiCache).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from faaspool.adapters.aws_lambda import with_redis
from redis import Redis


@with_redis(decode_responses=True)
def handler(event: dict[str, Any], context: Any, redis: Redis) -> dict[str, Any]:
    """Serve one API Gateway HTTP API (payload format 2.0) request."""
    method = event.get("requestContext", {}).get("http", {}).get("method", "GET")
    item_id = (event.get("pathParameters") or {}).get("id")
    if not item_id:
        return response(400, {"error": "no item id in the path"})
    key = f"item:{item_id}"
    if method == "GET":
        stored = redis.get(key)
        if stored is None:
            return response(404, {"error": f"no item {item_id}"})
        views = redis.incr(f"views:{item_id}")
        return response(200, {"id": item_id, "item": json.loads(stored), "views": views})
    if method == "PUT":
        item = json_body(event)
        if not isinstance(item, dict):
            return response(400, {"error": "the body must be a JSON object"})
        redis.set(key, json.dumps(item))
        return response(200, {"id": item_id, "item": item})
    return response(405, {"error": f"{method} is not allowed"})


def json_body(event: dict[str, Any]) -> Any:
    """The request body parsed as JSON, or None when it is missing or not JSON."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    try:
        return json.loads(body)
    except ValueError:
        return None


def response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An HTTP API response with a JSON body."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }
