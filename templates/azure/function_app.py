"""{{name}}: an HTTP function on Azure Functions (Python v2 programming model), using Redis.

    GET /api/items/{id}    the item, and how often it has been read
    PUT /api/items/{id}    store an item (a JSON object)

The Redis client comes from faaspool: created once per worker process, shared by the
worker's thread pool, checked before every reuse, and bounded by ``functionTimeout`` from
host.json. Its address is the REDIS_URL app setting.
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from faaspool.adapters.azure import with_redis
from redis import Redis

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="items/{id}", methods=["GET", "PUT"])
@with_redis(decode_responses=True)
def items(req: func.HttpRequest, redis: Redis) -> func.HttpResponse:
    """Serve one HTTP request. ``@with_redis`` goes below every ``@app.*`` decorator."""
    item_id = req.route_params.get("id")
    if not item_id:
        return reply(400, {"error": "no item id in the path"})
    key = f"item:{item_id}"
    if req.method == "GET":
        stored = redis.get(key)
        if stored is None:
            return reply(404, {"error": f"no item {item_id}"})
        views = redis.incr(f"views:{item_id}")
        return reply(200, {"id": item_id, "item": json.loads(stored), "views": views})
    try:
        item = req.get_json()
    except ValueError:
        item = None
    if not isinstance(item, dict):
        return reply(400, {"error": "the body must be a JSON object"})
    redis.set(key, json.dumps(item))
    return reply(200, {"id": item_id, "item": item})


def reply(status: int, body: dict[str, Any]) -> func.HttpResponse:
    """A JSON response."""
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")
