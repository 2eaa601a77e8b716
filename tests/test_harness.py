"""Proves the test harness itself: private servers and the fault proxy."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.fixtures import FaultProxyFactory, RedisServerFactory
from tests.support.proxy import FaultProxy
from tests.support.server import (
    SHARED_PORT,
    RedisServer,
    RedisServerError,
    available_redis_servers,
    find_redis_server,
    free_port,
    wait_for,
)

ClientFactory = Callable[..., redis.Redis]


@pytest.fixture
def connect() -> Iterator[ClientFactory]:
    """Stock redis-py clients: one connection each, short timeouts, no retries."""
    made: list[redis.Redis] = []

    def factory(url: str, **kwargs: Any) -> redis.Redis:
        options: dict[str, Any] = {
            "socket_timeout": 0.5,
            "socket_connect_timeout": 1.0,
            "retry": Retry(NoBackoff(), 0),
            "protocol": 2,
            "single_connection_client": True,
            "decode_responses": True,
        }
        options.update(kwargs)
        client = redis.Redis.from_url(url, **options)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


@pytest.fixture
def proxy(redis_server: RedisServer, fault_proxy_factory: FaultProxyFactory) -> FaultProxy:
    return fault_proxy_factory(redis_server)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- server -----------------------------------------------------------------


def test_binary_and_free_port() -> None:
    assert os.access(find_redis_server(), os.X_OK)
    assert free_port() != 6379
    for executable in available_redis_servers():
        assert RedisServer(executable=executable).version() >= (6, 2, 0)


def test_server_basics(redis_server: RedisServer, connect: ClientFactory) -> None:
    assert redis_server.port != 6379
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.client_list() == []
    assert redis_server.connected_clients() == 0
    before = redis_server.total_connections_received()
    client = connect(redis_server.url, client_name="app-1")
    assert client.ping()
    assert redis_server.total_connections_received() == before + 1
    assert redis_server.connected_clients() == 1
    assert [c["name"] for c in redis_server.clients_named("app-")] == ["app-1"]
    assert redis_server.info("server")["tcp_port"] == redis_server.port
    assert redis_server.info()["redis_version"].startswith(
        ".".join(map(str, redis_server.version()[:2]))
    )


def test_context_manager_cleans_up() -> None:
    with RedisServer() as server:
        pid, directory = server.pid, server.directory
        assert server.admin().ping()
    assert _gone(pid)
    assert not directory.exists()


def test_password_and_acl_users(
    redis_server_factory: RedisServerFactory, connect: ClientFactory
) -> None:
    server = redis_server_factory(
        password="s3cret", acl_users=["user alice on >wonder ~app:* +@all"]
    )
    assert server.url == f"redis://:s3cret@127.0.0.1:{server.port}/0"
    with pytest.raises(redis.AuthenticationError):
        connect(f"redis://127.0.0.1:{server.port}/0").ping()
    assert connect(server.url).ping()
    alice = connect(f"redis://alice:wonder@127.0.0.1:{server.port}/0")
    assert alice.set("app:x", 1)
    with pytest.raises(redis.exceptions.NoPermissionError):
        alice.set("other", 1)
    assert server.admin().get("app:x") == "1"


def test_server_options(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(timeout=7, maxclients=50, extra_args=["--hz", "20"])
    config = server.admin().config_get("*")
    assert (config["timeout"], config["maxclients"], config["hz"]) == ("7", "50", "20")
    assert (config["save"], config["appendonly"]) == ("", "no")


def test_fixed_port_conflict_reports_log() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        server = RedisServer(port=blocker.getsockname()[1])
        with pytest.raises(RedisServerError, match="in use"):
            server.start()
        server.close()
    with pytest.raises(ValueError, match="6379"):
        RedisServer(port=SHARED_PORT)


def test_restart_keeps_port(redis_server: RedisServer, connect: ClientFactory) -> None:
    client = connect(redis_server.url)
    client.set("k", "v")
    port, pid = redis_server.port, redis_server.pid
    redis_server.restart()
    assert (redis_server.port, _gone(pid)) == (port, True)
    assert redis_server.pid != pid
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    assert connect(redis_server.url).get("k") is None


def test_kill_then_restart(redis_server: RedisServer, connect: ClientFactory) -> None:
    client = connect(redis_server.url)
    assert client.ping()
    redis_server.kill()
    assert not redis_server.running
    with pytest.raises(redis.ConnectionError):
        client.ping()
    redis_server.restart()
    assert connect(redis_server.url).ping()


def test_freeze_and_thaw(redis_server: RedisServer, connect: ClientFactory) -> None:
    client = connect(redis_server.url, socket_timeout=0.2)
    assert client.ping()
    redis_server.freeze()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    redis_server.thaw()
    assert connect(redis_server.url).ping()


@pytest.mark.parametrize("executable", available_redis_servers())
def test_loading_answers_busy_loading(executable: str, connect: ClientFactory) -> None:
    with RedisServer(executable=executable, password="pw") as server:
        server.admin().set("kept", "yes")
        port = server.port
        server.start_loading(duration=0.8, step=0.04)
        assert server.port == port
        assert server.is_loading()
        client = connect(server.url)
        with pytest.raises(redis.BusyLoadingError):
            client.get("kept")
        server.wait_until_loaded(timeout=10)
        assert connect(server.url).get("kept") == "yes"


def test_replica_demote_and_promote(
    redis_server_factory: RedisServerFactory, connect: ClientFactory
) -> None:
    primary = redis_server_factory(password="pw")
    replica = redis_server_factory(password="pw")
    replica.demote_to_replica_of(primary)
    primary.admin().set("k", "v")
    wait_for(lambda: replica.admin().get("k") == "v", 5, "replication of k")
    with pytest.raises(redis.ReadOnlyError):
        connect(replica.url).set("k", "w")
    replica.promote()
    assert connect(replica.url).set("k", "w")


# -- proxy ------------------------------------------------------------------


def test_pass_through_and_flow_counters(
    redis_server: RedisServer, proxy: FaultProxy, connect: ClientFactory
) -> None:
    client = connect(proxy.url_for())
    assert client.set("k", "v") and client.get("k") == "v"
    assert (proxy.flows_opened, proxy.open_flows) == (1, 1)
    assert redis_server.admin().get("k") == "v"
    client.close()
    wait_for(lambda: proxy.open_flows == 0, 5, "the flow to close")


def test_url_for(proxy: FaultProxy) -> None:
    base = f"127.0.0.1:{proxy.port}"
    assert proxy.url_for() == f"redis://{base}/0"
    assert proxy.url_for(password="p w", db=3) == f"redis://:p%20w@{base}/3"
    assert proxy.url_for("redis://u:p@elsewhere:1/2?x=1") == f"redis://u:p@{base}/2?x=1"


def test_drop_next_reply_then_reset(
    redis_server: RedisServer, proxy: FaultProxy, connect: ClientFactory
) -> None:
    client = connect(proxy.url_for())
    assert client.ping()
    fired = proxy.drop_next_reply(then="reset")
    with pytest.raises(redis.ConnectionError):
        client.incr("counter")
    assert fired.wait(5)
    assert redis_server.admin().get("counter") == "1"
    assert proxy.flows[0].state == "closed"
    assert connect(proxy.url_for()).incr("counter") == 2


def test_drop_next_reply_then_hang(
    redis_server: RedisServer, proxy: FaultProxy, connect: ClientFactory
) -> None:
    client = connect(proxy.url_for(), socket_timeout=0.3)
    assert client.ping()
    fired = proxy.drop_next_reply(then="hang")
    with pytest.raises(redis.TimeoutError):
        client.incr("counter")
    assert fired.is_set()
    assert redis_server.admin().get("counter") == "1"
    assert proxy.flows[0].state == "hang"
    assert connect(proxy.url_for()).incr("counter") == 2


def test_blackhole_existing(
    redis_server: RedisServer, proxy: FaultProxy, connect: ClientFactory
) -> None:
    old = connect(proxy.url_for(), socket_timeout=0.3)
    assert old.ping()
    proxy.blackhole_existing()
    with pytest.raises(redis.TimeoutError):
        old.ping()
    assert connect(proxy.url_for()).ping()
    assert proxy.flows[0].state == "blackhole"


def test_heal_resumes_idle_blackholed_flow(proxy: FaultProxy) -> None:
    with socket.create_connection((proxy.host, proxy.port), timeout=2) as raw:
        raw.sendall(b"PING\r\n")
        assert raw.recv(100) == b"+PONG\r\n"
        proxy.blackhole_existing()
        proxy.heal()
        raw.sendall(b"PING\r\n")
        assert raw.recv(100) == b"+PONG\r\n"


def test_blackhole_all_then_heal(
    redis_server: RedisServer, proxy: FaultProxy, connect: ClientFactory
) -> None:
    old = connect(proxy.url_for(), socket_timeout=0.3)
    assert old.ping()
    proxy.blackhole_all()
    with pytest.raises(redis.TimeoutError):
        old.ping()
    servers_clients = redis_server.connected_clients()
    with pytest.raises(redis.TimeoutError):
        connect(proxy.url_for(), socket_timeout=0.3).ping()
    assert proxy.flows_opened == 2
    assert redis_server.connected_clients() == servers_clients
    proxy.heal()
    assert connect(proxy.url_for()).ping()


def test_reset_all(proxy: FaultProxy, connect: ClientFactory) -> None:
    clients = [connect(proxy.url_for()) for _ in range(2)]
    assert all(client.ping() for client in clients)
    proxy.reset_all()
    assert proxy.open_flows == 0
    for client in clients:
        with pytest.raises(redis.ConnectionError):
            client.ping()


def test_delay_and_handshake_chunks(proxy: FaultProxy, connect: ClientFactory) -> None:
    proxy.set_delay(0.05)
    started = time.monotonic()
    client = connect(proxy.url_for())
    assert client.ping()
    elapsed = time.monotonic() - started
    flow = proxy.flows[0]
    # Stock redis-py (RESP2, no auth/name) sends CLIENT SETINFO twice, then PING:
    # each waits for its reply, so each is one chunk and costs one round trip.
    assert flow.client_chunks == 3
    assert elapsed >= 3 * 2 * 0.05
    with socket.create_connection((proxy.host, proxy.port), timeout=2) as raw:
        raw.sendall(b"PING\r\nPING\r\n")
        reply = b""
        while reply.count(b"+PONG") < 2:
            reply += raw.recv(100)
    assert proxy.flows[1].client_chunks == 1
    proxy.heal()
    started = time.monotonic()
    assert client.ping()
    assert time.monotonic() - started < 0.1


def test_retarget(
    redis_server_factory: RedisServerFactory,
    fault_proxy_factory: FaultProxyFactory,
    connect: ClientFactory,
) -> None:
    first, second = redis_server_factory(), redis_server_factory()
    proxy = fault_proxy_factory(first)
    old = connect(proxy.url_for())
    old.set("where", "first")
    proxy.retarget(second.host, second.port)
    connect(proxy.url_for()).set("where", "second")
    old.set("old", "still first")
    assert first.admin().mget("where", "old") == ["first", "still first"]
    assert second.admin().get("where") == "second"


def test_target_down_resets_client(
    redis_server: RedisServer, proxy: FaultProxy, connect: ClientFactory
) -> None:
    redis_server.kill()
    with pytest.raises(redis.ConnectionError):
        connect(proxy.url_for()).ping()


def test_close_joins_thread(redis_server: RedisServer, connect: ClientFactory) -> None:
    proxy = FaultProxy(redis_server.host, redis_server.port)
    client = connect(proxy.url_for())
    assert client.ping()
    proxy.close()
    assert not proxy._thread.is_alive()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    with pytest.raises(OSError):
        socket.create_connection((proxy.host, proxy.port), timeout=1).close()
