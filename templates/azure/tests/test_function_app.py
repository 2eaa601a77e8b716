"""The functions, called as the Azure Functions worker calls them, against a real
redis-server."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

import azure.functions as func

import faaspool


def request(method: str, item_id: str | None, body: Any = None) -> func.HttpRequest:
    return func.HttpRequest(
        method=method,
        url=f"http://localhost/api/items/{item_id}",
        headers={"Content-Type": "application/json"},
        params={},
        route_params={"id": item_id} if item_id else {},
        body=b"" if body is None else json.dumps(body).encode(),
    )


def call(items: Callable[..., Any], *args: Any) -> tuple[int, Any]:
    response = items(req=request(*args))
    return response.status_code, json.loads(response.get_body())


def test_the_worker_sees_only_the_bound_parameter(
    functions: dict[str, Callable[..., Any]],
) -> None:
    assert list(inspect.signature(functions["items"]).parameters) == ["req"]


def test_put_then_get_counts_views(functions: dict[str, Callable[..., Any]]) -> None:
    items = functions["items"]
    assert call(items, "PUT", "42", {"name": "lamp"}) == (
        200,
        {"id": "42", "item": {"name": "lamp"}},
    )
    assert call(items, "GET", "42") == (200, {"id": "42", "item": {"name": "lamp"}, "views": 1})
    assert call(items, "GET", "42")[1]["views"] == 2


def test_unknown_item_is_404_and_bad_body_400(functions: dict[str, Callable[..., Any]]) -> None:
    items = functions["items"]
    assert call(items, "GET", "nope")[0] == 404
    assert call(items, "PUT", "42", ["not", "an", "object"])[0] == 400
    assert call(items, "GET", None)[0] == 400


def test_invocations_reuse_one_connection(functions: dict[str, Callable[..., Any]]) -> None:
    items = functions["items"]
    call(items, "PUT", "7", {"name": "chair"})
    before = faaspool.stats()
    for _ in range(5):
        assert call(items, "GET", "7")[0] == 200
    after = faaspool.stats()
    assert after["connects"] == before["connects"]
    assert after["reuses"] > before["reuses"]
