"""TLS benchmark: faaspool vs redis-py over rediss://, in one process, one private server.

    python bench/tls.py [--quick]

Rows: cold connect + first command through a 20 ms round-trip proxy (target <= 0.5x),
reconnect cost on loopback (target <= 0.2x: redis-py builds a new SSLContext and verifies
the full chain on every connect; faaspool reuses its context and resumes the session),
and the warm GET (target <= 1.05).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import _common as c  # puts the repo root on sys.path
import redis
from redis.connection import parse_url

import faaspool
from faaspool import _cache
from faaspool.embedded import RedisServer, find_redis_server, tls_supported
from tests.support.certs import make_certs
from tests.support.proxy import FaultProxy


def _stock(url: str, ca: str) -> redis.Redis:
    """redis.Redis(..., ssl=True) with its defaults, as the usual advice has it."""
    kwargs = parse_url(url)
    kwargs.pop("connection_class", None)
    return redis.Redis(**kwargs, ssl=True, ssl_ca_certs=ca)


def cold(server: RedisServer, ca: str, runs: int) -> list[list[Any]]:
    times: dict[str, list[float]] = {"redis-py": [], "faaspool": []}
    with FaultProxy(server.host, server.tls_port) as proxy:
        proxy.set_delay(0.010)
        url = f"rediss://:{server.password}@{proxy.host}:{proxy.port}/1?client_name=bench"
        for _ in range(runs):
            stock = _stock(url, ca)
            start = time.perf_counter()
            stock.set("cold", "1")
            times["redis-py"].append((time.perf_counter() - start) * 1000)
            stock.close()
            _cache.clear()
            ours = faaspool.get_redis(url.replace("?client_name=bench", ""), ssl_ca_certs=ca)
            start = time.perf_counter()
            ours.set("cold", "1")
            times["faaspool"].append((time.perf_counter() - start) * 1000)
    _cache.clear()
    base = c.median(times["redis-py"])
    return [["cold, 20 ms RTT (ms)", k, c.median(v), c.median(v) / base] for k, v in times.items()]


def reconnect(server: RedisServer, ca: str, runs: int) -> list[list[Any]]:
    stock = _stock(server.tls_url, ca)
    ours = faaspool.get_redis(server.tls_url, ssl_ca_certs=ca)
    stock.set("k", "v")
    ours.get("k")
    times: dict[str, list[float]] = {"redis-py": [], "faaspool": []}
    for _ in range(runs):
        for name, client in (("redis-py", stock), ("faaspool", ours)):
            client.connection_pool.disconnect()
            start = time.perf_counter()
            client.get("k")
            times[name].append((time.perf_counter() - start) * 1000)
    stock.close()
    base = c.median(times["redis-py"])
    return [
        ["reconnect, loopback (ms)", k, c.median(v), c.median(v) / base] for k, v in times.items()
    ]


def warm(server: RedisServer, ca: str, quick: bool) -> list[list[Any]]:
    stock = _stock(server.tls_url, ca)
    ours = faaspool.get_redis(server.tls_url, ssl_ca_certs=ca)
    stock.set("k", "v")
    ours.get("k")
    rounds, n = (4, 1000) if quick else (10, 3000)
    contenders = {"redis-py": partial(stock.get, "k"), "faaspool": partial(ours.get, "k")}
    res = c.interleaved(contenders, rounds, n)
    stock.close()
    base = c.median(res["redis-py"])
    return [["warm GET (us)", k, c.median(v), c.median(v) / base] for k, v in res.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not tls_supported(find_redis_server()):
        print(f"skipped: {find_redis_server()} was built without TLS")
        return
    with tempfile.TemporaryDirectory() as tmp:
        certs = make_certs(Path(tmp))
        with RedisServer(tls=certs.server, password="bench-secret") as server:
            runs = 5 if args.quick else 15
            rows = cold(server, certs.ca, runs)
            rows += reconnect(server, certs.ca, runs * 2)
            rows += warm(server, certs.ca, args.quick)
    c.table(
        "TLS (rediss://): ratio to redis-py; targets cold <= 0.5, reconnect <= 0.2, warm <= 1.05",
        ["measure", "client", "median", "ratio"],
        rows,
    )


if __name__ == "__main__":
    main()
