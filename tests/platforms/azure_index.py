"""Index and call an Azure Functions v2 app the way the Python worker does.

Shared by the in-process tests (any azure-functions) and `azure_worker_check` (run under
Python 3.13 with the real worker package, azure-functions-runtime). Only the standard
library and azure.functions are imported, and azure.functions only when used.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import inspect
import sys
import textwrap
import threading
import typing
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

HOST_JSON = """{
  "version": "2.0",
  "functionTimeout": "00:00:07"
}
"""

APP_SOURCE = """
import json

import azure.functions as func

import faaspool
from faaspool._decorator import with_redis as auto_with_redis
from faaspool.adapters.azure import with_redis

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _report(redis, extra):
    return {
        "n": redis.incr("n"),
        "client_id": redis.client_id(),
        "client": type(redis).__module__,
        "remaining": faaspool.remaining(),
        **extra,
    }


@app.route(route="hits", methods=["GET", "POST"])
@auto_with_redis
def hits(req: func.HttpRequest, context: func.Context, redis) -> func.HttpResponse:
    body = _report(redis, {
        "invocation_id": context.invocation_id,
        "function_name": context.function_name,
        "name": req.params.get("name"),
    })
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="ahits")
@with_redis
async def ahits(req: func.HttpRequest, redis: "faaspool.aio.Redis") -> func.HttpResponse:
    body = {
        "n": await redis.incr("n"),
        "client_id": await redis.client_id(),
        "client": type(redis).__module__,
        "remaining": faaspool.remaining(),
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.function_name(name="cached")
@app.route(route="cached")
@with_redis(param="cache", timeout=3)
def cached_route(req: func.HttpRequest, cache) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(_report(cache, {})), mimetype="application/json")


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
@with_redis
def tick(timer: func.TimerRequest, redis) -> None:
    redis.incr("ticks")


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
@with_redis
async def atick(timer: func.TimerRequest, redis) -> None:
    await redis.incr("aticks")


@app.queue_trigger(arg_name="msg", queue_name="jobs", connection="AzureWebJobsStorage")
@auto_with_redis
def job(msg: func.QueueMessage, redis) -> None:
    redis.rpush("jobs", msg.get_body())
"""

REFUSED_SOURCE = """
import azure.functions as func
from faaspool.adapters.azure import with_redis

app = func.FunctionApp()


@with_redis
@app.route(route="wrong")
def wrong(req: func.HttpRequest, redis) -> func.HttpResponse:
    return func.HttpResponse("unreachable")
"""

# A careless wrapper: functools.wraps alone, so the worker still sees ``redis`` through
# __wrapped__ and refuses the function. The negative control for the signature fix.
NAIVE_SOURCE = """
import functools

import azure.functions as func
import faaspool

app = func.FunctionApp()


def naive_with_redis(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, redis=faaspool.get_redis(), **kwargs)
    return wrapper


@app.route(route="naive")
@naive_with_redis
def naive(req: func.HttpRequest, redis) -> func.HttpResponse:
    return func.HttpResponse("unreachable")
"""


def write_app(directory: Path, source: str = APP_SOURCE, host_json: str | None = HOST_JSON) -> Path:
    """Write ``function_app.py`` (and host.json) into ``directory``; return the script."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "function_app.py"
    script.write_text(textwrap.dedent(source))
    if host_json is not None:
        (directory / "host.json").write_text(host_json)
    return script


def import_app(script: Path) -> ModuleType:
    """Import ``script`` under a fresh module name (tests import several apps)."""
    name = f"function_app_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def find_app(module: ModuleType) -> Any:
    """The module's one FunctionApp, found as the worker finds it."""
    from azure.functions import FunctionRegister

    apps = [v for v in vars(module).values() if isinstance(v, FunctionRegister)]
    assert len(apps) == 1, apps
    return apps[0]


def functions_by_name(app: Any) -> dict[str, Any]:
    """``app.get_functions()`` keyed by function name."""
    return {fn.get_function_name(): fn for fn in app.get_functions()}


def check_like_the_worker(fn: Any) -> dict[str, Any]:
    """The parameter/binding checks the worker makes, without the worker package.

    Every Python parameter but ``context`` must be a binding and every binding but
    ``$return`` a parameter; every annotation must resolve (typing.get_type_hints).
    """
    user = fn.get_user_function()
    params = dict(inspect.signature(user).parameters)
    hints = typing.get_type_hints(user)
    bindings = {b.name for b in fn.get_bindings() if b.name != "$return"}
    requires_context = "context" in params and "context" not in bindings
    if requires_context:
        del params["context"]
    return {
        "params": sorted(params),
        "bindings": sorted(bindings),
        "unbound_params": sorted(set(params) - bindings),
        "missing_params": sorted(bindings - set(params)),
        "requires_context": requires_context,
        "is_async": inspect.iscoroutinefunction(user),
        "hints": sorted(hints),
    }


def make_context(function_name: str, directory: str, invocation_id: str | None = None) -> Any:
    """A concrete ``azure.functions.Context`` like the worker's own."""
    import azure.functions as func

    local = threading.local()
    ident = invocation_id or str(uuid.uuid4())

    class Context(func.Context):
        @property
        def invocation_id(self) -> str:
            return ident

        @property
        def thread_local_storage(self) -> Any:
            return local

        @property
        def function_name(self) -> str:
            return function_name

        @property
        def function_directory(self) -> str:
            return directory

        @property
        def trace_context(self) -> Any:
            return None

        @property
        def retry_context(self) -> Any:
            return None

    return Context()


class WorkerLike:
    """Calls functions as the worker does: keyword arguments by binding name, sync functions
    on a thread pool, async functions on one long-lived event loop."""

    def __init__(self, threads: int = 4) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads)

    def call(self, func: Any, args: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(func):
            return self.loop.run_until_complete(func(**args))

        async def in_thread() -> Any:
            return await self.loop.run_in_executor(self.pool, lambda: func(**args))

        return self.loop.run_until_complete(in_thread())

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        from faaspool.aio import _cache as aio_cache

        aio_cache.forget_loop(self.loop)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


def http_request(path: str, *, method: str = "GET", params: dict[str, str] | None = None) -> Any:
    import azure.functions as func

    return func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{path}",
        headers={},
        params=params or {},
        route_params={},
        body=b"",
    )
