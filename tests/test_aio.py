"""What only asyncio has: one client per event loop, loops that come and go, a loop that
persists across invocations, cancellation, and redis-py 8.1's dead-socket checkout
(redis/redis-py#4252). The fault scenarios shared with the sync core run through
tests/support/aio_api.py."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio

import faaspool
import faaspool.aio
from faaspool import PoolExhaustedError
from faaspool.aio import _cache, _runner
from tests.support.api import stats_delta, wait_until
from tests.support.server import RedisServer

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _fresh_aio() -> Iterator[None]:
    _cache.clear()
    yield
    _cache.clear()
    _runner.default().close()


def _open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


async def _until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Let the loop run until ``predicate`` holds; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.005)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def redis_server_publish(server: RedisServer, channel: str, data: str) -> None:
    server.admin().publish(channel, data)


def _kill_faaspool_clients(server: RedisServer) -> None:
    admin = server.admin()
    for entry in server.clients_named("faaspool:"):
        admin.client_kill_filter(_id=entry["id"])


# -- one client per loop ---------------------------------------------------------------


def test_one_client_per_configuration_and_loop(redis_server: RedisServer) -> None:
    async def pair() -> tuple[Any, Any]:
        return faaspool.aio.get_redis(redis_server.url), faaspool.aio.get_redis(redis_server.url)

    first_a, first_b = asyncio.run(pair())
    second_a, _ = asyncio.run(pair())
    assert first_a is first_b
    assert second_a is not first_a
    assert isinstance(first_a, redis.asyncio.Redis)


def test_module_scope_client_belongs_to_the_persistent_loop(redis_server: RedisServer) -> None:
    client = faaspool.aio.get_redis(redis_server.url)  # no loop runs here

    async def handler() -> Any:
        assert faaspool.aio.get_redis(redis_server.url) is client
        return await client.incr("n")

    assert [faaspool.aio.run(handler()) for _ in range(3)] == [1, 2, 3]


def test_a_client_on_a_foreign_loop_fails_before_sending(redis_server: RedisServer) -> None:
    """Never asyncio's "attached to a different loop" after the write went out."""
    client = faaspool.aio.get_redis(redis_server.url)
    faaspool.aio.run(client.ping())
    redis_server.admin().config_resetstat()
    with pytest.raises(faaspool.aio.WrongLoopError, match=r"faaspool\.aio\.run\(\)"):
        asyncio.run(_awaited(client.incr("n")))
    assert "cmdstat_incr" not in redis_server.admin().info("commandstats")
    assert faaspool.aio.run(client.incr("n")) == 1  # still fine on its own loop


def test_stock_client_breaks_across_asyncio_run_where_faaspool_does_not(
    redis_server: RedisServer,
) -> None:
    stock = redis.asyncio.Redis(host=redis_server.host, port=redis_server.port)
    asyncio.run(_awaited(stock.ping()))
    with pytest.raises(RuntimeError, match=r"different loop|Event loop is closed"):
        asyncio.run(_awaited(stock.ping()))

    async def handler() -> Any:
        return await faaspool.aio.get_redis(redis_server.url).incr("n")

    assert [asyncio.run(handler()) for _ in range(3)] == [1, 2, 3]


def test_a_thousand_asyncio_run_loops_leave_nothing_behind(redis_server: RedisServer) -> None:
    async def handler() -> int:
        client = faaspool.aio.get_redis(redis_server.url)
        value: int = await client.incr("n")
        return value

    asyncio.run(handler())  # warm: imports, lazily built objects
    fds = _open_fds()
    sizes = set()
    for _ in range(1000):
        asyncio.run(handler())
        sizes.add(_cache.size())
    assert sizes == {0}  # each loop's entry went with its loop
    assert _open_fds() <= fds
    assert redis_server.admin().get("n") == "1001"
    wait_until(lambda: not redis_server.clients_named("faaspool:"), 5, "server-side close")


def test_entries_of_loops_closed_without_shutdown_are_dropped(redis_server: RedisServer) -> None:
    async def handler() -> Any:
        return await faaspool.aio.get_redis(redis_server.url).ping()

    fds = _open_fds()
    for _ in range(50):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(handler())
        loop.close()  # no shutdown_asyncgens(): the cache must notice on its own
        assert _cache.size() <= 1
    _cache.close_all()
    assert _cache.size() == 0
    assert _open_fds() <= fds


# -- the persistent loop ---------------------------------------------------------------


def test_persistent_runner_reuses_one_connection_for_a_thousand_invocations(
    redis_server: RedisServer,
) -> None:
    async def handler(event: int) -> int:
        client = faaspool.aio.get_redis(redis_server.url)
        value: int = await client.incrby("total", event)
        return value

    before = redis_server.total_connections_received()
    with stats_delta() as delta:
        for _ in range(1000):
            with faaspool.invocation(timeout=5):
                faaspool.aio.run(handler(1))
    assert redis_server.total_connections_received() - before == 1
    assert redis_server.admin().get("total") == "1000"
    assert delta["connects"] == 1 and delta["reuses"] == 999


def test_runner_close_closes_its_connections(redis_server: RedisServer) -> None:
    runner = faaspool.aio.Runner()

    async def handler() -> Any:
        return await faaspool.aio.get_redis(redis_server.url).ping()

    runner.run(handler())
    assert len(redis_server.clients_named("faaspool:")) == 1
    runner.close()
    assert _cache.size() == 0
    wait_until(lambda: not redis_server.clients_named("faaspool:"), 5, "server-side close")


def test_run_refuses_a_running_loop() -> None:
    async def nested() -> None:
        faaspool.aio.run(asyncio.sleep(0))

    with pytest.raises(RuntimeError, match="await the coroutine"):
        asyncio.run(nested())


def test_stale_socket_on_a_frozen_loop_is_found_before_use(redis_server: RedisServer) -> None:
    """Between invocations no loop runs: the FIN waits in the kernel, the probe finds it."""
    client = faaspool.aio.get_redis(redis_server.url)
    faaspool.aio.run(client.set("k", "1"))
    _kill_faaspool_clients(redis_server)
    conn = client.connection_pool._available_connections[0]
    assert not conn._reader.at_eof()  # the loop has not seen the close
    with stats_delta() as delta:
        assert faaspool.aio.run(client.incr("k")) == 2
    assert delta["stale_found"] == 1 and delta["retries"] == 0
    assert delta["ambiguous_writes"] == 0


# -- redis/redis-py#4252 ---------------------------------------------------------------


def test_stock_pool_hands_out_a_closed_socket_and_faaspool_does_not(
    redis_server: RedisServer,
) -> None:
    async def checkout_after_kill(pool: Any) -> Any:
        conn = await pool.get_connection()
        await conn.send_command("PING")
        await conn.read_response()
        conn.in_flight = False  # (faaspool) the reply was read by hand, not by the client
        await pool.release(conn)
        redis_server.admin().client_kill_filter(_type="normal", skipme=True)
        await _until(lambda: conn._reader is None or conn._reader.at_eof(), what="the EOF")
        again = await pool.get_connection()
        dead = again is conn and again._reader is not None and again._reader.at_eof()
        await pool.release(again)
        return dead

    async def stock() -> Any:
        pool = redis.asyncio.ConnectionPool(host=redis_server.host, port=redis_server.port)
        try:
            return await checkout_after_kill(pool)
        finally:
            await pool.disconnect()

    async def ours() -> Any:
        return await checkout_after_kill(faaspool.aio.get_redis(redis_server.url).connection_pool)

    assert asyncio.run(stock()) is True  # redis-py 8.1 hands out the dead socket
    with stats_delta() as delta:
        assert asyncio.run(ours()) is False
    assert delta["stale_found"] == 1


# -- the leak guard, dedicated connections, cancellation ---------------------------------


def test_async_leak_guard_reclaims_a_dedicated_connection(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="faaspool")
    kept: list[Any] = []

    async def leaky_async_handler() -> None:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1, pool_timeout=0.5)
        held = faaspool.aio.dedicated(client)
        conn = await held.__aenter__()  # never exited
        await conn.set("k", "v")
        kept.append(held)

    async def invocation() -> Any:
        async with faaspool.aio.invocation(timeout=5):
            await leaky_async_handler()
        async with faaspool.aio.invocation(timeout=5):
            return await faaspool.aio.get_redis(
                redis_server.url, max_connections=1, pool_timeout=0.5
            ).get("k")

    with stats_delta() as delta:
        assert faaspool.aio.run(invocation()) == b"v"
    assert delta["leaks_reclaimed"] == 1
    (warning,) = [r for r in caplog.records if "still checked out" in r.getMessage()]
    assert "test_aio.py" in warning.getMessage()
    assert "leaky_async_handler" in warning.getMessage()


def test_async_dedicated_connection_for_blocking_commands(redis_server: RedisServer) -> None:
    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=2)

        async def consumer() -> Any:
            async with faaspool.aio.dedicated(client) as conn:
                return await conn.blpop(["jobs"], timeout=5)

        task = asyncio.create_task(consumer())
        await _until(
            lambda: any(c.get("cmd") == "blpop" for c in redis_server.client_list()),
            what="BLPOP to block",
        )
        await client.rpush("jobs", "a")
        return await task

    assert list(faaspool.aio.run(main())) == [b"jobs", b"a"]


def test_shared_dedicated_class_works_with_async_with(redis_server: RedisServer) -> None:
    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url)
        async with faaspool.dedicated(client) as conn:  # type: ignore[arg-type]
            pipe = conn.pipeline(transaction=True)
            await pipe.watch("w")
            pipe.multi()
            pipe.set("w", "1")
            return await pipe.execute()

    assert faaspool.aio.run(main()) == [True]


def test_cancelled_command_discards_its_connection(redis_server: RedisServer) -> None:
    """The async twin of an interrupt mid-command: the reply must never reach a new user."""

    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1)
        await client.ping()
        task = asyncio.ensure_future(client.blpop(["never"], timeout=5))
        await _until(
            lambda: any(c.get("cmd") == "blpop" for c in redis_server.client_list()),
            what="BLPOP to block",
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.rpush("never", "x")
        return await client.lrange("never", 0, -1)

    assert faaspool.aio.run(main()) == [b"x"]  # the abandoned BLPOP did not eat it


def test_cancelled_dedicated_block_closes_the_connection(redis_server: RedisServer) -> None:
    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1)

        async def blocked() -> None:
            async with faaspool.aio.dedicated(client) as conn:
                await conn.blpop(["never"], timeout=5)

        task = asyncio.create_task(blocked())
        await _until(
            lambda: any(c.get("cmd") == "blpop" for c in redis_server.client_list()),
            what="BLPOP to block",
        )
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.rpush("never", "x")
        return await client.llen("never")

    assert faaspool.aio.run(main()) == 1


# -- the bounded pool --------------------------------------------------------------------


def test_many_tasks_share_a_small_pool(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=3)
        await asyncio.gather(*(client.incr("hits") for _ in range(200)))

    with stats_delta() as delta:
        faaspool.aio.run(main())
    assert redis_server.admin().get("hits") == "200"
    assert len(redis_server.clients_named("faaspool:")) <= 3
    assert delta["connects"] <= 3 and delta["pool_waits"] >= 1


def test_async_pool_exhaustion_is_bounded_by_the_deadline(redis_server: RedisServer) -> None:
    async def main() -> BaseException:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1, pool_timeout=30)
        async with faaspool.aio.dedicated(client) as held:
            await held.ping()
            async with faaspool.aio.invocation(timeout=0.3):
                with pytest.raises(PoolExhaustedError) as info:
                    await client.get("k")
        assert await client.get("k") is None  # the slot came back
        return info.value

    error = faaspool.aio.run(main())
    assert "max_connections=1" in str(error) and "deadline" in str(error)
    assert isinstance(error, redis.ConnectionError)


def test_cancelled_waiter_does_not_lose_a_connection(redis_server: RedisServer) -> None:
    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1, pool_timeout=5)
        pool = client.connection_pool
        async with faaspool.aio.dedicated(client):
            waiter = asyncio.ensure_future(client.get("k"))
            await _until(lambda: bool(pool._waiters), what="the task to wait for a slot")
        # The slot was handed to the waiter in this very turn; cancel it before it runs.
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert len(pool._available_connections) == 1
        return await asyncio.wait_for(client.set("k", "v"), 5)

    assert faaspool.aio.run(main()) is True


# -- what stays the same ----------------------------------------------------------------


def test_import_faaspool_does_not_load_aio() -> None:
    import subprocess
    import sys

    code = "import faaspool, sys; print('faaspool.aio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_pipeline_select_is_not_handed_to_the_next_user(redis_server: RedisServer) -> None:
    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1)
        pipe = client.pipeline(transaction=False)
        pipe.execute_command("SELECT", 3)
        pipe.set("where", "db3")
        assert await pipe.execute() == [True, True]
        return await client.get("where")

    with stats_delta() as delta:
        assert faaspool.aio.run(main()) is None
    assert delta["dirty_discarded"] == 1


def test_watch_conflict_leaves_a_clean_reusable_connection(redis_server: RedisServer) -> None:
    async def main() -> None:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1)
        async with client.pipeline() as pipe:
            await pipe.watch("w")
            redis_server.admin().set("w", "changed")
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set("w", "mine")
            with pytest.raises(redis.WatchError):
                await pipe.execute()
        assert await client.set("other", "1") is True

    with stats_delta() as delta:
        faaspool.aio.run(main())
    assert delta["connects"] == 1 and delta["dirty_discarded"] == 0
    assert redis_server.admin().get("w") == "changed"


def test_pubsub_works_and_a_leaked_one_is_closed_at_invocation_end(
    redis_server: RedisServer,
) -> None:
    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url, max_connections=1, pool_timeout=0.5)
        async with faaspool.aio.invocation(timeout=5):
            pubsub = client.pubsub()
            await pubsub.subscribe("alerts")
            await redis_server_publish(redis_server, "alerts", "fire")
            first = await pubsub.get_message(timeout=5)  # the subscribe confirmation
            message = await pubsub.get_message(timeout=5)
            assert first is not None and first["type"] == "subscribe"
            assert message is not None and message["data"] == b"fire"
        return await client.set("k", "v")  # the only connection came back

    assert faaspool.aio.run(main()) is True
    wait_until(
        lambda: redis_server.admin().pubsub_numsub("alerts") == [("alerts", 0)],
        5,
        "the subscription to end",
    )


def test_async_with_keeps_the_cached_client_usable(redis_server: RedisServer) -> None:
    async def main() -> Any:
        async with faaspool.aio.get_redis(redis_server.url) as client:
            await client.set("k", "v")
        return await faaspool.aio.get_redis(redis_server.url).get("k")

    assert faaspool.aio.run(main()) == b"v"
    assert len(redis_server.clients_named("faaspool:")) == 1


def test_single_connection_client_is_checked_before_each_use(redis_server: RedisServer) -> None:
    async def main() -> Any:
        single: Any = faaspool.aio.get_redis(redis_server.url).client()
        await single.set("k", "1")
        _kill_faaspool_clients(redis_server)
        await _until(lambda: single.connection._reader.at_eof(), what="the EOF")
        with stats_delta() as delta:
            value = await single.incr("k")
        await single.aclose()
        return value, delta

    value, delta = faaspool.aio.run(main())
    assert value == 2
    assert delta["stale_found"] == 1 and delta["ambiguous_writes"] == 0


def test_threads_with_their_own_loops_get_their_own_clients(redis_server: RedisServer) -> None:
    import threading

    clients: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        async def handler() -> None:
            client = faaspool.aio.get_redis(redis_server.url)
            clients.append(client)
            for _ in range(100):
                await client.incr("hits")

        try:
            for _ in range(3):
                asyncio.run(handler())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len({id(c) for c in clients}) == 24
    assert redis_server.admin().get("hits") == "2400"
    assert _cache.size() == 0


def test_dedicated_connection_closed_by_the_server_is_found_before_a_write(
    redis_server: RedisServer,
) -> None:
    async def main() -> Any:
        client = faaspool.aio.get_redis(redis_server.url)
        async with faaspool.aio.dedicated(client) as conn:
            await conn.set("k", "1")
            _kill_faaspool_clients(redis_server)
            await _until(lambda: conn.connection._reader.at_eof(), what="the EOF")
            with stats_delta() as delta:
                value = await conn.incr("k")
        return value, delta

    value, delta = faaspool.aio.run(main())
    assert value == 2
    assert delta["stale_found"] == 1 and delta["ambiguous_writes"] == 0
