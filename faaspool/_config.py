"""Configuration: parse, validate, redact, and the cache key.

Pure: no sockets. Explicit arguments win over URL query parameters, which win over
``FAASPOOL_*`` environment variables, which win over defaults. Every error names the
option and where it came from, and never holds a password.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from . import _runtime
from ._errors import ConfigError

URL_ENV = "REDIS_URL"
ENV_PREFIX = "FAASPOOL_"
_SCHEMES = {"redis": False, "rediss": True}


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return number


def _non_negative_float(value: Any) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError("must be zero or a positive number of seconds")
    return number


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a positive integer")
    number = int(value)
    if number != float(value) or number < 1:
        raise ValueError("must be a positive integer")
    return number


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be zero or a positive integer")
    number = int(value)
    if number != float(value) or number < 0:
        raise ValueError("must be zero or a positive integer")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _protocol(value: Any) -> int:
    number = int(value)
    if number not in (2, 3):
        raise ValueError("must be 2 or 3")
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _command_set(value: Any) -> frozenset[str]:
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    names = frozenset(str(item).strip().upper() for item in items if str(item).strip())
    return names


def _cert_reqs(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in ("required", "optional", "none"):
        raise ValueError("must be 'required', 'optional' or 'none'")
    return text


def _tls_version(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper().replace("TLSV", "TLS").replace("_", ".")
    if text in ("1.2", "TLS1.2"):
        return "TLSv1_2"
    if text in ("1.3", "TLS1.3"):
        return "TLSv1_3"
    raise ValueError("must be '1.2' or '1.3'")


# name -> (converter, default). A default of None for max_connections means "sized to
# the platform", resolved at build time.
_OPTIONS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "db": (_non_negative_int, 0),
    "username": (_optional_text, None),
    "password": (_optional_text, None),
    "socket_timeout": (_positive_float, 5.0),
    "socket_connect_timeout": (_positive_float, 2.0),
    "max_connections": (_positive_int, None),
    "idle_probe_after": (_non_negative_float, 60.0),
    "probe_timeout": (_positive_float, 0.25),
    "deadline_margin": (_non_negative_float, 0.05),
    "pool_timeout": (_positive_float, 5.0),
    "max_retries": (_non_negative_int, 2),
    "backoff_base": (_positive_float, 0.02),
    "backoff_cap": (_positive_float, 0.5),
    "busy_retry_window": (_non_negative_float, 2.0),
    "retry_safe_commands": (_command_set, frozenset()),
    "decode_responses": (_bool, False),
    "encoding": (_text, "utf-8"),
    "protocol": (_protocol, 3),
    "client_name": (_optional_text, None),
    "name": (_text, "default"),
    "ssl_ca_certs": (_optional_text, None),
    "ssl_ca_data": (_optional_text, None),
    "ssl_certfile": (_optional_text, None),
    "ssl_keyfile": (_optional_text, None),
    "ssl_cert_reqs": (_cert_reqs, "required"),
    "ssl_check_hostname": (_bool, True),
    "ssl_min_version": (_tls_version, None),
}
_SECRET_OPTIONS = frozenset({"password"})


@dataclasses.dataclass(frozen=True)
class Config:
    """A resolved, validated configuration. Hashable: it is the cache key.

    Its ``repr`` never shows the password.
    """

    host: str
    port: int
    tls: bool
    db: int
    username: str | None
    password: str | None = dataclasses.field(repr=False)
    socket_timeout: float
    socket_connect_timeout: float
    max_connections: int
    idle_probe_after: float
    probe_timeout: float
    deadline_margin: float
    pool_timeout: float
    max_retries: int
    backoff_base: float
    backoff_cap: float
    busy_retry_window: float
    retry_safe_commands: frozenset[str]
    decode_responses: bool
    encoding: str
    protocol: int
    client_name: str | None
    name: str
    ssl_ca_certs: str | None
    ssl_ca_data: str | None = dataclasses.field(repr=False)
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_cert_reqs: str
    ssl_check_hostname: bool
    ssl_min_version: str | None

    def __hash__(self) -> int:
        # The cache looks a client up by its Config on every invocation: hash it once.
        cached: int | None = self.__dict__.get("_hash")
        if cached is None:
            cached = hash(tuple(getattr(self, f.name) for f in dataclasses.fields(self)))
            object.__setattr__(self, "_hash", cached)
        return cached

    @functools.cached_property
    def longest_wait(self) -> float:
        """The longest single wait the configuration allows; a larger budget cuts none."""
        return max(
            self.socket_timeout, self.socket_connect_timeout, self.probe_timeout, self.pool_timeout
        )

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.username or self.password:
            user = quote(self.username or "", safe="")
            auth = f"{user}:***@" if self.password else f"{user}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{self.db}"

    def default_client_name(self) -> str:
        """``faaspool:<function>:<instance-id>``, plus the connection's name if not default."""
        if self.client_name:
            return self.client_name
        base = f"faaspool:{_runtime.function_name()}:{_runtime.instance_id()}"
        return base if self.name == "default" else f"{base}:{self.name}"


def resolve(
    url: str | None = None,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Turn a URL, explicit options and the environment into a validated `Config`."""
    env = os.environ if environ is None else environ
    explicit = dict(options or {})
    _reject_unknown(explicit, "argument")

    url_source = "url argument"
    if url is None:
        url = env.get(URL_ENV)
        url_source = f"${URL_ENV}"
    if not url:
        raise ConfigError(
            "no Redis URL: pass url='redis://host:6379/0' or set the REDIS_URL environment "
            "variable"
        )
    host, port, tls, url_values = _parse_url(url, url_source)

    values: dict[str, Any] = {}
    for name, (convert, default) in _OPTIONS.items():
        if name in explicit:
            raw, source = explicit[name], f"argument {name}="
        elif name in url_values:
            raw, source = url_values[name], f"URL parameter {name!r}"
        elif ENV_PREFIX + name.upper() in env:
            raw, source = env[ENV_PREFIX + name.upper()], f"${ENV_PREFIX}{name.upper()}"
        else:
            values[name] = default
            continue
        values[name] = _convert(name, convert, raw, source)

    if values["max_connections"] is None:
        values["max_connections"] = _runtime.default_max_connections()
    if values["backoff_cap"] < values["backoff_base"]:
        raise ConfigError("option 'backoff_cap' must not be smaller than 'backoff_base'")
    if not tls and any(
        values[k] is not None for k in ("ssl_ca_certs", "ssl_ca_data", "ssl_certfile")
    ):
        raise ConfigError(
            "TLS options were given for a plain redis:// URL: use rediss:// to connect with TLS"
        )
    return Config(host=host, port=port, tls=tls, **values)


def _reject_unknown(given: Mapping[str, Any], kind: str) -> None:
    for name in given:
        if name not in _OPTIONS:
            close = difflib.get_close_matches(name, list(_OPTIONS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {kind} {name!r}{hint}")


def _convert(name: str, convert: Callable[[Any], Any], raw: Any, source: str) -> Any:
    try:
        return convert(raw)
    except (TypeError, ValueError) as exc:
        shown = "***" if name in _SECRET_OPTIONS else repr(raw)
        reason = str(exc) if str(exc).startswith("must") else "has the wrong type or format"
        raise ConfigError(f"option {name!r} (from {source}) {reason}, got {shown}") from None


def _parse_url(url: str, source: str) -> tuple[str, int, bool, dict[str, Any]]:
    if not isinstance(url, str):
        raise ConfigError(f"the Redis URL (from {source}) must be a string")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"the Redis URL (from {source}) is malformed: {_redact_raw(url)}"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        shown = scheme or "none"
        raise ConfigError(
            f"the Redis URL (from {source}) has scheme {shown!r}: use redis:// or rediss:// "
            f"(got {_redact_raw(url)})"
        )
    if not parts.hostname:
        raise ConfigError(f"the Redis URL (from {source}) names no host: {_redact_raw(url)}")

    values: dict[str, Any] = {}
    if parts.username:
        values["username"] = unquote(parts.username)
    if parts.password is not None:
        values["password"] = unquote(parts.password)
    path = parts.path.strip("/")
    if path:
        values["db"] = path
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _OPTIONS:
            close = difflib.get_close_matches(key, list(_OPTIONS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown URL parameter {key!r}{hint}")
        values[key] = value
    return parts.hostname, port or 6379, _SCHEMES[scheme], values


def _redact_raw(url: str) -> str:
    """Best-effort redaction for a URL that may not even parse."""
    scheme_end = url.find("://")
    at = url.rfind("@")
    if scheme_end >= 0 and at > scheme_end:
        userinfo = url[scheme_end + 3 : at]
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        return f"{url[: scheme_end + 3]}{user}:***{url[at:]}"
    return url
