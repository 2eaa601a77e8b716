"""rediss:// with every guarantee of the core, against a private TLS redis-server and
certificates the tests make."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import faaspool
from faaspool import AmbiguousWriteError, ConfigError, DeadlineExceeded, TLSError
from tests.support.api import stats_delta, wait_until
from tests.support.certs import CertSet, make_certs
from tests.support.proxy import FaultProxy
from tests.support.server import RedisServer, find_redis_server, tls_supported

pytestmark = pytest.mark.skipif(
    not tls_supported(find_redis_server()),
    reason=f"{find_redis_server()} was built without TLS support",
)

TLSServerFactory = Callable[..., RedisServer]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_server_factory(redis_server_factory: Any, certs: CertSet) -> TLSServerFactory:
    def factory(**kwargs: Any) -> RedisServer:
        kwargs.setdefault("tls", certs.server)
        server: RedisServer = redis_server_factory(**kwargs)
        return server

    return factory


@pytest.fixture
def tls_server(tls_server_factory: TLSServerFactory) -> RedisServer:
    return tls_server_factory()


def _proxy_url(proxy: FaultProxy, **query: str) -> str:
    return f"rediss://{proxy.host}:{proxy.port}/0"


# -- the core's guarantees, over TLS ------------------------------------------------------


def test_session_tickets_raise_no_false_alarm(
    api: Any, tls_server: RedisServer, certs: CertSet
) -> None:
    client = api.get_redis(tls_server.tls_url, ssl_ca_certs=certs.ca)
    client.set("k", "v")
    first = {c["id"] for c in tls_server.clients_named("faaspool:")}
    tls_server.admin().config_resetstat()
    with stats_delta() as delta:
        for _ in range(20):
            assert client.get("k") == b"v"
    assert delta["stale_found"] == 0 and delta["connects"] == 0 and delta["reuses"] == 20
    assert {c["id"] for c in tls_server.clients_named("faaspool:")} == first
    assert "cmdstat_ping" not in tls_server.admin().info("commandstats")


def test_client_kill_is_found_before_use_over_tls(
    api: Any, tls_server: RedisServer, certs: CertSet
) -> None:
    client = api.get_redis(tls_server.tls_url, ssl_ca_certs=certs.ca)
    client.set("k", "1")
    tls_server.admin().client_kill_filter(_type="normal", skipme=True)
    api.wait_for_server_close(client)
    with stats_delta() as delta:
        assert client.get("k") == b"1"
    assert delta["stale_found"] == 1 and delta["retries"] == 0 and delta["probes"] == 0


def test_restart_is_found_before_use_over_tls(
    api: Any, tls_server: RedisServer, certs: CertSet
) -> None:
    client = api.get_redis(tls_server.tls_url, ssl_ca_certs=certs.ca)
    client.set("k", "1")
    tls_server.restart()
    api.wait_for_server_close(client)
    with stats_delta() as delta:
        assert client.set("k", "2") is True
    assert delta["stale_found"] == 1 and delta["retries"] == 0


def test_idle_timeout_is_found_before_use_over_tls(
    api: Any, tls_server_factory: TLSServerFactory, certs: CertSet
) -> None:
    server = tls_server_factory(timeout=1)
    client = api.get_redis(server.tls_url, ssl_ca_certs=certs.ca)
    client.set("k", "1")
    wait_until(lambda: not server.clients_named("faaspool:"), 15, "the server's idle timeout")
    api.wait_for_server_close(client)
    with stats_delta() as delta:
        assert client.incr("k") == 2
    assert delta["stale_found"] == 1


def test_silently_dropped_flow_over_tls(
    api: Any, tls_server: RedisServer, certs: CertSet
) -> None:
    with FaultProxy(tls_server.host, tls_server.tls_port) as proxy:
        client = api.get_redis(
            _proxy_url(proxy), ssl_ca_certs=certs.ca, idle_probe_after=0, probe_timeout=0.2,
            socket_timeout=30,
        )
        client.set("k", "1")
        proxy.blackhole_existing()
        with stats_delta() as delta:
            assert client.incr("k") == 2
    assert delta["probes"] == 1 and delta["stale_found"] == 1


def test_lost_write_reply_is_not_replayed_over_tls(
    api: Any, tls_server: RedisServer, certs: CertSet
) -> None:
    with FaultProxy(tls_server.host, tls_server.tls_port) as proxy:
        client = api.get_redis(_proxy_url(proxy), ssl_ca_certs=certs.ca)
        client.ping()
        proxy.drop_next_reply("reset")
        with pytest.raises(AmbiguousWriteError, match="INCR"):
            client.execute_command("INCR", "n")
    assert tls_server.admin().get("n") == "1"


def test_handshake_is_one_round_trip_after_tls(
    api: Any, tls_server_factory: TLSServerFactory, certs: CertSet
) -> None:
    server = tls_server_factory(password="tls-pw")
    with FaultProxy(server.host, server.tls_port) as proxy:
        proxy.set_delay(0.002)
        url = f"rediss://:tls-pw@{proxy.host}:{proxy.port}/3"
        client = api.get_redis(url, ssl_ca_certs=certs.ca)
        client.set("k", "v")
        ours = proxy.flows[-1].client_chunks
        stock = redis.Redis.from_url(url, ssl_ca_certs=certs.ca, client_name="stock")
        stock.set("k", "v")
        theirs = proxy.flows[-1].client_chunks
        stock.close()
    # ClientHello, Finished, our whole handshake, the command (Finished and the
    # handshake may share a read).
    assert ours <= 4
    assert theirs >= ours + 4


def test_deadline_cuts_a_server_that_never_answers_the_tls_handshake(
    api: Any, certs: CertSet
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never speaks
        port = silent.getsockname()[1]
        client = api.get_redis(f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=certs.ca)
        with api.invocation(timeout=0.3) as scope, pytest.raises(DeadlineExceeded):
            client.ping()
        assert scope.remaining() > -0.05


def test_connect_timeout_bounds_a_silent_tls_handshake(certs: CertSet) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        client = faaspool.get_redis(
            f"rediss://127.0.0.1:{port}/0", ssl_ca_certs=certs.ca,
            socket_connect_timeout=0.2, max_retries=0,
        )
        with pytest.raises(redis.TimeoutError, match=r"TLS handshake .* timed out"):
            client.ping()


# -- bad TLS input: clear errors, no retries ----------------------------------------------


def _fails_fast(server: RedisServer, **options: Any) -> str:
    """The error of a first command over TLS, made through a proxy that counts attempts."""
    with FaultProxy(server.host, server.tls_port) as proxy:
        client = faaspool.get_redis(f"rediss://127.0.0.1:{proxy.port}/0", **options)
        with pytest.raises(TLSError) as info:
            client.ping()
        # One attempt: a retry cannot fix this.
        assert proxy.flows_opened == 1
        text = str(info.value)
        assert f"127.0.0.1:{proxy.port}" in text
    return text


def test_unknown_ca(tls_server: RedisServer) -> None:
    text = _fails_fast(tls_server)
    assert "not signed by a trusted CA" in text and "ssl_ca_certs" in text


def test_certificate_for_another_host(tls_server_factory: TLSServerFactory, certs: CertSet) -> None:
    text = _fails_fast(tls_server_factory(tls=certs.wrong_host), ssl_ca_certs=certs.ca)
    assert "not valid for '127.0.0.1'" in text


def test_expired_certificate(tls_server_factory: TLSServerFactory, certs: CertSet) -> None:
    text = _fails_fast(tls_server_factory(tls=certs.expired), ssl_ca_certs=certs.ca)
    assert "expired" in text


def test_ca_file_that_does_not_exist(tls_server: RedisServer, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=r"ssl_ca_certs.*does not exist"):
        faaspool.get_redis(tls_server.tls_url, ssl_ca_certs=missing)


def test_plain_url_at_a_tls_port(tls_server: RedisServer) -> None:
    client = faaspool.get_redis(f"redis://127.0.0.1:{tls_server.tls_port}/0", max_retries=0)
    with pytest.raises(redis.ConnectionError, match="expects TLS: use rediss://"):
        client.ping()


def test_tls_url_at_a_plain_port(tls_server: RedisServer, certs: CertSet) -> None:
    # A plain Redis port reads a ClientHello as an unfinished inline command: either it
    # answers garbage (TLSError) or nothing (the handshake times out).
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    client = faaspool.get_redis(
        url, ssl_ca_certs=certs.ca, socket_connect_timeout=0.3, max_retries=0
    )
    with pytest.raises((redis.ConnectionError, redis.TimeoutError)) as info:
        client.ping()
    assert "does not speak TLS on this port: use redis://" in str(info.value)


def test_turning_verification_off_warns_once_naming_the_host(
    tls_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="faaspool")
    client = faaspool.get_redis(tls_server.tls_url, ssl_cert_reqs="none")
    client.ping()
    client.ping()
    warnings = [r.getMessage() for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(warnings) == 1 and f"127.0.0.1:{tls_server.tls_port}" in warnings[0]


def test_client_certificate(tls_server_factory: TLSServerFactory, certs: CertSet) -> None:
    server = tls_server_factory(extra_args=["--tls-auth-clients", "yes"])
    without = faaspool.get_redis(server.tls_url, ssl_ca_certs=certs.ca, max_retries=0)
    with pytest.raises(redis.ConnectionError):
        without.ping()
    with_cert = faaspool.get_redis(
        server.tls_url, ssl_ca_certs=certs.ca,
        ssl_certfile=certs.client_cert, ssl_keyfile=certs.client_key,
    )
    assert with_cert.ping() is True


def test_ca_data_and_minimum_version(tls_server: RedisServer, certs: CertSet) -> None:
    ca_data = Path(certs.ca).read_text()
    client = faaspool.get_redis(tls_server.tls_url, ssl_ca_data=ca_data, ssl_min_version="1.3")
    assert client.ping() is True
    conn = client.connection_pool.get_connection()
    try:
        assert conn._sock.version() == "TLSv1.3"
    finally:
        client.connection_pool.release(conn)


def test_one_ssl_context_per_configuration(tls_server: RedisServer, certs: CertSet) -> None:
    client = faaspool.get_redis(tls_server.tls_url, ssl_ca_certs=certs.ca)
    pool = client.connection_pool
    first, second = pool.get_connection(), pool.get_connection()
    try:
        first.send_command("PING")
        first.read_response()
        second.send_command("PING")
        second.read_response()
        assert isinstance(first._sock, ssl.SSLSocket)
        assert first._sock.context is second._sock.context
        # The reconnect resumed the first connection's TLS session.
        second.disconnect()
        second.send_command("PING")
        second.read_response()
        assert second._sock.session_reused
    finally:
        pool.release(first)
        pool.release(second)


def test_secrets_stay_out_of_tls_errors(tls_server_factory: TLSServerFactory) -> None:
    server = tls_server_factory(password="tls-secret-value")
    client = faaspool.get_redis(server.tls_url)  # untrusted CA
    with pytest.raises(TLSError) as info:
        client.ping()
    assert "tls-secret-value" not in str(info.value) + repr(client)


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert not [t for t in set(threading.enumerate()) - before if t.is_alive() and not t.daemon]
