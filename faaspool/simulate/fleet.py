"""A fleet: the instances of one strategy's function, run the way a FaaS platform runs them.

Each instance is a process that loads the handler once (cold start) and then serves one
invocation at a time (Lambda) or up to ``threads`` at once (Cloud Functions, Azure). Idle
instances are frozen with SIGSTOP and thawed with SIGCONT when work arrives; an invocation
still running at its deadline gets its instance killed, as the platform does; instances are
recycled (killed while frozen, replaced by a cold one) after a random lifetime.

The fleet does no I/O waiting of its own: the runner's selector watches every instance's
output and calls `Fleet.on_readable`, `Fleet.submit` and `Fleet.tick`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import select
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

from ._proc import child_env
from .backend import Backend
from .instance import BOOTSTRAP
from .metrics import Record
from .strategies import Strategy

__all__ = ["Fleet", "FleetConfig", "FleetError"]

# After the deadline, before the platform kills the instance: room for a reply in flight.
KILL_SLACK = 0.1
_INSTANCE_SCRIPT = Path(__file__).with_name("instance.py")
MAX_QUEUE = 50
_REAP_TIMEOUT = 5.0
# Taken out of the instances' environment: the simulator sets the platform's own, and a
# FAASPOOL_* setting in the user's shell would change what the faaspool strategy measures.
_STRIPPED_VARIABLES = (
    "FAASPOOL_",
    "AWS_LAMBDA_",
    "AWS_EXECUTION_ENV",
    "K_SERVICE",
    "FUNCTION_TARGET",
    "FUNCTIONS_WORKER_RUNTIME",
    "WEBSITE_SITE_NAME",
    "CLOUD_RUN_TIMEOUT_SECONDS",
    "THREADS",
    "PYTHON_THREADPOOL_THREAD_COUNT",
    "REDIS_URL",
)


class FleetError(RuntimeError):
    """An instance could not even start (its handler module failed to import)."""


@dataclasses.dataclass(frozen=True)
class FleetConfig:
    """The shape of every strategy's fleet (the same for all of them)."""

    instances: int
    threads: int  # 1: Lambda (one invocation at a time); more: Cloud Functions / Azure
    timeout: float  # the function's timeout: each invocation's deadline
    lifetime: float  # mean seconds before an instance is recycled; 0: never
    probe_after: float  # the strategies' idle health-check interval (compressed time)
    log_dir: Path


@dataclasses.dataclass
class _Pending:
    id: int
    dispatched: float
    deadline: float


class Instance:
    """One instance process and what the platform knows about it."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], log: IO[bytes], retire_at: float):
        self.name = name
        self.proc = proc
        self.log = log
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.retire_at = retire_at
        self.buffer = b""
        self.ready = False
        self.frozen = False
        self.gone = False
        self.init_seconds: float | None = None
        self.inflight: dict[int, _Pending] = {}
        self.leaked = 0
        self.stats: dict[str, int] | None = None  # its faaspool.stats(), as last reported
        self.report: dict[str, Any] | None = None

    def send(self, message: dict[str, Any]) -> bool:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            stdin.flush()
        except OSError:
            return False
        return True

    def freeze(self) -> None:
        if not self.frozen and not self.gone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.frozen and not self.gone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.frozen = False

    def kill(self) -> None:
        """SIGKILL (it reaches a frozen process too) and reap."""
        self.gone = True
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(_REAP_TIMEOUT)
        for stream in (proc.stdin, proc.stdout, self.log):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class Fleet:
    """The instances of one strategy, fed invocations by the runner."""

    def __init__(
        self,
        strategy: Strategy,
        backend: Backend,
        config: FleetConfig,
        selector: selectors.BaseSelector,
        rng: random.Random,
        origin: float,
    ) -> None:
        self.strategy = strategy
        self.backend = backend
        self.config = config
        self.origin = origin
        self._selector = selector
        self._rng = rng
        self.instances: list[Instance] = []
        self.retired: list[Instance] = []
        self.records: list[Record] = []
        self.queue: deque[int] = deque()
        self.throttled = 0
        self.spawned = 0
        self.recycled = 0
        self.killed_by_platform = 0
        self.crashed = 0
        self.submitted = 0
        # Off once arrivals have ended: a cold replacement would only delay the end.
        self.recycling = True

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for _ in range(self.config.instances):
            self._spawn(time.monotonic())

    @property
    def all_ready(self) -> bool:
        return all(i.ready for i in self.instances)

    @property
    def busy(self) -> bool:
        return bool(self.queue) or any(i.inflight for i in self.instances)

    def close(self) -> None:
        """Kill every instance. Idempotent."""
        for instance in self.instances:
            self._unregister(instance)
            instance.kill()
        self.retired.extend(self.instances)
        self.instances = []

    def _environment(self, name: str) -> dict[str, str]:
        cfg = self.config
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_VARIABLES)}
        function = self.backend.function
        env.update(
            REDIS_URL=self.backend.url,
            FAASPOOL_SIM_FUNCTION=function,
            FAASPOOL_SIM_INSTANCE=name,
            FAASPOOL_IDLE_PROBE_AFTER=f"{cfg.probe_after:g}",
            FAASPOOL_SIM_HEALTH_CHECK_INTERVAL=f"{cfg.probe_after:g}",
        )
        if cfg.threads == 1:
            env.update(
                AWS_LAMBDA_FUNCTION_NAME=function,
                AWS_LAMBDA_FUNCTION_TIMEOUT=f"{cfg.timeout:g}",
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
            )
        else:
            env.update(
                K_SERVICE=function,
                FUNCTION_TARGET="handler",
                THREADS=str(cfg.threads),
                CLOUD_RUN_TIMEOUT_SECONDS=f"{cfg.timeout:g}",
            )
        return child_env(env)

    def _spawn(self, now: float) -> Instance:
        name = f"i{self.spawned}"
        self.spawned += 1
        log = (self.config.log_dir / f"{self.strategy.name}-{name}.log").open("wb")
        try:
            command = [sys.executable, "-c", BOOTSTRAP, str(_INSTANCE_SCRIPT)]
            command += [self.strategy.module, "--threads", str(self.config.threads)]
            proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=self._environment(name),
                close_fds=True,
            )
        except BaseException:
            log.close()
            raise
        lifetime = self.config.lifetime
        retire_at = now + lifetime * self._rng.uniform(0.5, 1.5) if lifetime > 0 else math.inf
        instance = Instance(name, proc, log, retire_at)
        self.instances.append(instance)
        self._selector.register(instance.fd, selectors.EVENT_READ, (self, instance))
        return instance

    def _unregister(self, instance: Instance) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(instance.fd)

    def _replace(self, instance: Instance, now: float) -> None:
        self._unregister(instance)
        instance.kill()
        self.instances.remove(instance)
        self.retired.append(instance)
        self._spawn(now)

    # -- invocations ---------------------------------------------------------------------

    def submit(self, invocation_id: int, now: float) -> None:
        """An invocation arrives: to an instance with room, else to the queue."""
        self.submitted += 1
        instance = self._pick()
        if instance is not None:
            self._dispatch(instance, invocation_id, now)
        elif len(self.queue) < MAX_QUEUE:
            self.queue.append(invocation_id)
        else:
            self.throttled += 1

    def _pick(self) -> Instance | None:
        limit = self.config.threads
        free = [i for i in self.instances if i.ready and not i.gone and len(i.inflight) < limit]
        return self._rng.choice(free) if free else None

    def event(self, invocation_id: int, deadline: float) -> dict[str, Any]:
        prefix = self.backend.key_prefix
        return {
            "t": "invoke",
            "id": invocation_id,
            "deadline": deadline,
            "read_key": f"{prefix}user:{invocation_id % 100}",
            "set_key": f"{prefix}last:{invocation_id % 10}",
            "incr_key": f"{prefix}inv:{invocation_id}",
        }

    def _dispatch(self, instance: Instance, invocation_id: int, now: float) -> None:
        deadline = now + self.config.timeout
        instance.thaw()
        instance.inflight[invocation_id] = _Pending(invocation_id, now, deadline)
        # A broken pipe means it died: the EOF on its output will account for the invocation.
        instance.send(self.event(invocation_id, deadline))

    def _after_work(self, instance: Instance, now: float) -> None:
        """An instance has room again: give it queued work, recycle it, or freeze it."""
        limit = self.config.threads
        while self.queue and len(instance.inflight) < limit:
            self._dispatch(instance, self.queue.popleft(), now)
        if instance.inflight:
            return
        if self.recycling and now >= instance.retire_at:
            self.recycled += 1
            self._replace(instance, now)
        else:
            instance.freeze()

    # -- events from the runner ----------------------------------------------------------

    def on_readable(self, instance: Instance, now: float) -> None:
        try:
            chunk = os.read(instance.fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            if instance in self.instances:
                self._lost(instance, now, "instance crashed")
            return
        instance.buffer += chunk
        while b"\n" in instance.buffer:
            line, instance.buffer = instance.buffer.split(b"\n", 1)
            self._on_message(instance, json.loads(line), now)

    def _on_message(self, instance: Instance, message: dict[str, Any], now: float) -> None:
        kind = message.get("t")
        if kind == "ready":
            instance.ready = True
            instance.init_seconds = float(message.get("init", 0.0))
            self._after_work(instance, now)
        elif kind == "done":
            pending = instance.inflight.pop(int(message["id"]), None)
            if pending is None:
                return
            started = float(message["t0"])
            duration = float(message["dur"])
            self.records.append(
                Record(
                    id=pending.id,
                    instance=instance.name,
                    at=started - self.origin,
                    duration=duration,
                    ok=bool(message["ok"]),
                    cold=bool(message["cold"]),
                    op=message.get("op"),
                    error=message.get("err"),
                    message=str(message.get("msg", ""))[:300],
                    late=started + duration > pending.deadline,
                )
            )
            if message.get("stats"):
                instance.stats = message["stats"]
            if message.get("leaked") is not None:
                instance.leaked = max(instance.leaked, int(message["leaked"]))
            self._after_work(instance, now)
        elif kind == "report":
            instance.report = message
            if message.get("stats"):
                instance.stats = message["stats"]

    def tick(self, now: float) -> None:
        """Kill instances whose invocation outlived its deadline, and recycle idle ones
        whose lifetime is over, as the platform does."""
        for instance in list(self.instances):
            if any(now > p.deadline + KILL_SLACK for p in instance.inflight.values()):
                self.killed_by_platform += 1
                self._lost(instance, now, "timeout")
            elif (
                self.recycling
                and instance.ready
                and not instance.inflight
                and now >= instance.retire_at
            ):
                self.recycled += 1
                self._replace(instance, now)

    def _lost(self, instance: Instance, now: float, why: str) -> None:
        if not instance.ready:
            instance.kill()
            raise FleetError(
                f"an instance of {self.strategy.name} exited before it was ready:\n"
                + _tail(self.config.log_dir / f"{self.strategy.name}-{instance.name}.log")
            )
        killed = why == "timeout"
        if not killed:
            self.crashed += 1
        for pending in instance.inflight.values():
            self.records.append(
                Record(
                    id=pending.id,
                    instance=instance.name,
                    at=pending.dispatched - self.origin,
                    duration=now - pending.dispatched,
                    ok=False,
                    cold=False,
                    op="platform",
                    error=why,
                    killed=killed,
                    late=killed,
                )
            )
        instance.inflight.clear()
        self._replace(instance, now)

    # -- the end -------------------------------------------------------------------------

    def collect_reports(self, timeout: float) -> None:
        """Thaw every ready instance and read its final report (connections, stats)."""
        end = time.monotonic() + timeout
        for instance in list(self.instances):
            if not instance.ready or instance.gone:
                continue
            instance.thaw()
            if not instance.send({"t": "report"}):
                continue
            while instance.report is None and instance in self.instances:
                left = end - time.monotonic()
                if left <= 0 or not select.select([instance.fd], [], [], left)[0]:
                    break
                self.on_readable(instance, time.monotonic())

    def leaked(self) -> int:
        """Per instance, the most connections ever left checked out with nothing running."""
        total = 0
        for instance in self.instances + self.retired:
            at_end = int(instance.report["in_use"]) if instance.report else 0
            total += max(instance.leaked, at_end)
        return total

    def held_at_end(self) -> int:
        return sum(int(i.report["held"]) for i in self.instances if i.report)

    def faaspool_stats(self) -> dict[str, int] | None:
        """faaspool.stats() summed over every instance (None if the strategy has none)."""
        total: dict[str, int] | None = None
        for instance in self.instances + self.retired:
            if instance.stats:
                total = total or {}
                for key, value in instance.stats.items():
                    total[key] = total.get(key, 0) + int(value)
        return total


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
