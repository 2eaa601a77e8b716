"""Index and invoke a function app with the real Azure Functions Python worker package.

Run under Python >= 3.13 with azure-functions 2.x and azure-functions-runtime installed
(the test suite runs it in .venv-azure313 through a subprocess):

    python -m tests.platforms.azure_worker_check APP_DIR REDIS_URL

It drives ``azure_functions_runtime.loader.index_function_app`` and
``process_indexed_function`` (which run ``Registry.add_indexed_function``: the worker's
signature, annotation and binding checks), then invokes each indexed function as
``handle_event.invocation_request`` does: arguments by binding name, the worker's own
``Context`` when the function asks for one, sync functions through ``run_sync_func`` on a
thread pool, async ones through ``execute_async`` on the loop. Prints one JSON document.

The host's gRPC message classes (``protos``) come from the host process, not from PyPI;
the stand-in below has the same field values for what indexing reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class _Message:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class BindingInfo(_Message):
    # FunctionRpc.proto: BindingInfo.Direction and BindingInfo.DataType.
    in_ = 0
    out = 1
    inout = 2
    undefined = 0
    string = 1
    binary = 2
    stream = 3


PROTOS = SimpleNamespace(
    BindingInfo=BindingInfo,
    RpcFunctionMetadata=_Message,
    RpcRetryOptions=_Message,
)


def _index(script: Path) -> tuple[list[Any], Any]:
    from azure_functions_runtime import functions, loader
    from azure_functions_runtime.bindings import meta

    meta.load_binding_registry()  # what the worker's init request does first
    registry = functions.Registry()
    indexed = loader.index_function_app(str(script))
    loader.process_indexed_function(PROTOS, registry, indexed, str(script.parent))
    return indexed, registry


def _context(fi: Any, invocation_id: str) -> Any:
    from azure_functions_runtime.bindings.context import get_context

    request = SimpleNamespace(
        invocation_id=invocation_id,
        trace_context=SimpleNamespace(trace_parent="", trace_state="", attributes={}),
        retry_context=SimpleNamespace(retry_count=0, max_retry_count=0, exception=None),
    )
    return get_context(request, fi.name, fi.directory)


def _trigger_value(binding_type: str, name: str) -> Any:
    import azure.functions as func

    if binding_type == "httpTrigger":
        return func.HttpRequest(
            method="GET",
            url=f"http://localhost/api/{name}",
            headers={},
            params={"name": "worker"},
            route_params={},
            body=b"",
        )
    if binding_type == "timerTrigger":
        from azure.functions.timer import TimerRequest

        return TimerRequest(past_due=False)
    if binding_type == "queueTrigger":
        return func.QueueMessage(id="m-1", body=f"job-for-{name}".encode())
    raise ValueError(f"no sample value for a {binding_type} binding")


def _invoke(
    fi: Any, loop: asyncio.AbstractEventLoop, pool: concurrent.futures.Executor, n: int
) -> dict[str, Any]:
    from azure_functions_runtime.bindings.out import Out
    from azure_functions_runtime.utils.executor import execute_async, run_sync_func

    invocation_id = f"{fi.name}-{n}"
    context = _context(fi, invocation_id)
    args: dict[str, Any] = {}
    for name, info in fi.input_types.items():
        args[name] = _trigger_value(info.binding_name, fi.name)
    if fi.requires_context:
        args["context"] = context
    for name in fi.output_types:
        args[name] = Out()
    try:
        if fi.is_async:
            result = loop.run_until_complete(execute_async(fi.func, args))
        else:
            result = loop.run_until_complete(
                loop.run_in_executor(pool, run_sync_func, invocation_id, context, fi.func, args)
            )
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    if result is not None and hasattr(result, "get_body"):
        body = result.get_body().decode()
        return {"status": result.status_code, "json": json.loads(body) if body else None}
    return {"result": result}


def check(app_dir: Path) -> dict[str, Any]:
    """Index the app in ``app_dir`` and invoke each function twice; also index the two
    apps that must fail (``refused/`` and ``naive/``) when present."""
    sys.path.insert(0, str(app_dir))
    report: dict[str, Any] = {"python": sys.version.split()[0]}
    from importlib.metadata import version

    report["azure_functions"] = version("azure-functions")
    report["azure_functions_runtime"] = version("azure-functions-runtime")
    indexed, registry = _index(app_dir / "function_app.py")
    loop = asyncio.new_event_loop()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    functions: dict[str, Any] = {}
    try:
        for fn in indexed:
            fi = registry.get_function(
                next(k for k, v in registry._functions.items() if v.name == fn.get_function_name())
            )
            functions[fi.name] = {
                "is_async": fi.is_async,
                "requires_context": fi.requires_context,
                "input_types": sorted(fi.input_types),
                "output_types": sorted(fi.output_types),
                "is_http_func": fi.is_http_func,
                "calls": [_invoke(fi, loop, pool, n) for n in range(2)],
            }
    finally:
        pool.shutdown(wait=True)
        from faaspool.aio import _cache as aio_cache

        aio_cache.forget_loop(loop)
        loop.close()
    report["functions"] = functions
    for name in ("refused", "naive"):
        other = app_dir / name / "function_app.py"
        if other.exists():
            sys.path.insert(0, str(other.parent))
            sys.modules.pop("function_app", None)
            try:
                _index(other)
                report[name] = {"indexed": True}
            except Exception as exc:
                report[name] = {"error_type": type(exc).__name__, "error": str(exc)}
    return report


def main(argv: list[str]) -> int:
    import os

    app_dir = Path(argv[1]).resolve()
    os.environ["REDIS_URL"] = argv[2]
    print(json.dumps(check(app_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
