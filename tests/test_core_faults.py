"""Fault scenarios against real servers and a real TCP fault proxy, run for every API
(sync core and faaspool.aio)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from faaspool import AmbiguousWriteError, DeadlineExceeded
from tests.support.api import stats_delta, wait_until
from tests.support.proxy import FaultProxy
from tests.support.server import RedisServer


def test_healthy_reuse_costs_no_extra_round_trip(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url)
    client.set("k", "v")
    admin = redis_server.admin()
    admin.config_resetstat()
    with stats_delta() as delta:
        for _ in range(50):
            assert client.get("k") == b"v"
    stats = admin.info("commandstats")
    assert stats["cmdstat_get"]["calls"] == 50
    assert "cmdstat_ping" not in stats
    assert delta["reuses"] == 50 and delta["connects"] == 0 and delta["probes"] == 0


def test_client_kill_is_found_before_use(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url)
    client.set("k", "1")
    killed = redis_server.admin().client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    api.wait_for_server_close(client)
    with stats_delta() as delta:
        assert client.get("k") == b"1"
    assert delta["stale_found"] == 1
    assert delta["retries"] == 0 and delta["probes"] == 0
    assert delta["reconnects"] == 1


def test_server_restart_is_found_before_use(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url)
    client.set("k", "1")
    redis_server.restart()
    api.wait_for_server_close(client)
    with stats_delta() as delta:
        assert client.set("k", "2") is True
    assert redis_server.admin().get("k") == "2"
    assert delta["stale_found"] == 1 and delta["retries"] == 0


def test_a_server_that_is_restarting_is_waited_out(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url)
    client.set("k", "1")
    redis_server.kill()
    # The server is down for a moment, as during a restart or a failover's DNS switch.
    restarter = threading.Timer(0.3, redis_server.start)
    restarter.start()
    try:
        with stats_delta() as delta, api.invocation(timeout=5):
            assert client.set("k", "2") is True
    finally:
        restarter.join(10)
    assert delta["backoffs"] >= 1 and delta["ambiguous_writes"] == 0


def test_server_idle_timeout_is_found_before_use(
    api: Any, redis_server_factory: Any
) -> None:
    server = redis_server_factory(timeout=1)
    client = api.get_redis(server.url)
    client.set("k", "1")
    wait_until(lambda: not server.clients_named("faaspool:"), 15, "the server's idle timeout")
    api.wait_for_server_close(client)
    with stats_delta() as delta:
        assert client.incr("k") == 2
    assert delta["stale_found"] == 1 and delta["ambiguous_writes"] == 0


def test_silently_dropped_flow_is_caught_by_the_idle_probe(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    # idle_probe_after=0: every reuse counts as idle, so no test has to wait for time to pass.
    client = api.get_redis(
        proxy.url_for(redis_server.url), idle_probe_after=0, probe_timeout=0.2, socket_timeout=30
    )
    client.set("k", "1")
    proxy.blackhole_existing()
    with stats_delta() as delta:
        assert client.incr("k") == 2
    assert delta["probes"] == 1 and delta["stale_found"] == 1
    assert delta["reconnects"] == 1 and delta["retries"] == 0
    assert redis_server.admin().get("k") == "2"


def test_lost_reply_of_a_write_is_never_replayed(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    client = api.get_redis(proxy.url_for(redis_server.url))
    client.ping()
    fired = proxy.drop_next_reply("reset")
    with stats_delta() as delta, pytest.raises(AmbiguousWriteError, match="INCR") as info:
        client.execute_command("INCR", "counter")
    assert fired.wait(5)
    assert info.value.command == "INCR"
    assert isinstance(info.value, redis.ConnectionError)
    assert redis_server.admin().get("counter") == "1"
    assert delta["ambiguous_writes"] == 1
    assert client.get("counter") == b"1"  # and the client keeps working


def test_lost_reply_that_hangs_is_not_replayed_either(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    client = api.get_redis(proxy.url_for(redis_server.url), socket_timeout=0.3)
    client.ping()
    proxy.drop_next_reply("hang")
    with pytest.raises(AmbiguousWriteError, match="LPUSH"):
        client.lpush("jobs", "a")
    assert redis_server.admin().llen("jobs") == 1


def test_lost_reply_of_a_read_is_retried(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    client = api.get_redis(proxy.url_for(redis_server.url))
    client.set("k", "v")
    proxy.drop_next_reply("reset")
    with stats_delta() as delta:
        assert client.get("k") == b"v"
    assert delta["retries"] == 1 and delta["ambiguous_writes"] == 0


def test_pipeline_with_a_write_is_not_replayed(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    client = api.get_redis(proxy.url_for(redis_server.url))
    client.ping()
    proxy.drop_next_reply("reset")
    pipe = client.pipeline(transaction=True)
    pipe.incr("a")
    pipe.get("a")
    with pytest.raises(AmbiguousWriteError, match="INCR"):
        pipe.execute()
    assert redis_server.admin().get("a") == "1"


def test_read_only_pipeline_is_retried(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    client = api.get_redis(proxy.url_for(redis_server.url))
    client.mset({"a": "1", "b": "2"})
    proxy.drop_next_reply("reset")
    pipe = client.pipeline(transaction=False)
    pipe.get("a")
    pipe.get("b")
    assert pipe.execute() == [b"1", b"2"]


def test_failover_to_a_new_primary_at_the_same_address(
    api: Any, redis_server_factory: Any, fault_proxy_factory: Any
) -> None:
    old = redis_server_factory()
    new = redis_server_factory()
    proxy: FaultProxy = fault_proxy_factory(old)
    client = api.get_redis(proxy.url_for(old.url))
    client.set("before", "1")
    # The address now leads to the new primary; the pooled socket still reaches the old
    # one, which is demoted and answers writes with READONLY.
    proxy.retarget(new.host, new.port)
    old.demote_to_replica_of(new)
    with stats_delta() as delta:
        assert client.set("after", "2") is True
    assert new.admin().get("after") == "2"
    assert delta["ambiguous_writes"] == 0
    assert delta["failovers"] + delta["stale_found"] >= 1


def test_loading_server_is_waited_out_inside_the_window(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url, busy_retry_window=30)
    client.set("k", "v")
    redis_server.start_loading(duration=0.5)
    with stats_delta() as delta:
        assert client.dbsize() > 1
    assert delta["backoffs"] >= 1


def test_loading_server_fails_clearly_after_the_window(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url, busy_retry_window=0.1)
    client.ping()
    redis_server.start_loading(duration=3)
    with pytest.raises(redis.BusyLoadingError, match="still so after"):
        client.get("k")


def test_max_clients_backs_off_then_fails_clearly(
    api: Any, redis_server_factory: Any
) -> None:
    server = redis_server_factory(maxclients=2)
    server.admin().ping()  # the harness's own connection takes one slot
    hog = redis.Redis(host=server.host, port=server.port, protocol=2)
    hog.ping()  # and this one the last
    try:
        client = api.get_redis(server.url, busy_retry_window=0.2)
        with stats_delta() as delta, pytest.raises(redis.ConnectionError) as info:
            client.get("k")
        assert "max number of clients reached" in str(info.value)
        assert "maxclients" in str(info.value)
        assert delta["backoffs"] >= 1
    finally:
        hog.close()
    wait_until(lambda: server.connected_clients() == 0, 5, "the slot to free up")
    assert client.get("k") is None


def test_deadline_cuts_a_blackholed_server(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    client = api.get_redis(proxy.url_for(redis_server.url), socket_timeout=30)
    client.ping()
    proxy.blackhole_all()
    with stats_delta() as delta:
        with api.invocation(timeout=0.3) as scope, pytest.raises(DeadlineExceeded):
            client.get("k")
        raised_at = time.monotonic()
    # Raised before the platform would have killed the invocation.
    assert raised_at <= scope.deadline
    assert delta["deadline_hits"] >= 1


def test_deadline_cuts_a_new_connection_that_never_answers(
    api: Any, redis_server: RedisServer, fault_proxy_factory: Any
) -> None:
    proxy: FaultProxy = fault_proxy_factory(redis_server)
    proxy.blackhole_all()
    client = api.get_redis(proxy.url_for(redis_server.url), socket_timeout=30)
    with api.invocation(timeout=0.3) as scope, pytest.raises(DeadlineExceeded):
        client.get("k")
    assert time.monotonic() <= scope.deadline
    assert isinstance(DeadlineExceeded("x"), redis.TimeoutError)


def test_blocking_command_gets_its_block_time_on_top_of_socket_timeout(
    api: Any, redis_server: RedisServer
) -> None:
    client = api.get_redis(redis_server.url, socket_timeout=0.2)
    assert client.blpop(["empty"], timeout=0.6) is None  # not a TimeoutError at 0.2 s


def test_blocking_command_is_cut_by_the_deadline(api: Any, redis_server: RedisServer) -> None:
    # Every configured wait is shorter than the invocation, so only the block time can
    # outlast it.
    client = api.get_redis(
        redis_server.url, socket_timeout=0.1, socket_connect_timeout=0.1, pool_timeout=0.1,
        probe_timeout=0.05,
    )
    client.ping()
    with api.invocation(timeout=0.4) as scope, pytest.raises(DeadlineExceeded):
        client.blpop(["empty"], timeout=0)
    assert time.monotonic() <= scope.deadline
    assert client.ping() is True
