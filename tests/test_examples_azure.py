"""examples/azure: the FunctionApp indexed and its functions called the way the Python
worker does (arguments by binding name, sync functions on a thread pool) against a
private redis-server; and, in the Python 3.13 environment, indexed and invoked by the real
worker package (azure-functions-runtime)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.platforms import azure_index
from tests.platforms.azure_index import WorkerLike
from tests.support.fixtures import copy_example
from tests.support.server import RedisServer, wait_for

func = pytest.importorskip("azure.functions", reason="azure-functions is not installed")

from azure.functions.timer import TimerRequest  # noqa: E402

from tests.platforms.azure_python import azure_python  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ["fulfil", "order", "orders", "product"]
WAIT = 30.0

Call = Callable[..., tuple[int, Any]]


@pytest.fixture(scope="module")
def server(module_redis_server: RedisServer) -> RedisServer:
    return module_redis_server


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory, "azure")


@pytest.fixture(scope="module")
def functions(app_dir: Path, server: RedisServer) -> Iterator[dict[str, Any]]:
    """The app's indexed functions (``app.get_functions()``), by name."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", server.url)
        patch.setenv("ORDER_WAIT_SECONDS", "10")
        patch.delenv("FAASPOOL_TIMEOUT", raising=False)
        patch.delenv("AzureWebJobsScriptRoot", raising=False)
        patch.syspath_prepend(str(app_dir))
        # The app imports its own `shop`; another example's may already be loaded.
        patch.delitem(sys.modules, "shop", raising=False)
        module = azure_index.import_app(app_dir / "function_app.py")
        yield azure_index.functions_by_name(azure_index.find_app(module))


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerLike]:
    like = WorkerLike()
    try:
        yield like
    finally:
        like.close()


def http_request(
    method: str, path: str, body: Any = None, route_params: dict[str, str] | None = None
) -> Any:
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    return func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{path}",
        headers={"Content-Type": "application/json"},
        params={},
        route_params=route_params or {},
        body=(body or "").encode(),
    )


@pytest.fixture(scope="module")
def call(functions: dict[str, Any], worker: WorkerLike) -> Call:
    """``call(function, method, path, body, **route_params) -> (status, json)``."""

    def run(name: str, method: str, path: str, body: Any = None, **route: str) -> tuple[int, Any]:
        user = functions[name].get_user_function()
        response = worker.call(user, {"req": http_request(method, path, body, route)})
        return response.status_code, json.loads(response.get_body())

    return run


def test_every_function_passes_the_workers_binding_checks(functions: dict[str, Any]) -> None:
    assert sorted(functions) == FUNCTIONS
    for name, fn in functions.items():
        check = azure_index.check_like_the_worker(fn)
        assert check["unbound_params"] == [] and check["missing_params"] == [], (name, check)
        assert "redis" not in check["hints"] and check["is_async"] is False, (name, check)
    routes = {
        name: binding.route
        for name, fn in functions.items()
        for binding in fn.get_bindings()
        if binding.type == "httpTrigger"
    }
    assert routes == {"order": "orders/{id}", "orders": "orders", "product": "products/{sku}"}


def test_products_are_written_and_read(call: Call) -> None:
    lamp = {"name": "Lamp", "price_cents": 1999, "stock": 3}
    assert call("product", "PUT", "products/lamp", lamp, sku="lamp") == (
        200,
        {"sku": "lamp", **lamp},
    )
    assert call("product", "GET", "products/lamp", sku="lamp") == (200, {"sku": "lamp", **lamp})
    status, body = call("product", "GET", "products/nope", sku="nope")
    assert status == 404 and "nope" in body["error"]
    assert call("product", "PUT", "products/bad", "not json", sku="bad")[0] == 400


def test_orders_from_the_workers_threads_never_oversell(
    call: Call, functions: dict[str, Any]
) -> None:
    stock = 5
    chair = {"name": "Chair", "price_cents": 4900, "stock": stock}
    call("product", "PUT", "products/chair", chair, sku="chair")
    orders = functions["orders"].get_user_function()

    def place(_: int) -> tuple[int, Any]:
        response = orders(req=http_request("POST", "orders", {"sku": "chair", "qty": 1}))
        return response.status_code, json.loads(response.get_body())

    # Sync functions run on the worker's thread pool, many at once.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(place, range(12)))
    placed = [body for status, body in replies if status == 201]
    assert sorted(status for status, _ in replies) == [201] * stock + [409] * 7
    assert call("product", "GET", "products/chair", sku="chair")[1]["stock"] == 0
    for body in placed:
        assert call("order", "GET", f"orders/{body['id']}", id=body["id"]) == (200, body)


def test_the_timer_consumer_blocks_on_the_stream_until_an_order_arrives(
    call: Call, functions: dict[str, Any], server: RedisServer
) -> None:
    fulfil = functions["fulfil"].get_user_function()
    timer = TimerRequest(past_due=False)
    desk = {"name": "Desk", "price_cents": 15000, "stock": 2}
    call("product", "PUT", "products/desk", desk, sku="desk")
    admin = server.admin()
    # With an order in the stream a run returns at once, catching up on everything so far.
    first = call("orders", "POST", "orders", {"sku": "desk", "qty": 1})[1]
    assert fulfil(timer=timer) is None
    assert call("order", "GET", "o", id=first["id"])[1]["status"] == "fulfilled"
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(fulfil, timer=timer)
        wait_for(
            lambda: any(c.get("cmd") == "xread" for c in admin.client_list()),
            WAIT,
            "the consumer to block in XREAD",
        )
        assert not waiting.done()
        status, second = call("orders", "POST", "orders", {"sku": "desk", "qty": 1})
        assert status == 201
        assert waiting.result(timeout=WAIT) is None
    assert call("order", "GET", "o", id=second["id"])[1]["status"] == "fulfilled"
    assert admin.get("sales:desk") == "2"


def test_the_real_worker_indexes_and_invokes_the_example(
    app_dir: Path, server: RedisServer
) -> None:
    python = azure_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAASPOOL_", "REDIS_URL"))}
    env.update({"PYTHONPATH": str(REPO_ROOT), "ORDER_WAIT_SECONDS": "0.2"})
    out = subprocess.run(
        [python, "-m", "tests.platforms.azure_worker_check", str(app_dir), server.url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert report["azure_functions"].startswith("2.")
    functions = report["functions"]
    assert sorted(functions) == FUNCTIONS
    for name, info in functions.items():
        assert info["is_async"] is False and info["requires_context"] is False, (name, info)
        for result in info["calls"]:
            assert "error" not in result, (name, result)
    assert functions["product"]["input_types"] == ["req"]
    # The worker's sample request carries no route parameters and is a GET.
    assert [c["status"] for c in functions["product"]["calls"]] == [404, 404]
    assert [c["status"] for c in functions["orders"]["calls"]] == [405, 405]
    assert functions["fulfil"]["calls"] == [{"result": None}, {"result": None}]
