"""{{name}}: an HTTP function on Google Cloud Functions (Cloud Run functions), using Redis.

    GET /items/{id}    the item, and how often it has been read
    PUT /items/{id}    store an item (a JSON object)

The Redis client comes from faaspool: created once per instance, shared by the
framework's threads, checked before every reuse, and bounded by the request timeout
($CLOUD_RUN_TIMEOUT_SECONDS). Its address is $REDIS_URL (deploy.sh sets it).
"""

from __future__ import annotations

import json
from typing import Any

import functions_framework
from faaspool.adapters.gcf import with_redis
from flask import Request
from redis import Redis

Reply = tuple[dict[str, Any], int]


@functions_framework.http
@with_redis(decode_responses=True)
def handler(request: Request, redis: Redis) -> Reply:
    """Serve one HTTP request."""
    parts = request.path.strip("/").split("/")
    if len(parts) != 2 or parts[0] != "items" or not parts[1]:
        return {"error": "not found: use /items/<id>"}, 404
    item_id = parts[1]
    key = f"item:{item_id}"
    if request.method == "GET":
        stored = redis.get(key)
        if stored is None:
            return {"error": f"no item {item_id}"}, 404
        views = redis.incr(f"views:{item_id}")
        return {"id": item_id, "item": json.loads(stored), "views": views}, 200
    if request.method == "PUT":
        item = request.get_json(silent=True)
        if not isinstance(item, dict):
            return {"error": "the body must be a JSON object"}, 400
        redis.set(key, json.dumps(item))
        return {"id": item_id, "item": item}, 200
    return {"error": f"{request.method} is not allowed"}, 405
