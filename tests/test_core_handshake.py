"""The one-round-trip handshake: same errors as redis-py, a fraction of the round trips."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis

from tests.support.api import stats_delta
from tests.support.proxy import FaultProxy
from tests.support.server import RedisServer

PASSWORD = "hand-shake-secret"


def _first_command_chunks(proxy: FaultProxy, run: Any) -> int:
    before = proxy.flows_opened
    run()
    (flow,) = proxy.flows[before:]
    return flow.client_chunks


def test_handshake_is_pipelined_into_one_round_trip(
    api: Any, redis_server_factory: Any, fault_proxy_factory: Any
) -> None:
    server = redis_server_factory(password=PASSWORD)
    proxy: FaultProxy = fault_proxy_factory(server)
    proxy.set_delay(0.002)  # replies come late, so every client write is its own chunk
    url = proxy.url_for(server.url, db=2)
    client = api.get_redis(url)
    ours = _first_command_chunks(proxy, lambda: client.set("k", "v"))
    stock = redis.Redis.from_url(url, client_name="stock")
    try:
        theirs = _first_command_chunks(proxy, lambda: stock.set("k2", "v"))
    finally:
        stock.close()
    assert ours == 2  # handshake, then the command
    assert theirs >= 6
    admin = server.admin()
    admin.select(2)
    assert admin.get("k") == "v"


def test_connections_are_named_for_the_fleet(
    api: Any, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "checkout")
    api.get_redis(redis_server.url).ping()
    (entry,) = redis_server.clients_named("faaspool:")
    assert re.fullmatch(r"faaspool:checkout:[0-9a-f]{8}", entry["name"])
    if redis_server.version() >= (7, 2, 0):  # CLIENT SETINFO exists from 7.2 on
        assert "faaspool" in entry["lib-name"]


def _error_of(call: Any) -> tuple[type, str]:
    with pytest.raises(redis.RedisError) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize(
    "case",
    ["wrong password", "unknown user", "no password given", "bad db"],
)
def test_handshake_errors_match_redis_py(
    api: Any, redis_server_factory: Any, case: str, protocol: int
) -> None:
    server = redis_server_factory(
        password=PASSWORD, acl_users=["user alice on >alicepw ~* +@all"]
    )
    base = f"redis://{{auth}}127.0.0.1:{server.port}/{{db}}"
    auth, db = {
        "wrong password": (":nope@", 0),
        "unknown user": ("mallory:pw@", 0),
        "no password given": ("", 0),
        "bad db": (f":{PASSWORD}@", 99),
    }[case]
    url = base.format(auth=auth, db=db)
    stock = redis.Redis.from_url(url, protocol=protocol, retry=None)
    try:
        expected = _error_of(stock.ping)
    finally:
        stock.close()
    client = api.get_redis(url, protocol=protocol)
    before = server.total_connections_received()
    with stats_delta() as delta:
        got = _error_of(client.ping)
    assert got == expected
    assert PASSWORD not in got[1]
    # Fails fast: one connection attempt, not redis-py's eleven.
    assert server.total_connections_received() - before == 1
    assert delta["retries"] == 0
