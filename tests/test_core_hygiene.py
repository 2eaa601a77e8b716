"""Clean returns, the leak guard, the bounded pool, and secrets under faults."""

from __future__ import annotations

import logging
import signal
from typing import Any

import pytest
import redis

import faaspool
from faaspool import PoolExhaustedError
from tests.support.api import stats_delta
from tests.support.proxy import FaultProxy
from tests.support.server import RedisServer

SECRET = "do-not-leak-this-7f3a"


def _conn_ids(server: RedisServer) -> set[str]:
    return {c["id"] for c in server.clients_named("faaspool:")}


def test_open_multi_is_not_handed_to_the_next_user(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url, max_connections=1)
    with stats_delta() as delta:
        with api.dedicated(client) as conn:
            conn.execute_command("MULTI")
            conn.execute_command("SET", "a", "1")
        assert client.set("b", "2") is True  # not b"QUEUED"
    assert redis_server.admin().get("a") is None
    assert delta["dirty_discarded"] == 1


def test_watch_is_not_handed_to_the_next_user(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url, max_connections=1)
    with api.dedicated(client) as conn:
        conn.watch("w")
        redis_server.admin().set("w", "changed")
        conn.execute_command("MULTI")
        conn.execute_command("SET", "w", "mine")
        assert conn.execute_command("EXEC") is None  # the WATCH reached the server
        conn.watch("w")
        first = _conn_ids(redis_server)
    redis_server.admin().set("w", "changed again")
    pipe = client.pipeline(transaction=True)
    pipe.set("t", "1")
    assert pipe.execute() == [True]  # an inherited WATCH would abort this EXEC
    assert _conn_ids(redis_server).isdisjoint(first)


def test_subscription_is_not_handed_to_the_next_user(api: Any, redis_server: RedisServer) -> None:
    # RESP2: there SUBSCRIBE's confirmation is an ordinary reply to execute_command.
    client = api.get_redis(redis_server.url, max_connections=1, protocol=2)
    with api.dedicated(client) as conn:
        conn.execute_command("SUBSCRIBE", "news")
    assert client.set("k", "v") is True
    assert client.get("k") == b"v"
    assert redis_server.admin().pubsub_numsub("news") == [("news", 0)]


def test_changed_db_is_not_handed_to_the_next_user(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url, max_connections=1)
    with api.dedicated(client) as conn:
        conn.execute_command("SELECT", 3)
        conn.set("where", "db3")
    assert client.get("where") is None
    admin = redis_server.admin()
    admin.select(3)
    assert admin.get("where") == "db3"


def test_unread_reply_is_not_handed_to_the_next_user(redis_server: RedisServer) -> None:
    client = faaspool.get_redis(redis_server.url, max_connections=1)
    client.set("k", "v")
    pool = client.connection_pool
    conn = pool.get_connection()
    conn.send_command("PING")  # and never read the PONG
    pool.release(conn)
    assert client.get("k") == b"v"


def test_interrupt_mid_command_discards_the_connection(redis_server: RedisServer) -> None:
    """Like GCF's THREADED_TIMEOUT: a BaseException lands while a reply is awaited."""

    class Interrupted(BaseException):
        pass

    def interrupt(signum: int, frame: Any) -> None:
        raise Interrupted

    client = faaspool.get_redis(redis_server.url, max_connections=1, socket_timeout=10)
    client.ping()
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Interrupted):
            client.blpop(["never"], timeout=5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    client.rpush("never", "x")
    assert client.lrange("never", 0, -1) == [b"x"]  # the abandoned BLPOP did not eat it


def test_leaked_dedicated_connection_is_reclaimed_once_with_its_site(
    api: Any, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = api.get_redis(redis_server.url, max_connections=1, pool_timeout=0.5)
    caplog.set_level(logging.WARNING, logger="faaspool")
    kept: list[Any] = []  # a handler that stashes what it acquired keeps it alive

    def leaky_handler() -> None:
        held = api.dedicated(client)
        conn = held.__enter__()  # never exited
        conn.set("k", "v")
        kept.append((held, conn))

    for _ in range(2):
        with stats_delta() as delta, api.invocation(timeout=5):
            leaky_handler()
        assert delta["leaks_reclaimed"] == 1
        # The next invocation works even though the only connection leaked.
        with api.invocation(timeout=5):
            assert client.get("k") == b"v"
    warnings = [r for r in caplog.records if "still checked out" in r.getMessage()]
    assert len(warnings) == 1
    assert "test_core_hygiene.py" in warnings[0].getMessage()
    assert "leaky_handler" in warnings[0].getMessage()


def test_leaked_pubsub_is_closed_at_invocation_end(redis_server: RedisServer) -> None:
    client = faaspool.get_redis(redis_server.url, max_connections=1, pool_timeout=0.5)
    with faaspool.invocation(timeout=5):
        pubsub = client.pubsub()
        pubsub.subscribe("alerts")
    assert redis_server.admin().pubsub_numsub("alerts") == [("alerts", 0)]
    assert client.set("k", "v") is True
    # The abandoned PubSub (still alive here) must not re-subscribe on the reconnect.
    assert redis_server.admin().pubsub_numsub("alerts") == [("alerts", 0)]
    assert client.get("k") == b"v"
    del pubsub


def test_exhausted_pool_wait_is_bounded_by_the_deadline(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url, max_connections=1, pool_timeout=30)
    with api.dedicated(client) as held:
        held.ping()
        with api.invocation(timeout=0.3), pytest.raises(PoolExhaustedError) as info:
            client.get("k")
    text = str(info.value)
    assert "max_connections=1" in text and "deadline" in text
    assert isinstance(info.value, redis.ConnectionError)


def test_exhausted_pool_wait_is_bounded_by_pool_timeout(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url, max_connections=1, pool_timeout=0.2)
    with api.dedicated(client), pytest.raises(PoolExhaustedError, match="pool_timeout"):
        client.get("k")


def test_no_secret_anywhere_under_faults(
    api: Any,
    redis_server_factory: Any,
    fault_proxy_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = redis_server_factory(password=SECRET)
    proxy: FaultProxy = fault_proxy_factory(server)
    url = proxy.url_for(server.url)
    texts: list[str] = []

    def record(call: Any) -> None:
        try:
            call()
        except BaseException as exc:
            texts.extend([str(exc), repr(exc), str(exc.__cause__), str(exc.__context__)])

    client = api.get_redis(url, socket_timeout=0.3)
    texts += [repr(client), repr(api.pool_of(client)), str(api.pool_of(client).faaspool_config)]
    record(client.ping)
    proxy.drop_next_reply("reset")
    record(lambda: client.incr("n"))
    proxy.reset_all()
    record(lambda: client.get("n"))
    proxy.blackhole_all()
    with api.invocation(timeout=0.3):
        record(lambda: client.get("n"))
    proxy.heal()
    wrong = api.get_redis(url.replace(SECRET, SECRET + "x"))
    record(wrong.ping)
    record(lambda: api.get_redis(url.replace("/0", "/x")))
    texts += [r.getMessage() for r in caplog.records]
    assert texts
    for text in texts:
        assert SECRET not in text


def test_pipelined_select_is_not_handed_to_the_next_user(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url, max_connections=1)
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("SELECT", 3)
    pipe.set("p", "db3")
    pipe.execute()
    assert client.get("p") is None
    admin = redis_server.admin()
    admin.select(3)
    assert admin.get("p") == "db3"


def test_abandoned_pipeline_watch_keeps_the_connection(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url, max_connections=1)
    client.ping()
    with stats_delta() as delta:
        pipe = client.pipeline(transaction=True)
        pipe.watch("stock")
        assert pipe.get("stock") is None  # e.g. out of stock: give up without EXEC
        pipe.reset()
        assert client.set("after", "1") is True
    assert delta["connects"] == 0 and delta["dirty_discarded"] == 0


def test_watch_conflict_keeps_the_connection(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url, max_connections=1)
    client.ping()
    with stats_delta() as delta:
        pipe = client.pipeline(transaction=True)
        pipe.watch("w")
        redis_server.admin().set("w", "changed")
        pipe.multi()
        pipe.set("w", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
        assert client.get("w") == b"changed"
    assert delta["connects"] == 0


def test_an_invocation_budget_does_not_outlive_the_invocation(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy = fault_proxy_factory(redis_server)
    client = api.get_redis(proxy.url_for(redis_server.url))
    with api.invocation(timeout=0.5):
        client.ping()
    proxy.reset_all()
    proxy.set_delay(0.3)  # slower than what was left of that invocation
    assert client.set("k", "v") is True
