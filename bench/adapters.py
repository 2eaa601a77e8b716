"""Per-invocation overhead of ``@with_redis`` per platform, in one process on one private
redis-server.

    python bench/adapters.py [--quick]

Each row calls a one-GET handler the way its platform does (Lambda: ``handler(event,
context)`` with awslambdaric's LambdaContext; GCF: ``handler(request)``; Azure: keyword
arguments by binding name), decorated with the platform's ``with_redis``, against the same
handler written by hand over a module-scope ``faaspool.get_redis()`` client. Target: ratio
of medians <= 1.05 for the sync rows. The async rows compare against a hand-written handler
over ``faaspool.aio.get_redis()`` on the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

import _common as c

import faaspool
import faaspool.aio
from faaspool.embedded import RedisServer

KEY = "bench:adapters"


def _lambda_context() -> Any:
    try:
        from awslambdaric.lambda_context import LambdaContext
    except ImportError:
        return None
    deadline = int(time.time() * 1000) + 15 * 60 * 1000
    return LambdaContext("req-bench", None, None, deadline, "arn:aws:lambda:::function:bench")


def sync_rows(url: str, rounds: int, n: int) -> list[list[Any]]:
    from faaspool.adapters import aws_lambda, azure, gcf

    module_client = faaspool.get_redis(url)
    module_client.set(KEY, "v")
    rows: list[list[Any]] = []

    # AWS Lambda
    context = _lambda_context()

    def lambda_plain(event: Any, context: Any) -> Any:
        return module_client.get(KEY)

    @aws_lambda.with_redis(url=url)
    def lambda_handler(event: Any, context: Any, redis: Any) -> Any:
        return redis.get(KEY)

    event: dict[str, Any] = {}
    rows.append(
        _compare(
            "aws_lambda (sync)",
            lambda: lambda_plain(event, context),
            lambda: lambda_handler(event, context),
            rounds,
            n,
        )
    )

    # Google Cloud Functions
    request = object()

    def gcf_plain(request: Any) -> Any:
        return module_client.get(KEY)

    @gcf.with_redis(url=url)
    def gcf_handler(request: Any, redis: Any) -> Any:
        return redis.get(KEY)

    rows.append(
        _compare("gcf (sync)", lambda: gcf_plain(request), lambda: gcf_handler(request), rounds, n)
    )

    # Azure Functions
    def azure_plain(req: Any) -> Any:
        return module_client.get(KEY)

    @azure.with_redis(url=url)
    def azure_handler(req: Any, redis: Any) -> Any:
        return redis.get(KEY)

    rows.append(
        _compare(
            "azure (sync)",
            lambda: azure_plain(req=request),
            lambda: azure_handler(req=request),
            rounds,
            n,
        )
    )
    return rows


def async_rows(url: str, rounds: int, n: int) -> list[list[Any]]:
    from faaspool.adapters import aws_lambda, gcf

    rows: list[list[Any]] = []
    context = _lambda_context()
    event: dict[str, Any] = {}

    # Lambda: both handlers are run by faaspool.aio.run on the persistent loop.
    async def lambda_plain(event: Any, context: Any) -> Any:
        return await faaspool.aio.get_redis(url).get(KEY)

    @aws_lambda.with_redis(url=url)
    async def lambda_handler(event: Any, context: Any, redis: Any) -> Any:
        return await redis.get(KEY)

    rows.append(
        _compare(
            "aws_lambda (async)",
            lambda: faaspool.aio.run(lambda_plain(event, context)),
            lambda: lambda_handler(event, context),
            rounds,
            n,
        )
    )

    # GCF aio (Azure async is the same wrapper): awaited inside one running loop.
    request = object()

    async def gcf_plain(request: Any) -> Any:
        return await faaspool.aio.get_redis(url).get(KEY)

    @gcf.with_redis(url=url)
    async def gcf_handler(request: Any, redis: Any) -> Any:
        return await redis.get(KEY)

    async def batch(fn: Callable[[Any], Any], count: int) -> list[float]:
        out = []
        clock = time.perf_counter_ns
        for _ in range(count):
            start = clock()
            await fn(request)
            out.append((clock() - start) / 1000)
        return out

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(batch(gcf_plain, 100))
        loop.run_until_complete(batch(gcf_handler, 100))
        plain: list[float] = []
        ours: list[float] = []
        for _ in range(rounds):
            plain += loop.run_until_complete(batch(gcf_plain, n))
            ours += loop.run_until_complete(batch(gcf_handler, n))
        rows.append(_row("gcf / azure (async)", plain, ours))
    finally:
        from faaspool.aio import _cache as aio_cache

        aio_cache.forget_loop(loop)
        loop.close()
    return rows


def breakdown(url: str, rounds: int, n: int) -> list[list[Any]]:
    """What one decorated call costs beyond the handler, piece by piece (no command sent)."""
    from faaspool.adapters import aws_lambda, gcf

    from faaspool import _cache, _scope

    context = _lambda_context()
    event: dict[str, Any] = {}
    config = _cache.resolve(url, {})
    _cache.client_for(config)
    scope = _scope.Invocation(None)

    def nothing(event: Any, context: Any) -> None:
        return None

    @aws_lambda.with_redis(url=url)
    def lambda_nothing(event: Any, context: Any, redis: Any) -> None:
        return None

    @gcf.with_redis(url=url)
    def gcf_nothing(request: Any, redis: Any) -> None:
        return None

    def enter_exit() -> None:
        with _scope.Invocation(None):
            pass

    parts: dict[str, Callable[[], Any]] = {
        "undecorated call": lambda: nothing(event, context),
        "aws_lambda wrapper, whole": lambda: lambda_nothing(event, context),
        "gcf/azure wrapper, whole": lambda: gcf_nothing(event),
        "  invocation scope enter+exit": enter_exit,
        "    of which leak-guard reclaim": scope.reclaim,
        "  cached client lookup (client_for)": lambda: _cache.client_for(config),
    }
    if context is not None:
        parts["  context.get_remaining_time_in_millis()"] = context.get_remaining_time_in_millis
    res = c.interleaved(parts, rounds, n)
    return [[name, min(values), c.median(values)] for name, values in res.items()]


def _compare(
    name: str, plain: Callable[[], Any], ours: Callable[[], Any], rounds: int, n: int
) -> list[Any]:
    for call in (plain, ours):
        c.sample(call, 200)
    res = c.interleaved({"plain": plain, "ours": ours}, rounds, n)
    return _row(name, res["plain"], res["ours"])


def _row(name: str, plain: list[float], ours: list[float]) -> list[Any]:
    base, mine = c.median(plain), c.median(ours)
    return [name, base, mine, mine - base, c.p(ours, 0.99), mine / base]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    # Short blocks, many rounds: the machine's drift lands on both sides alike.
    rounds, n = (30, 200) if args.quick else (180, 200)
    header = ["platform", "hand-written", "@with_redis", "overhead", "p99", "ratio"]
    with RedisServer() as server:
        rows = sync_rows(server.url, rounds, n)
        c.table(
            "Per-invocation cost of a one-GET handler: @with_redis vs hand-written over a "
            "module-scope client (us, medians; target ratio <= 1.05)",
            header,
            rows,
        )
        c.table(
            "Async handlers (us, medians; hand-written over faaspool.aio.get_redis())",
            header,
            async_rows(server.url, rounds, n),
        )
        c.table(
            "Where the overhead goes: one call with no Redis command (us)",
            ["part", "min", "median"],
            breakdown(server.url, rounds, n),
        )


if __name__ == "__main__":
    main()
