"""Configuration: precedence, validation, redaction. Pure: no server needed."""

from __future__ import annotations

import pytest

from faaspool import ConfigError
from faaspool._config import resolve

SECRET = "pa55:w/rd@x"
URL = "redis://alice:pa55%3Aw%2Frd%40x@cache.internal:6380/2"


def test_url_parts_are_decoded() -> None:
    cfg = resolve(URL, environ={})
    assert (cfg.host, cfg.port, cfg.db, cfg.username, cfg.password) == (
        "cache.internal", 6380, 2, "alice", SECRET,
    )
    assert cfg.tls is False


def test_rediss_means_tls_and_default_port() -> None:
    cfg = resolve("rediss://h", environ={})
    assert cfg.tls and cfg.port == 6379 and cfg.db == 0


def test_explicit_beats_url_beats_env_beats_default() -> None:
    env = {"FAASPOOL_SOCKET_TIMEOUT": "7", "FAASPOOL_PROBE_TIMEOUT": "0.4"}
    cfg = resolve("redis://h/0?socket_timeout=3", {"probe_timeout": 0.1}, environ=env)
    assert cfg.socket_timeout == 3.0  # URL over env
    assert cfg.probe_timeout == 0.1  # argument over env
    cfg = resolve("redis://h/0", environ=env)
    assert (cfg.socket_timeout, cfg.probe_timeout) == (7.0, 0.4)
    assert resolve("redis://h", environ={}).socket_timeout == 5.0


def test_redis_url_env_is_the_default() -> None:
    assert resolve(None, environ={"REDIS_URL": "redis://envhost:1234"}).host == "envhost"


def test_no_url_anywhere_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        resolve(None, environ={})


@pytest.mark.parametrize(
    ("url", "options", "env", "match"),
    [
        ("http://h", {}, {}, "scheme 'http'"),
        ("redis://", {}, {}, "names no host"),
        ("redis://h:notaport", {}, {}, "malformed"),
        ("redis://h/abc", {}, {}, "option 'db' .*URL"),
        ("redis://h", {"socket_timeout": -1}, {}, "option 'socket_timeout' .*argument"),
        ("redis://h", {"max_connections": 0}, {}, "option 'max_connections'"),
        ("redis://h", {}, {"FAASPOOL_MAX_CONNECTIONS": "many"}, "FAASPOOL_MAX_CONNECTIONS"),
        ("redis://h", {"sockettimeout": 1}, {}, "did you mean 'socket_timeout'"),
        ("redis://h?bogus=1", {}, {}, "unknown URL parameter 'bogus'"),
        ("redis://h", {"protocol": 4}, {}, "option 'protocol'"),
        ("redis://h", {"ssl_ca_certs": "/x.pem"}, {}, "use rediss://"),
        ("redis://h", {"decode_responses": "maybe"}, {}, "true or false"),
    ],
)
def test_bad_input_names_the_option(url: str, options: dict, env: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        resolve(url, options, environ=env)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://alice:{SECRET}@h:abc/0",
        "redis://:hunter2@h/notadb",
        "redis://:hunter2@h?max_connections=-3",
        "ftp://:hunter2@h",
    ],
)
def test_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(url, environ={})
    assert "hunter2" not in str(info.value)
    assert SECRET not in str(info.value)


def test_bad_password_type_is_reported_without_its_value() -> None:
    with pytest.raises(ConfigError) as info:
        resolve("redis://h", {"password": 12345678}, environ={})
    assert "12345678" not in str(info.value)


def test_repr_and_redacted_url_hide_the_password() -> None:
    cfg = resolve(URL, environ={})
    assert SECRET not in repr(cfg)
    assert cfg.redacted_url() == "redis://alice:***@cache.internal:6380/2"


def test_config_is_the_cache_key() -> None:
    a = resolve("redis://h/0", {"max_connections": 3}, environ={})
    b = resolve("redis://h:6379/0?max_connections=3", environ={})
    c = resolve("redis://h/1", {"max_connections": 3}, environ={})
    assert a == b and hash(a) == hash(b)
    assert a != c


def test_max_connections_default_follows_the_platform() -> None:
    assert resolve("redis://h", environ={}).max_connections >= 2
    lam = resolve("redis://h", environ={})  # environ only feeds options, platform reads os
    assert lam.max_connections > 0


def test_client_name_carries_function_and_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders api")
    name = resolve("redis://h", environ={}).default_client_name()
    prefix, function, instance = name.split(":")
    assert (prefix, function) == ("faaspool", "orders-api")
    assert len(instance) == 8
    assert resolve("redis://h", {"name": "sessions"}, environ={}).default_client_name().endswith(
        ":sessions"
    )
