"""Benchmark of the sync core against redis-py, in one process on one private server.

    make bench        (or: python bench/core.py [--quick])

Prints: the warm per-command latency (faaspool / module-scope redis.Redis, target <= 1.05),
cold connect-to-first-reply through a 20 ms round-trip proxy (target <= 0.5x redis-py),
how each production fault is survived (time to the next good reply, and what the caller
saw), and what `import faaspool` adds over `import redis` (target <= 10 ms).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import _common as c
import redis

import faaspool
from faaspool import _cache
from faaspool.embedded import RedisServer
from tests.support.proxy import FaultProxy

PASSWORD = "bench-secret"


def warm(server: RedisServer, quick: bool) -> None:
    raw = redis.Redis(host=server.host, port=server.port, password=PASSWORD)
    ours = faaspool.get_redis(server.url)
    raw.set("k", "v")
    ours.get("k")
    rounds, n = (4, 1000) if quick else (10, 3000)
    contenders = {"redis-py": partial(raw.get, "k"), "faaspool": partial(ours.get, "k")}
    res = c.interleaved(contenders, rounds, n)
    base = c.median(res["redis-py"])
    rows = [
        [name, c.median(v), c.p(v, 0.99), c.median(v) / base]
        for name, v in res.items()
    ]
    c.table(
        "Warm GET, module-scope client (us; ratio of medians to redis-py, target <= 1.05)",
        ["client", "median", "p99", "ratio"],
        rows,
    )
    raw.close()


def cold(server: RedisServer, quick: bool) -> None:
    proxy = FaultProxy(server.host, server.port)
    proxy.set_delay(0.010)  # each way: a 20 ms round trip
    url = proxy.url_for(server.url, db=1)
    times: dict[str, list[float]] = {"redis-py": [], "faaspool": []}
    try:
        for _ in range(3 if quick else 7):
            stock = _stock(url + "?client_name=bench-stock")
            start = time.perf_counter()
            stock.set("cold", "1")
            times["redis-py"].append((time.perf_counter() - start) * 1000)
            stock.close()
            _cache.clear()
            ours = faaspool.get_redis(url)
            start = time.perf_counter()
            ours.set("cold", "1")
            times["faaspool"].append((time.perf_counter() - start) * 1000)
            _cache.clear()
    finally:
        proxy.close()
    base = c.median(times["redis-py"])
    c.table(
        "Cold connect + first command through a 20 ms RTT proxy, password + db + name "
        "(ms; target ratio <= 0.5)",
        ["client", "median", "max", "ratio"],
        [[k, c.median(v), max(v), c.median(v) / base] for k, v in times.items()],
    )


# -- faults -------------------------------------------------------------------------------


class Outcome:
    def __init__(self, ms: float, seen: str) -> None:
        self.ms, self.seen = ms, seen


def _timed(call: Callable[[], Any], limit: float) -> Outcome:
    box: dict[str, Any] = {}

    def run() -> None:
        start = time.perf_counter()
        try:
            box["value"] = call()
            box["seen"] = "ok"
        except Exception as exc:
            box["seen"] = type(exc).__name__
        box["ms"] = (time.perf_counter() - start) * 1000

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        return Outcome(limit * 1000, f"still hung after {limit:.0f} s")
    return Outcome(box["ms"], box["seen"])


def _stock(url: str) -> redis.Redis:
    """redis-py as the usual advice has it: redis.Redis(...) at module scope, defaults on
    (from_url would build a pool without the default Retry)."""
    from redis.connection import parse_url

    return redis.Redis(**parse_url(url))


def _clients(url: str, **ours: Any) -> dict[str, Any]:
    _cache.clear()
    return {"redis-py": _stock(url), "faaspool": faaspool.get_redis(url, **ours)}


def fault_rows(quick: bool) -> list[list[Any]]:
    rows: list[list[Any]] = []
    hang_limit = 5.0 if quick else 90.0

    for who in ("redis-py", "faaspool"):
        with RedisServer() as server:
            client = _clients(server.url)[who]
            client.set("k", "v")
            server.admin().client_kill_filter(_type="normal", skipme=True)
            time.sleep(0.05)
            out = _timed(partial(client.get, "k"), hang_limit)
            rows.append(["CLIENT KILL", who, out.ms, out.seen])

        with RedisServer() as server:
            client = _clients(server.url)[who]
            client.set("k", "v")
            server.restart()
            out = _timed(partial(client.set, "k", "v"), hang_limit)
            rows.append(["server restart", who, out.ms, out.seen])

        with RedisServer(timeout=1) as server:
            client = _clients(server.url)[who]
            client.set("k", "v")
            deadline = time.monotonic() + 15
            while server.connected_clients() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.05)
            out = _timed(partial(client.get, "k"), hang_limit)
            rows.append(["server idle timeout", who, out.ms, out.seen])

        with RedisServer() as server, FaultProxy(server.host, server.port) as proxy:
            client = _clients(proxy.url_for(server.url), idle_probe_after=0)[who]
            client.set("k", "v")
            proxy.blackhole_existing()
            out = _timed(partial(client.get, "k"), hang_limit)
            rows.append(["silently dropped flow", who, out.ms, out.seen])

        with RedisServer() as server, FaultProxy(server.host, server.port) as proxy:
            client = _clients(proxy.url_for(server.url))[who]
            client.ping()
            proxy.drop_next_reply("reset")
            out = _timed(partial(client.execute_command, "INCR", "n"), hang_limit)
            applied = server.admin().get("n")
            rows.append(["INCR reply lost", who, out.ms, f"{out.seen}; applied {applied}x"])

        with RedisServer() as old, RedisServer() as new, FaultProxy(old.host, old.port) as proxy:
            client = _clients(proxy.url_for(old.url))[who]
            client.set("k", "v")
            proxy.retarget(new.host, new.port)
            old.demote_to_replica_of(new)
            out = _timed(partial(client.set, "k2", "v"), hang_limit)
            rows.append(["failover (REPLICAOF)", who, out.ms, out.seen])

        with RedisServer() as server, FaultProxy(server.host, server.port) as proxy:
            client = _clients(proxy.url_for(server.url))[who]
            client.ping()
            proxy.blackhole_all()

            def deadline_call(client: Any = client, who: str = who) -> Any:
                if who == "faaspool":
                    with faaspool.invocation(timeout=0.3):
                        return client.get("k")
                return client.get("k")

            out = _timed(deadline_call, hang_limit)
            rows.append(["blackholed, 300 ms left", who, out.ms, out.seen])
    _cache.clear()
    rows.sort(key=lambda r: (r[0], r[1] != "redis-py"))
    return rows


def faults(quick: bool) -> None:
    c.table(
        "Next command after a fault (ms to the reply or error; what the caller saw)",
        ["fault", "client", "ms", "caller saw"],
        fault_rows(quick),
    )


def import_cost(quick: bool) -> None:
    def importtime(stmt: str) -> dict[str, tuple[int, int]]:
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", stmt],
            check=True, capture_output=True, text=True,
        ).stderr
        out: dict[str, tuple[int, int]] = {}
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative, name = line[len("import time:"):].split("|")
            out[name.strip()] = (int(self_us), int(cumulative))
        return out

    runs = 5 if quick else 15
    redis_ms: list[float] = []
    added_ms: list[float] = []
    for _ in range(runs):
        redis_ms.append(importtime("import redis")["redis"][1] / 1000)
        # What faaspool's own modules cost, beyond redis (an editable install's import
        # hook is left out: a deployed package has none).
        times = importtime("import faaspool")
        added_ms.append(sum(v[0] for k, v in times.items() if k.startswith("faaspool")) / 1000)
    c.table(
        "Import cost (ms, -X importtime, median of fresh processes; target: faaspool adds <= 10)",
        ["what", "median"],
        [["import redis", c.median(redis_ms)], ["faaspool's own modules", c.median(added_ms)]],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, 5 s hang cap")
    parser.add_argument(
        "--only", choices=["warm", "cold", "aio", "faults", "import"], default=None
    )
    args = parser.parse_args()
    with RedisServer(password=PASSWORD) as server:
        if args.only in (None, "warm"):
            warm(server, args.quick)
        if args.only in (None, "cold"):
            cold(server, args.quick)
        if args.only in (None, "aio"):
            import aio as aio_bench

            commands, invocations = (4000, 200) if args.quick else (20000, 1000)
            aio_bench.print_table(aio_bench.rows(server, commands, invocations))
    if args.only in (None, "faults"):
        faults(args.quick)
    if args.only in (None, "import"):
        import_cost(args.quick)


if __name__ == "__main__":
    main()
