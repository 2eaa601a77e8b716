"""The handler, called as Lambda calls it, against a real redis-server."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import faaspool


def http_event(method: str, item_id: str | None, body: Any = None) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event."""
    return {
        "version": "2.0",
        "routeKey": f"{method} /items/{{id}}",
        "rawPath": f"/items/{item_id}",
        "requestContext": {"http": {"method": method, "path": f"/items/{item_id}"}},
        "pathParameters": {"id": item_id} if item_id else None,
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


def call(app: ModuleType, context: Any, *args: Any) -> tuple[int, Any]:
    reply = app.handler(http_event(*args), context)
    return reply["statusCode"], json.loads(reply["body"])


def test_put_then_get_counts_views(app: ModuleType, context: Any) -> None:
    assert call(app, context, "PUT", "42", {"name": "lamp"}) == (
        200,
        {"id": "42", "item": {"name": "lamp"}},
    )
    assert call(app, context, "GET", "42") == (
        200,
        {"id": "42", "item": {"name": "lamp"}, "views": 1},
    )
    assert call(app, context, "GET", "42")[1]["views"] == 2


def test_unknown_item_is_404(app: ModuleType, context: Any) -> None:
    assert call(app, context, "GET", "nope")[0] == 404


def test_a_body_that_is_not_a_json_object_is_400(app: ModuleType, context: Any) -> None:
    assert call(app, context, "PUT", "42", ["not", "an", "object"])[0] == 400
    assert call(app, context, "GET", None)[0] == 400


def test_warm_invocations_reuse_one_connection(app: ModuleType, context: Any) -> None:
    call(app, context, "PUT", "7", {"name": "chair"})
    before = faaspool.stats()
    for _ in range(5):
        call(app, context, "GET", "7")
    after = faaspool.stats()
    assert after["connects"] == before["connects"]
    assert after["reuses"] > before["reuses"]
