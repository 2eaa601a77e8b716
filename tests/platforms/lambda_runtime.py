"""A local AWS Lambda Runtime API, and a function process driven by the real awslambdaric.

`RuntimeAPI` serves the 2018-06-01 interface the runtime client polls
(``/runtime/invocation/next``, ``/response``, ``/error``, ``/init/error``,
``/restore/next``, ``/restore/error``) from a thread. `LambdaFunction` starts
``python -m awslambdaric module.handler`` against it, so the handler is imported, decorated
and called exactly as on AWS: positionally, with awslambdaric's own ``LambdaContext`` built
from the ``Lambda-Runtime-Deadline-Ms`` header we send.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/2018-06-01/runtime"
REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_NAME = "faaspool-test"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# Settings of the machine running the tests must not leak into the function.
_STRIPPED_ENV = ("AWS_", "REDIS_URL", "FAASPOOL_", "POWERTOOLS_", "_LAMBDA", "_HANDLER")


class _QuietServer(ThreadingHTTPServer):
    """Drops the traceback of a runtime client that hung up while the API shuts down."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, BrokenPipeError | ConnectionResetError):
            return
        super().handle_error(request, client_address)


@dataclass
class Outcome:
    """What the runtime posted back for one invocation."""

    request_id: str
    ok: bool
    body: Any = None
    error_type: str | None = None
    error_message: str | None = None
    raw: bytes = b""

    @property
    def error(self) -> str:
        return f"{self.error_type}: {self.error_message}"


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class RuntimeAPI:
    """The Runtime API endpoints, served on 127.0.0.1 and a free port from a thread."""

    def __init__(self) -> None:
        self._events: queue.Queue[tuple[str, bytes, dict[str, str]]] = queue.Queue()
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._closed = threading.Event()
        self.init_errors: list[dict[str, Any]] = []
        self.init_error_posted = threading.Event()
        self.restore_reached = threading.Event()
        self.restore_release = threading.Event()
        self.restore_errors: list[dict[str, Any]] = []
        self.hold_restore = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == f"{PREFIX}/invocation/next":
                    api._serve_next(self)
                elif self.path == f"{PREFIX}/restore/next":
                    api.restore_reached.set()
                    if api.hold_restore:
                        api.restore_release.wait(START_TIMEOUT)
                    _reply(self, 200, b"")
                else:
                    _reply(self, 404, b'{"errorMessage":"unknown path"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                api._serve_post(self, body)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        """``host:port``, the value of ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def submit(self, event: Any, *, timeout_ms: int = 30_000) -> tuple[str, _Pending]:
        """Queue one invocation whose deadline is ``timeout_ms`` from now."""
        request_id = f"req-{next(self._ids):04d}"
        pending = _Pending()
        self._pending[request_id] = pending
        deadline_ms = int(time.time() * 1000) + timeout_ms
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": (
                f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"
            ),
            "Lambda-Runtime-Trace-Id": (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
            ),
            "Content-Type": "application/json",
        }
        self._events.put((request_id, json.dumps(event).encode(), headers))
        return request_id, pending

    def close(self) -> None:
        self._closed.set()
        self.restore_release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(STOP_TIMEOUT)

    # -- endpoints ----------------------------------------------------------------------------

    def _serve_next(self, handler: BaseHTTPRequestHandler) -> None:
        # The runtime long-polls; wake up now and then to notice a shutdown.
        while not self._closed.is_set():
            try:
                _, body, headers = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            handler.send_response(200)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        _reply(handler, 500, b'{"errorMessage":"runtime API shut down"}')

    def _serve_post(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path
        parts = path[len(PREFIX) :].strip("/").split("/") if path.startswith(PREFIX) else []
        if parts == ["init", "error"]:
            self.init_errors.append(_json(body))
            self.init_error_posted.set()
            _reply(handler, 202, b'{"status":"OK"}')
        elif parts == ["restore", "error"]:
            self.restore_errors.append(_json(body))
            _reply(handler, 202, b'{"status":"OK"}')
        elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            request_id = parts[1]
            pending = self._pending.get(request_id)
            if pending is None:
                _reply(handler, 400, b'{"errorMessage":"unknown request id"}')
                return
            if parts[2] == "response":
                outcome = Outcome(request_id, True, _json(body), raw=body)
            else:
                data = _json(body)
                outcome = Outcome(
                    request_id,
                    False,
                    data,
                    error_type=data.get("errorType") if isinstance(data, dict) else None,
                    error_message=data.get("errorMessage") if isinstance(data, dict) else None,
                    raw=body,
                )
            pending.outcome = outcome
            pending.done.set()
            _reply(handler, 202, b'{"status":"OK"}')
        else:
            _reply(handler, 404, b'{"errorMessage":"unknown path"}')


def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body.decode(errors="replace")


class LambdaFunction:
    """One execution environment: awslambdaric running ``handler`` from ``directory``."""

    def __init__(
        self,
        directory: Path,
        handler: str = "app.handler",
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.handler = handler
        self.api = RuntimeAPI()
        self.log_path = directory / f"{handler.replace('.', '_')}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV)}
        base.update(
            {
                "AWS_LAMBDA_RUNTIME_API": self.api.address,
                "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "test-stream",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "LAMBDA_TASK_ROOT": str(directory),
                "POWERTOOLS_TRACE_DISABLED": "true",
                "PYTHONPATH": os.pathsep.join([str(directory), str(REPO_ROOT)]),
                "PYTHONUNBUFFERED": "1",
            }
        )
        base.update(env or {})
        self.env = base
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LambdaFunction:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "awslambdaric", self.handler],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def invoke(self, event: Any = None, *, timeout_ms: int = 30_000, wait: float = 30.0) -> Outcome:
        """Send one event and wait (at most ``wait`` s) for the runtime's answer."""
        request_id, pending = self.api.submit({} if event is None else event, timeout_ms=timeout_ms)
        end = time.monotonic() + wait
        while not pending.done.wait(0.05):
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the function process exited ({self.proc.returncode}) during "
                    f"{request_id}:\n{self.log()}"
                )
            if time.monotonic() > end:
                raise AssertionError(f"no answer to {request_id} within {wait}s:\n{self.log()}")
        assert pending.outcome is not None
        return pending.outcome

    def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the function did not exit within {timeout}s") from None

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
        self.api.close()

    def __enter__(self) -> LambdaFunction:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
