"""Start the real functions-framework server (gunicorn, or uvicorn for ``aio`` functions) on
a free port, and talk to it with plain HTTP requests and binary-mode CloudEvents."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
_STRIPPED_ENV = (
    "REDIS_URL",
    "FAASPOOL_",
    "FUNCTION_",
    "K_SERVICE",
    "CLOUD_RUN_",
    "THREADS",
    "WORKERS",
    "THREADED_TIMEOUT",
    "AWS_",
)


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FunctionsFramework:
    """``python -m functions_framework --target T --source S`` on 127.0.0.1:<free port>.

    The whole process group is killed at `close`. ``env`` is added to a clean copy of
    the environment (no REDIS_URL, FAASPOOL_*, or framework settings leak in).
    """

    def __init__(
        self,
        source: Path,
        target: str,
        *,
        env: dict[str, str] | None = None,
        signature_type: str | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.signature_type = signature_type
        self.log_path = source.parent / f"{target}.ff.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV)}
        base.update(
            {
                "PYTHONPATH": os.pathsep.join([str(source.parent), str(REPO_ROOT)]),
                "PYTHONUNBUFFERED": "1",
                "GUNICORN_LOG_LEVEL": "warning",
            }
        )
        base.update(env or {})
        self.env = base
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FunctionsFramework:
        for _ in range(3):
            self.port = free_port()
            self._spawn()
            if self._wait_ready():
                return self
            # Lost the port to another process between choosing and binding it: try again.
            self.close()
        raise AssertionError(f"functions-framework did not start:\n{self.log()}")

    def _spawn(self) -> None:
        args = [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            self.target,
            "--source",
            str(self.source),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.signature_type:
            args += ["--signature-type", self.signature_type]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=self.source.parent,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                if "Address already in use" in self.log():
                    return False
                raise AssertionError(
                    f"functions-framework exited ({self.proc.returncode}):\n{self.log()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            time.sleep(0.05)
        raise AssertionError(f"functions-framework not listening after {START_TIMEOUT}s")

    def request(
        self,
        path: str = "/",
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        timeout: float = 30.0,
    ) -> Response:
        req = urllib.request.Request(
            self.url + path, data=data, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as reply:
                return Response(reply.status, reply.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.read())

    def get_json(self, path: str = "/", **kwargs: Any) -> Any:
        reply = self.request(path, **kwargs)
        assert reply.status == 200, (reply.status, reply.body[:2000], self.log()[-4000:])
        return reply.json()

    def cloud_event(self, event_id: str, data: Any, *, type_: str = "com.example.test") -> Response:
        """POST a binary-mode CloudEvent."""
        headers = {
            "ce-specversion": "1.0",
            "ce-id": event_id,
            "ce-source": "//faaspool/tests",
            "ce-type": type_,
            "Content-Type": "application/json",
        }
        return self.request("/", data=json.dumps(data).encode(), headers=headers, method="POST")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
        else:
            # The master is gone; make sure no worker of its group outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> FunctionsFramework:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
