"""The fleet simulator: short real runs (real redis-servers, real sockets, real instance
processes) whose reported figures are checked against what the servers and network saw."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from faaspool.simulate import add_arguments, run
from faaspool.simulate.faults import DEFAULT_SCHEDULE, parse_schedule
from faaspool.simulate.network import NetworkProcess
from faaspool.simulate.report import check_targets, format_report, format_table, write_json
from faaspool.simulate.runner import Results, Snapshot, _arrivals, simulate
from faaspool.simulate.settings import Settings, settings_from_args
from faaspool.simulate.strategies import STRATEGIES, parse_strategies
from tests.support.server import RedisServer


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces; the fields after its ')' are fixed.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _settings(**overrides: Any) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--progress", "none"])
    base = settings_from_args(args)
    return dataclasses.replace(base, **overrides)


class Watcher:
    """A Progress that records each snapshot; the last one comes after every invocation."""

    def __init__(self, server: RedisServer | None = None) -> None:
        self.snapshots: list[Snapshot] = []
        self.server = server
        self.sampled_faaspool_clients = 0
        self.final_values: dict[str, list[int]] = {}

    def update(self, snapshot: Snapshot) -> None:
        self.snapshots.append(snapshot)
        if self.server is None:
            return
        admin = self.server.admin()
        names = [c.get("name", "") for c in admin.client_list()]
        mine = sum(1 for n in names if n.startswith("faaspool:sim-") and n.count(":") == 2)
        self.sampled_faaspool_clients = max(self.sampled_faaspool_clients, mine)
        if snapshot.elapsed >= snapshot.duration:
            for strategy in ("global", "faaspool"):
                keys = list(admin.scan_iter(match=f"sim:*:{strategy}:inv:*", count=1000))
                self.final_values[strategy] = [int(v) for v in admin.mget(keys)] if keys else []


# -- one embedded run of every strategy, shared by the tests below -----------------------

# The restart lands in a 0.47 s gap between two of faaspool's arrivals (seed 1): faaspool
# does not yet wait for a server that refuses connections (it gives up after ~20 ms of
# refusals), so an invocation inside the restart would fail its GET.
SCHEDULE = "reply-lost@1:count=2,client-kill@2.5,restart@3.2,failover@4.5"


@pytest.fixture(scope="module")
def embedded_run() -> Iterator[tuple[Results, Watcher, set[int]]]:
    settings = _settings(
        duration=6.0,
        instances=2,
        rate=10.0,
        lifetime=3.0,
        faults=tuple(parse_schedule(SCHEDULE, 6.0, 2.0)),
    )
    before = _children(os.getpid())
    watcher = Watcher()
    results = simulate(settings, watcher)
    leftovers = _alive(_children(os.getpid()) - before)
    yield results, watcher, leftovers


def test_every_process_is_stopped(embedded_run: tuple[Results, Watcher, set[int]]) -> None:
    _, _, leftovers = embedded_run
    assert leftovers == set()


def test_every_arrival_is_accounted_for(embedded_run: tuple[Results, Watcher, set[int]]) -> None:
    results, _, _ = embedded_run
    arrivals = _arrivals(results.settings)
    for index, summary in enumerate(results.summaries):
        expected = sum(1 for _, i, _ in arrivals if i == index)
        assert summary.invocations + summary.throttled == expected
        records = results.records[summary.strategy]
        failed = sum(1 for r in records if not r.ok)
        assert summary.ok + failed == summary.invocations == len(records)
        assert {r.id for r in records} == {n for _, i, n in arrivals if i == index}


def test_lost_replies_are_replayed_by_redis_py_and_not_by_faaspool(
    embedded_run: tuple[Results, Watcher, set[int]],
) -> None:
    results, _, _ = embedded_run
    for name in STRATEGIES:
        assert results.network[name]["replies_dropped"] == 2
    # redis.Redis(host=...) retries a ConnectionError by sending the INCR again.
    assert results.summary("global").applied_twice >= 1
    assert results.summary("naive").applied_twice >= 1
    faaspool = results.summary("faaspool")
    assert faaspool.applied_twice == 0
    assert faaspool.errors_write == faaspool.ambiguous_reported == 2
    assert faaspool.error_classes == {"unsafe_write: AmbiguousWriteError": 2}


def test_faaspool_meets_its_targets(embedded_run: tuple[Results, Watcher, set[int]]) -> None:
    results, _, _ = embedded_run
    f = results.summary("faaspool")
    assert f.errors_read_safe == 0
    assert f.past_deadline == 0 and f.killed == 0
    assert f.leaked == 0
    assert f.acknowledged_lost == 0
    assert 0 < f.peak_connections <= results.settings.instances * results.settings.max_connections
    assert f.connects >= f.peak_connections
    assert f.faaspool_stats is not None and f.faaspool_stats["ambiguous_writes"] == 2
    checks = dict((text.split(":")[0], ok) for ok, text in check_targets(results))
    assert checks["errors surfaced on reads and SETs"]
    assert checks["writes applied twice"]


def test_faults_hit_every_strategy(embedded_run: tuple[Results, Watcher, set[int]]) -> None:
    results, watcher, _ = embedded_run
    kinds = [(e.kind, e.phase) for e in results.events]
    assert kinds == [
        ("reply-lost", "start"),
        ("reply-lost", "start"),
        ("client-kill", "start"),
        ("restart", "start"),
        ("failover", "start"),
    ]
    for event in results.events:
        assert set(event.outcomes) == set(STRATEGIES)
        assert not any(o.startswith(("failed", "skipped")) for o in event.outcomes.values())
    killed = results.events[2].outcomes
    # A recycled instance may not have connected yet, but not every one of them.
    assert any(killed[n] != "killed 0 connections" for n in ("global", "tuned", "faaspool"))
    # Restarts keep the data and failovers wait for the replica: no acknowledged write is lost.
    assert all(s.acknowledged_lost == 0 for s in results.summaries)
    assert watcher.snapshots and watcher.snapshots[-1].elapsed == results.settings.duration
    assert sum(f["recycled"] for f in results.fleets.values()) > 0


def test_report_json_and_plot(
    embedded_run: tuple[Results, Watcher, set[int]], tmp_path: Path
) -> None:
    results, _, _ = embedded_run
    text = format_report(results)
    for name in STRATEGIES:
        assert f"\n{name} " in text
    assert "faaspool targets:" in text
    assert format_table(results.summaries, markdown=True).startswith("| strategy |")
    path = tmp_path / "figures.json"
    write_json(results, path)
    data = json.loads(path.read_text())
    assert [s["strategy"] for s in data["summaries"]] == list(STRATEGIES)
    assert len(data["invocations"]["faaspool"]) == results.summary("faaspool").invocations
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed")
    from faaspool.simulate.report import write_plot

    plot = tmp_path / "latency.png"
    write_plot(results, plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- other shapes -------------------------------------------------------------------------


def test_external_server_counts_match_the_server(redis_server: RedisServer) -> None:
    settings = _settings(
        duration=4.0,
        instances=2,
        rate=10.0,
        lifetime=0.0,
        strategies=tuple(parse_strategies("global,faaspool")),
        redis_url=redis_server.url,
        faults=tuple(parse_schedule("reply-lost@1:count=2,client-kill@2.5,restart@3", 4.0, 2.0)),
    )
    watcher = Watcher(redis_server)
    results = simulate(settings, watcher)
    replays = watcher.final_values
    assert sum(1 for v in replays["global"] if v >= 2) == results.summary("global").applied_twice
    assert results.summary("global").applied_twice >= 1
    assert replays["faaspool"] and max(replays["faaspool"]) == 1
    assert results.summary("faaspool").applied_twice == 0
    assert watcher.sampled_faaspool_clients <= results.summary("faaspool").peak_connections
    restart = next(e for e in results.events if e.kind == "restart")
    assert all(o.startswith("skipped") for o in restart.outcomes.values())
    kill = next(e for e in results.events if e.kind == "client-kill")
    assert all("of this fleet's connections" in o for o in kill.outcomes.values())
    # The simulator's keys are gone; the server itself was never restarted.
    assert list(redis_server.admin().scan_iter(match="sim:*")) == []
    assert redis_server.running


def test_threaded_instances(redis_server: RedisServer) -> None:
    settings = _settings(
        duration=3.0,
        instances=1,
        threads=3,
        rate=15.0,
        lifetime=0.0,
        strategies=tuple(parse_strategies("faaspool")),
        faults=tuple(parse_schedule("client-kill@1.5", 3.0, 2.0)),
    )
    results = simulate(settings)
    f = results.summary("faaspool")
    assert results.settings.max_connections == 4
    assert f.invocations > 0 and f.ok == f.invocations
    assert f.peak_connections <= 4 and f.leaked == 0


def test_network_drops_a_reply_and_forgets_idle_flows(redis_server: RedisServer) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    network = NetworkProcess()
    try:
        port = network.add_link("t", redis_server.host, redis_server.port)
        client = redis.Redis(port=port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0), protocol=2)
        assert client.incr("n") == 1
        network.drop_replies("t", "\r\nINCRBY\r\n", 1)
        with pytest.raises(redis.ConnectionError):
            client.incr("n")
        assert redis_server.admin().get("n") == "2"
        assert client.incr("n") == 3
        network.set_nat_idle("t", 0.0)
        with pytest.raises(redis.TimeoutError):
            client.get("n")
        network.set_nat_idle("t", None)
        assert redis.Redis(port=port, protocol=2).get("n") == b"3"
        stats = network.stats()["t"]
        assert stats["replies_dropped"] == 1 and stats["nat_dropped"] == 1
        assert stats["zombies"] == 1 and stats["connects"] == 3
    finally:
        network.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_interrupt_stops_everything(signum: int) -> None:
    command = [sys.executable, "-m", "faaspool.simulate", "--duration", "60"]
    command += ["--instances", "1", "--strategies", "faaspool", "--faults", "none"]
    command += ["--progress", "plain"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 60)
        assert ready, "the simulation never reported progress"
        assert proc.stderr.readline().startswith(b"[")
        started = _alive(_children(proc.pid))
        assert len(started) >= 3  # the network, a redis-server, an instance
        proc.send_signal(signum)
        assert proc.wait(30) == 130
        assert _alive(started) == set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- options --------------------------------------------------------------------------------


def test_schedule_parsing() -> None:
    default = parse_schedule("default", 40, 2.0)
    assert [f.kind for f in default] == [p.split("@")[0] for p in DEFAULT_SCHEDULE.split(",")]
    assert default[0].at == pytest.approx(4.0)
    [nat] = parse_schedule("nat-drop@12s:lull=3", 40, 2.0)
    assert (nat.at, nat.options["lull"], nat.options["idle"]) == (12.0, 3.0, 2.0)
    assert parse_schedule("none", 40, 2.0) == []
    for bad, message in [
        ("explode@3", "unknown fault"),
        ("restart", "has no time"),
        ("restart@50", "outside the run"),
        ("restart@3:speed=2", "bad option"),
        ("reply-lost@3:count=0", "at least 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_schedule(bad, 40, 2.0)
    with pytest.raises(ValueError, match="unknown strategy"):
        parse_strategies("global,cached")


def test_cli_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    from faaspool.cli import main

    assert main(["simulate", "--faults", "restart@99", "--duration", "5"]) == 2
    assert "outside the run" in capsys.readouterr().err
    assert main(["simulate", "--plot", "latency.svg"]) == 2
    assert "PNG" in capsys.readouterr().err


def test_plot_without_matplotlib_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "matplotlib" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert run(parser.parse_args(["--plot", "out.png", "--progress", "none"])) == 2
    assert "faaspool[plot]" in capsys.readouterr().err
