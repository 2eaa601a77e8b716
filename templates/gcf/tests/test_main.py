"""The function, called through functions-framework, against a real redis-server."""

from __future__ import annotations

from typing import Any

import faaspool


def test_put_then_get_counts_views(client: Any) -> None:
    put = client.put("/items/42", json={"name": "lamp"})
    assert (put.status_code, put.get_json()) == (200, {"id": "42", "item": {"name": "lamp"}})
    got = client.get("/items/42")
    assert (got.status_code, got.get_json()) == (
        200,
        {"id": "42", "item": {"name": "lamp"}, "views": 1},
    )
    assert client.get("/items/42").get_json()["views"] == 2


def test_unknown_item_and_path_are_404(client: Any) -> None:
    assert client.get("/items/nope").status_code == 404
    assert client.get("/elsewhere").status_code == 404


def test_a_body_that_is_not_a_json_object_is_400(client: Any) -> None:
    assert client.put("/items/42", json=["not", "an", "object"]).status_code == 400


def test_requests_reuse_one_connection(client: Any) -> None:
    client.put("/items/7", json={"name": "chair"})
    before = faaspool.stats()
    for _ in range(5):
        assert client.get("/items/7").status_code == 200
    after = faaspool.stats()
    assert after["connects"] == before["connects"]
    assert after["reuses"] > before["reuses"]
