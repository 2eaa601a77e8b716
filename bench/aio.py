"""faaspool.aio against raw redis.asyncio, in one process against one private redis-server.

Prints a table: warm per-command latency (median, p99) of a module-scope
`redis.asyncio.Redis` and of `faaspool.aio.get_redis()` on the same loop, and the
connections a server receives over 1,000 invocations of an async handler run the way a
synchronous platform (Lambda) must run it: `faaspool.aio.run` on a persistent loop, vs
the naive pattern of `asyncio.run` with a client made per invocation.

Run: ``python bench/aio.py [--commands N] [--invocations N]``. `rows()` returns the
same numbers for bench/core.py to print.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _common as c  # puts the repo root on sys.path
import redis.asyncio

import faaspool.aio
from faaspool.aio import _cache
from faaspool.embedded import RedisServer

Row = tuple[str, str, str, str]


async def _latencies(call: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        start = clock()
        await call()
        out.append((clock() - start) / 1000)
    return out


async def _warm(url: str, commands: int, rounds: int) -> tuple[list[float], list[float]]:
    raw = redis.asyncio.Redis.from_url(url)
    ours = faaspool.aio.get_redis(url)
    await raw.set("bench:k", "v")
    raw_get: Callable[[], Awaitable[Any]] = lambda: raw.get("bench:k")  # noqa: E731
    our_get: Callable[[], Awaitable[Any]] = lambda: ours.get("bench:k")  # noqa: E731
    await _latencies(raw_get, 2000)
    await _latencies(our_get, 2000)
    raw_lat: list[float] = []
    our_lat: list[float] = []
    # Interleaved rounds, alternating who goes first, so drift hits both alike.
    for i in range(rounds):
        first, second = (raw_get, our_get) if i % 2 == 0 else (our_get, raw_get)
        a = await _latencies(first, commands // rounds)
        b = await _latencies(second, commands // rounds)
        raw_part, our_part = (a, b) if i % 2 == 0 else (b, a)
        raw_lat += raw_part
        our_lat += our_part
    await raw.aclose()
    return raw_lat, our_lat


def _p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99)]


def _connections(server: RedisServer, invocations: int) -> tuple[int, int]:
    url = server.url

    async def faaspool_handler() -> Any:
        return await faaspool.aio.get_redis(url).incr("bench:n")

    async def naive_handler() -> Any:
        client = redis.asyncio.Redis.from_url(url)
        try:
            return await client.incr("bench:n")
        finally:
            await client.aclose()

    before = server.total_connections_received()
    for _ in range(invocations):
        faaspool.aio.run(faaspool_handler())
    ours = server.total_connections_received() - before
    before = server.total_connections_received()
    for _ in range(invocations):
        asyncio.run(naive_handler())
    naive = server.total_connections_received() - before
    return ours, naive


def rows(server: RedisServer, commands: int = 20000, invocations: int = 1000) -> list[Row]:
    """The async rows: (measure, redis-py, faaspool.aio, ratio or note)."""
    runner = faaspool.aio.Runner()
    try:
        raw_lat, our_lat = runner.run(_warm(server.url, commands, 10))
    finally:
        runner.close()
    raw_med, our_med = statistics.median(raw_lat), statistics.median(our_lat)
    raw_p99, our_p99 = _p99(raw_lat), _p99(our_lat)
    ours, naive = _connections(server, invocations)
    _cache.clear()
    return [
        (
            "async GET warm, median (us)",
            f"{raw_med:.1f}",
            f"{our_med:.1f}",
            f"{our_med / raw_med:.2f}x",
        ),
        (
            "async GET warm, p99 (us)",
            f"{raw_p99:.1f}",
            f"{our_p99:.1f}",
            f"{our_p99 / raw_p99:.2f}x",
        ),
        (
            f"connections over {invocations} async invocations",
            f"{naive} (asyncio.run)",
            f"{ours} (aio.run)",
            "target: 1",
        ),
    ]


def print_table(table: list[Row]) -> None:
    c.table(
        "faaspool.aio vs redis.asyncio (warm target <= 1.05; connections target 1)",
        ("measure", "redis-py", "faaspool.aio", "ratio"),
        table,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--commands", type=int, default=20000)
    parser.add_argument("--invocations", type=int, default=1000)
    args = parser.parse_args()
    with RedisServer() as server:
        print_table(rows(server, args.commands, args.invocations))


if __name__ == "__main__":
    main()
