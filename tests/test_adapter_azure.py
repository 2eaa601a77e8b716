"""faaspool.adapters.azure: a v2 FunctionApp indexed and called the way the Python worker
does it; and, in a Python 3.13 environment, by the real worker package
(azure-functions-runtime)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import faaspool
from faaspool._errors import ConfigError
from tests.platforms import azure_index
from tests.platforms.azure_index import WorkerLike, http_request, make_context
from tests.platforms.azure_python import azure_python
from tests.support.server import RedisServer

func = pytest.importorskip("azure.functions", reason="azure-functions is not installed")

from faaspool.adapters import azure  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def worker() -> Iterator[WorkerLike]:
    like = WorkerLike()
    try:
        yield like
    finally:
        like.close()


@pytest.fixture
def app_module(tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.delenv("FAASPOOL_TIMEOUT", raising=False)
    monkeypatch.delenv("AzureWebJobsScriptRoot", raising=False)
    return azure_index.import_app(azure_index.write_app(tmp_path / "app"))


def test_every_function_passes_the_workers_parameter_and_binding_checks(app_module: Any) -> None:
    functions = azure_index.functions_by_name(azure_index.find_app(app_module))
    assert sorted(functions) == ["ahits", "atick", "cached", "hits", "job", "tick"]
    checks = {name: azure_index.check_like_the_worker(fn) for name, fn in functions.items()}
    for name, check in checks.items():
        assert check["unbound_params"] == [] and check["missing_params"] == [], (name, check)
        assert "redis" not in check["hints"] and "cache" not in check["hints"], (name, check)
    assert checks["hits"]["requires_context"] is True
    assert checks["ahits"]["is_async"] is True and checks["atick"]["is_async"] is True
    assert checks["tick"]["is_async"] is False


def test_the_user_function_is_the_wrapper_with_the_injected_parameter_hidden(
    app_module: Any,
) -> None:
    functions = azure_index.functions_by_name(azure_index.find_app(app_module))
    hits = functions["hits"].get_user_function()
    assert hits.__name__ == "hits"
    assert list(inspect.signature(hits).parameters) == ["req", "context"]
    assert hits.__wrapped__.__name__ == "hits"
    assert "redis" in inspect.signature(hits.__wrapped__).parameters
    assert typing.get_type_hints(hits) == {
        "req": func.HttpRequest,
        "context": func.Context,
        "return": func.HttpResponse,
    }
    ahits = functions["ahits"].get_user_function()
    # Its own annotation for `redis` is a string no worker could resolve: it is dropped.
    assert "redis" not in typing.get_type_hints(ahits)


def test_http_functions_get_real_requests_and_reuse_one_connection(
    app_module: Any, worker: WorkerLike, redis_server: RedisServer
) -> None:
    functions = azure_index.functions_by_name(azure_index.find_app(app_module))
    hits = functions["hits"].get_user_function()
    bodies = []
    for i in range(3):
        context = make_context("hits", str(Path(app_module.__file__).parent), f"inv-{i}")
        response = worker.call(
            hits, {"req": http_request("hits", params={"name": "x"}), "context": context}
        )
        assert isinstance(response, func.HttpResponse) and response.status_code == 200
        bodies.append(json.loads(response.get_body()))
    assert [b["n"] for b in bodies] == [1, 2, 3]
    assert len({b["client_id"] for b in bodies}) == 1
    # func.Context passes through untouched.
    assert [b["invocation_id"] for b in bodies] == ["inv-0", "inv-1", "inv-2"]
    assert bodies[0]["function_name"] == "hits" and bodies[0]["name"] == "x"
    assert bodies[0]["client"] == "faaspool.client"
    assert len(redis_server.clients_named("faaspool:")) == 1


def test_async_http_function_runs_on_the_workers_loop(app_module: Any, worker: WorkerLike) -> None:
    functions = azure_index.functions_by_name(azure_index.find_app(app_module))
    ahits = functions["ahits"].get_user_function()
    assert inspect.iscoroutinefunction(ahits)
    bodies = [
        json.loads(worker.call(ahits, {"req": http_request("ahits")}).get_body()) for _ in range(3)
    ]
    assert [b["n"] for b in bodies] == [1, 2, 3]
    assert len({b["client_id"] for b in bodies}) == 1
    assert bodies[0]["client"] == "faaspool.aio.client"


def test_timer_and_queue_triggers(
    app_module: Any, worker: WorkerLike, redis_server: RedisServer
) -> None:
    functions = azure_index.functions_by_name(azure_index.find_app(app_module))
    from azure.functions.timer import TimerRequest

    timer = TimerRequest(past_due=False)
    assert worker.call(functions["tick"].get_user_function(), {"timer": timer}) is None
    assert worker.call(functions["atick"].get_user_function(), {"timer": timer}) is None
    message = func.QueueMessage(id="m-1", body=b"payload")
    assert worker.call(functions["job"].get_user_function(), {"msg": message}) is None
    admin = redis_server.admin()
    assert admin.get("ticks") == "1" and admin.get("aticks") == "1"
    assert admin.lrange("jobs", 0, -1) == ["payload"]


def test_the_deadline_comes_from_host_json_or_the_option(
    app_module: Any, worker: WorkerLike
) -> None:
    functions = azure_index.functions_by_name(azure_index.find_app(app_module))
    hits = functions["hits"].get_user_function()
    context = make_context("hits", "/")
    body = json.loads(
        worker.call(hits, {"req": http_request("hits"), "context": context}).get_body()
    )
    assert 0 < body["remaining"] <= 7  # host.json: "functionTimeout": "00:00:07"
    cached = functions["cached"].get_user_function()
    body = json.loads(worker.call(cached, {"req": http_request("cached")}).get_body())
    assert 0 < body["remaining"] <= 3  # @with_redis(timeout=3)


def test_above_an_app_decorator_it_is_refused(tmp_path: Path, redis_server: RedisServer) -> None:
    script = azure_index.write_app(tmp_path / "refused", azure_index.REFUSED_SOURCE, None)
    with pytest.raises(ConfigError, match=r"below every @app\.\* decorator") as info:
        azure_index.import_app(script)
    assert "wrong()" in str(info.value)


def test_host_json_timeouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsScriptRoot", raising=False)
    monkeypatch.delenv("WEBSITE_SKU", raising=False)
    azure._host_json_timeout.cache_clear()
    assert azure.platform_timeout(str(tmp_path)) is None
    monkeypatch.setenv("WEBSITE_SKU", "Dynamic")
    assert azure.platform_timeout(str(tmp_path)) == 300
    monkeypatch.setenv("WEBSITE_SKU", "ElasticPremium")
    assert azure.platform_timeout(str(tmp_path)) == 1800
    for text, seconds in [("00:05:00", 300), ("1.02:00:30", 93630), ("-1", None)]:
        folder = tmp_path / text.replace(":", "_")
        folder.mkdir()
        (folder / "host.json").write_text(json.dumps({"version": "2.0", "functionTimeout": text}))
        assert azure.platform_timeout(str(folder)) == seconds
    root = tmp_path / "root"
    (root / "blueprints").mkdir(parents=True)
    (root / "host.json").write_text('{"functionTimeout": "00:00:09"}')
    assert azure.platform_timeout(str(root / "blueprints")) == 9  # a blueprint's module
    monkeypatch.setenv("AzureWebJobsScriptRoot", str(root))
    assert azure.platform_timeout(str(tmp_path)) == 9
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "host.json").write_text('{"functionTimeout": "five minutes"}')
    monkeypatch.delenv("AzureWebJobsScriptRoot")
    with pytest.raises(ConfigError, match="functionTimeout"):
        azure.platform_timeout(str(bad))


def test_injected_parameter_must_not_be_a_binding_name(redis_server: RedisServer) -> None:
    def main(req: Any, redis: Any) -> None:
        pass

    wrapped = azure.with_redis(url=redis_server.url)(main)
    assert list(inspect.signature(wrapped).parameters) == ["req"]
    with pytest.raises(ConfigError, match="no parameter 'cache'"):
        azure.with_redis(url=redis_server.url, param="cache")(main)


# -- the real worker package, on Python 3.13 --------------------------------------------------


def test_the_real_worker_indexes_and_invokes_the_app(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    python = azure_python()
    app_dir = tmp_path / "app"
    azure_index.write_app(app_dir)
    azure_index.write_app(app_dir / "refused", azure_index.REFUSED_SOURCE, None)
    azure_index.write_app(app_dir / "naive", azure_index.NAIVE_SOURCE, None)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAASPOOL_", "REDIS_URL"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    out = subprocess.run(
        [python, "-m", "tests.platforms.azure_worker_check", str(app_dir), redis_server.url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    report = json.loads(out.stdout)
    assert tuple(int(part) for part in report["python"].split(".")[:2]) >= (3, 13)
    assert report["azure_functions"].startswith("2.")
    functions = report["functions"]
    assert sorted(functions) == ["ahits", "atick", "cached", "hits", "job", "tick"]
    for name, info in functions.items():
        for call in info["calls"]:
            assert "error" not in call, (name, call)
    assert functions["hits"]["requires_context"] is True
    assert functions["hits"]["input_types"] == ["req"]
    assert functions["ahits"]["is_async"] is True and functions["atick"]["is_async"] is True
    assert functions["tick"]["is_async"] is False
    hits = [c["json"] for c in functions["hits"]["calls"]]
    assert [h["invocation_id"] for h in hits] == ["hits-0", "hits-1"]
    assert hits[0]["client_id"] == hits[1]["client_id"]
    assert 0 < hits[0]["remaining"] <= 7
    ahits = [c["json"] for c in functions["ahits"]["calls"]]
    assert ahits[0]["client"] == "faaspool.aio.client"
    assert ahits[0]["client_id"] == ahits[1]["client_id"]
    cached = functions["cached"]["calls"][0]["json"]
    assert 0 < cached["remaining"] <= 3
    admin = redis_server.admin()
    assert admin.get("ticks") == "2" and admin.get("aticks") == "2"
    assert admin.lrange("jobs", 0, -1) == ["job-for-job", "job-for-job"]
    # Above @app.route the decorator refuses; a naive wrapper fails the worker's own check.
    assert report["refused"]["error_type"] == "ConfigError"
    assert report["naive"]["error_type"] == "FunctionLoadError"
    assert "redis" in report["naive"]["error"]


def test_faaspool_import_does_not_import_azure() -> None:
    code = (
        "import sys, faaspool, faaspool.adapters.azure\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('azure', 'azurefunctions')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert faaspool.__name__ == "faaspool"
