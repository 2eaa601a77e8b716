"""The module-scope cache: lazy, one client per configuration and process, thread-safe."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
import redis

from faaspool import get_redis
from tests.support.api import stats_delta
from tests.support.server import RedisServer, free_port


def test_get_redis_is_lazy_and_recovers_once_the_server_is_up(api: Any) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    with stats_delta() as delta:
        client = api.get_redis(url, busy_retry_window=0.2)
    assert delta["connects"] == 0
    with pytest.raises(redis.ConnectionError) as info:
        client.ping()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "still so after" in str(info.value)  # retried within busy_retry_window
    with RedisServer(port=port) as server:
        assert api.get_redis(url, busy_retry_window=0.2) is client
        assert client.set("k", "v") is True
        assert server.admin().get("k") == "v"


def test_one_client_per_configuration(api: Any, redis_server: RedisServer) -> None:
    a = api.get_redis(redis_server.url)
    assert api.get_redis(redis_server.url) is a
    assert api.get_redis(redis_server.url, max_connections=3) is not a
    assert api.get_redis(redis_server.url.replace("/0", "/1")) is not a


def test_redis_url_is_the_default(
    api: Any, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    client = api.get_redis()
    client.set("from-env", 1)
    assert redis_server.admin().get("from-env") == "1"


# The child only talks to Redis and exits; the threads Python 3.12+ warns about are the
# test runner's, not ours.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_gets_fresh_sockets(redis_server: RedisServer) -> None:
    client = get_redis(redis_server.url)
    parent_id = client.client_id()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its own connection id, never touch the parent's socket
        try:
            child = get_redis(redis_server.url)
            same = child is client
            os.write(write_end, f"{child.client_id()} {int(same)}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        child_id, same = reader.read().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert same == "0"
    assert int(child_id) != parent_id
    # The child must not have closed the parent's socket on its way out.
    assert client.client_id() == parent_id


def test_sixteen_threads_share_one_client(api: Any, redis_server: RedisServer) -> None:
    client = api.get_redis(redis_server.url, max_connections=4)
    errors: list[BaseException] = []
    start = threading.Barrier(16)

    def work() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(200):
                client.incr("hits")
                client.get("hits")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert redis_server.admin().get("hits") == "3200"
    assert len(redis_server.clients_named("faaspool:")) <= 4
