"""One simulation from start to finish: servers, network, fleets, arrivals, faults, figures.

Every process it starts (network, instances, redis-servers) is stopped on the way out,
whether the run ends, fails, or is interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import heapq
import random
import secrets
import selectors
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from ..embedded import find_redis_server, redis_server_version
from .backend import Backend, EmbeddedBackend, ExternalBackend
from .faults import FaultEvent, FaultRunner, lulls
from .fleet import Fleet, FleetConfig
from .metrics import Record, Summary, percentile, summarize
from .network import NetworkProcess
from .settings import Settings, redacted_url

__all__ = ["Progress", "Results", "Snapshot", "simulate"]

READY_TIMEOUT = 60.0
REPORT_TIMEOUT = 10.0
_TICK = 0.05
_PROGRESS_EVERY = 0.5


@dataclasses.dataclass
class Snapshot:
    """The run so far, for live progress."""

    elapsed: float
    duration: float
    rows: list[dict[str, Any]]
    events: list[FaultEvent]


class Progress(Protocol):
    """Told how the run goes about twice a second; the last update comes once every
    invocation has finished, before anything is torn down."""

    def update(self, snapshot: Snapshot) -> None: ...


@dataclasses.dataclass
class Results:
    """Everything a finished run measured."""

    settings: Settings
    started_at: str
    server: str
    summaries: list[Summary]
    events: list[FaultEvent]
    records: dict[str, list[Record]]
    fleets: dict[str, dict[str, Any]]
    network: dict[str, dict[str, int]]

    def summary(self, strategy: str) -> Summary:
        for summary in self.summaries:
            if summary.strategy == strategy:
                return summary
        raise KeyError(strategy)

    def as_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.describe(),
            "started_at": self.started_at,
            "server": self.server,
            "max_connections_per_instance": self.settings.max_connections,
            "summaries": [s.as_dict() for s in self.summaries],
            "faults": [e.as_dict() for e in self.events],
            "fleets": self.fleets,
            "network": self.network,
            "invocations": {
                name: [dataclasses.asdict(r) for r in records]
                for name, records in self.records.items()
            },
        }


def _arrivals(settings: Settings) -> list[tuple[float, int, int]]:
    """(time, strategy index, invocation id), every strategy on the same Poisson sequence.

    Each strategy's copy is shifted by a fraction of the mean gap, so that strategies do
    not all compete for the CPU at the same instant.
    """
    rng = random.Random(settings.seed)
    quiet = lulls(settings.faults)
    times: list[float] = []
    t = rng.expovariate(settings.rate)
    while t < settings.duration:
        if not any(start <= t < end for start, end in quiet):
            times.append(t)
        t += rng.expovariate(settings.rate)
    count = len(settings.strategies)
    shift = 1.0 / (settings.rate * count)
    arrivals = [
        (t + index * shift, index, n)
        for n, t in enumerate(times)
        for index in range(count)
        if t + index * shift < settings.duration
    ]
    heapq.heapify(arrivals)
    return arrivals


@contextlib.contextmanager
def _interrupt_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) raise KeyboardInterrupt, so cleanup runs as
    for Ctrl-C: the redis-servers live in sessions of their own and would outlive us."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {signum: signal.signal(signum, handler) for signum in wanted}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def simulate(settings: Settings, progress: Progress | None = None) -> Results:
    """Run one simulation and return its figures; every process it started is gone after."""
    with _interrupt_on_signals(), _Run(settings) as run:
        return run.execute(progress)


class _Run:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log_dir = Path(tempfile.mkdtemp(prefix="faaspool-sim-"))
        self.network: NetworkProcess | None = None
        self.backends: list[Backend] = []
        self.fleets: list[Fleet] = []
        self.faults: FaultRunner | None = None
        self.selector = selectors.DefaultSelector()

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.faults is not None:
            self.faults.stop()
        for fleet in self.fleets:
            with contextlib.suppress(Exception):
                fleet.close()
        if self.network is not None:
            with contextlib.suppress(Exception):
                self.network.close()
        for backend in self.backends:
            with contextlib.suppress(Exception):
                backend.close()
        self.selector.close()
        shutil.rmtree(self.log_dir, ignore_errors=True)

    # -- setup -----------------------------------------------------------------------------

    def _server_label(self) -> str:
        if self.settings.redis_url:
            return redacted_url(self.settings.redis_url)
        executable = find_redis_server()
        version = ".".join(map(str, redis_server_version(executable)))
        return f"redis-server {version} (embedded, one per strategy)"

    def _setup(self) -> None:
        s = self.settings
        self.network = NetworkProcess()
        failover = any(f.kind == "failover" for f in s.faults)
        run_id = secrets.token_hex(3)
        for strategy in s.strategies:
            backend: Backend
            if s.redis_url:
                backend = ExternalBackend(strategy.name, self.network, s.redis_url, run_id)
            else:
                backend = EmbeddedBackend(strategy.name, self.network, with_replica=failover)
            self.backends.append(backend)
        config = FleetConfig(
            instances=s.instances,
            threads=s.threads,
            timeout=s.timeout,
            lifetime=s.lifetime,
            probe_after=s.probe_after,
            log_dir=self.log_dir,
        )
        for index, (strategy, backend) in enumerate(zip(s.strategies, self.backends, strict=True)):
            rng = random.Random(f"{s.seed}:{index}")
            fleet = Fleet(strategy, backend, config, self.selector, rng, time.monotonic())
            self.fleets.append(fleet)
            fleet.start()
        self._wait_ready()

    def _wait_ready(self) -> None:
        end = time.monotonic() + READY_TIMEOUT
        while not all(f.all_ready for f in self.fleets):
            if time.monotonic() > end:
                raise TimeoutError(f"instances were not ready within {READY_TIMEOUT:.0f} s")
            self._poll(0.1)

    def _poll(self, timeout: float) -> None:
        for key, _ in self.selector.select(max(0.0, timeout)):
            fleet, instance = key.data
            fleet.on_readable(instance, time.monotonic())

    # -- the run ---------------------------------------------------------------------------

    def execute(self, progress: Progress | None) -> Results:
        s = self.settings
        started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        server = self._server_label()
        self._setup()
        assert self.network is not None
        arrivals = _arrivals(s)
        origin = time.monotonic()
        for fleet in self.fleets:
            fleet.origin = origin
        self.faults = FaultRunner(s.faults, self.backends)
        self.faults.start(origin)
        end = origin + s.duration
        next_progress = origin
        while True:
            now = time.monotonic()
            while arrivals and origin + arrivals[0][0] <= now:
                _, index, invocation_id = heapq.heappop(arrivals)
                self.fleets[index].submit(invocation_id, now)
            for fleet in self.fleets:
                fleet.tick(now)
            if progress is not None and now >= next_progress:
                progress.update(self._snapshot(now - origin))
                next_progress = now + _PROGRESS_EVERY
            if now >= end:
                for fleet in self.fleets:
                    fleet.recycling = False
                if not any(f.busy for f in self.fleets):
                    break
            if now > end + s.timeout + 2.0:
                break  # tick() kills whatever outlived its deadline well before this
            wait = _TICK
            if arrivals:
                wait = min(wait, origin + arrivals[0][0] - now)
            self._poll(wait)
        if self.faults.error is not None:
            raise self.faults.error
        self.faults.stop()
        if progress is not None:
            progress.update(self._snapshot(s.duration))
        return self._results(started_at, server)

    def _snapshot(self, elapsed: float) -> Snapshot:
        assert self.network is not None and self.faults is not None
        links = self.network.stats()
        rows = []
        for fleet in self.fleets:
            records = fleet.records
            recent = [r.duration * 1000 for r in records[-200:] if r.ok and not r.cold]
            link = links.get(fleet.strategy.name, {})
            rows.append(
                {
                    "strategy": fleet.strategy.name,
                    "invocations": len(records),
                    "errors": sum(1 for r in records if not r.ok),
                    "past_deadline": sum(1 for r in records if r.killed or r.late),
                    "p50_ms": percentile(recent, 50),
                    "open": link.get("open", 0),
                    "peak": link.get("peak_open", 0),
                    "connects": link.get("connects", 0),
                }
            )
        return Snapshot(elapsed, self.settings.duration, rows, self.faults.snapshot())

    def _results(self, started_at: str, server: str) -> Results:
        assert self.network is not None and self.faults is not None
        for fleet in self.fleets:
            fleet.collect_reports(REPORT_TIMEOUT)
        links = self.network.stats()
        summaries = []
        for fleet, backend in zip(self.fleets, self.backends, strict=True):
            summaries.append(
                summarize(
                    fleet.strategy.name,
                    fleet.records,
                    incr_values=backend.incr_values(),
                    link=links.get(fleet.strategy.name, {}),
                    leaked=fleet.leaked(),
                    held_at_end=fleet.held_at_end(),
                    throttled=fleet.throttled,
                    faaspool_stats=fleet.faaspool_stats(),
                )
            )
        fleets = {}
        for fleet in self.fleets:
            inits = [
                i.init_seconds * 1000 for i in fleet.instances + fleet.retired if i.init_seconds
            ]
            fleets[fleet.strategy.name] = {
                "instances_started": fleet.spawned,
                "recycled": fleet.recycled,
                "killed_at_deadline": fleet.killed_by_platform,
                "crashed": fleet.crashed,
                "throttled": fleet.throttled,
                "init_p50_ms": percentile(inits, 50),
            }
        return Results(
            settings=self.settings,
            started_at=started_at,
            server=server,
            summaries=summaries,
            events=self.faults.snapshot(),
            records={f.strategy.name: sorted(f.records, key=lambda r: r.at) for f in self.fleets},
            fleets=fleets,
            network=links,
        )
