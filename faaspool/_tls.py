"""TLS: the `ssl.SSLContext` for a configuration, built once per process, and plain-words
explanations of what went wrong in a handshake.

redis-py builds a new context (loading the CA bundle, ~17 ms) on every connect; a cold
start and every reconnect should not pay that.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl

import redis.exceptions as rx

from ._config import Config
from ._errors import ConfigError, TLSError

logger = logging.getLogger("faaspool")

_VERIFY = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}
_VERSIONS = {"TLSv1_2": ssl.TLSVersion.TLSv1_2, "TLSv1_3": ssl.TLSVersion.TLSv1_3}


@functools.lru_cache(maxsize=32)
def context(config: Config) -> ssl.SSLContext:
    """The client context for ``config``: certificates verified unless explicitly disabled.

    Raises `ConfigError` naming the option for a certificate or CA file that is missing or
    unreadable.
    """
    where = f"for rediss://{config.address}"
    for option in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        path = getattr(config, option)
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"option {option!r} {where}: file {path!r} does not exist")
    try:
        ctx = ssl.create_default_context(cafile=config.ssl_ca_certs, cadata=config.ssl_ca_data)
        verify = _VERIFY[config.ssl_cert_reqs]
        # check_hostname must be off before verification can be relaxed.
        ctx.check_hostname = config.ssl_check_hostname and verify != ssl.CERT_NONE
        ctx.verify_mode = verify
        if config.ssl_certfile:
            ctx.load_cert_chain(config.ssl_certfile, config.ssl_keyfile)
        if config.ssl_min_version:
            ctx.minimum_version = _VERSIONS[config.ssl_min_version]
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"TLS options {where} are unusable: {_reason(exc)}") from None
    if verify == ssl.CERT_NONE:
        logger.warning(
            "faaspool: TLS certificate verification is OFF for %s (ssl_cert_reqs='none'): "
            "anyone on the path can impersonate the server",
            config.address,
        )
    elif not ctx.check_hostname:
        logger.warning(
            "faaspool: TLS host name checking is OFF for %s (ssl_check_hostname=false)",
            config.address,
        )
    return ctx


def explain(exc: BaseException, config: Config) -> rx.RedisError:
    """A clear error for a failed TLS handshake with ``config``'s server."""
    address = config.address
    if isinstance(exc, TimeoutError):
        return rx.TimeoutError(
            f"TLS handshake with {address} timed out: the server accepted the connection "
            "but never answered. If this is a plain (non-TLS) port, the server does not "
            "speak TLS on this port: use redis://"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = (exc.verify_message or _reason(exc)).lower()
        if "hostname mismatch" in message or "ip address mismatch" in message:
            why = (
                f"its certificate is not valid for {config.host!r} ({exc.verify_message}): "
                "connect by a name the certificate lists, or set ssl_check_hostname=false"
            )
        elif "expired" in message:
            why = "its certificate has expired"
        elif "not yet valid" in message:
            why = "its certificate is not valid yet (check the clocks)"
        elif "issuer" in message or "self-signed" in message or "self signed" in message:
            why = (
                f"its certificate is not signed by a trusted CA ({exc.verify_message}): "
                "pass ssl_ca_certs= (a CA file) or ssl_ca_data= for a private CA"
            )
        else:
            why = f"its certificate failed verification ({exc.verify_message})"
        return TLSError(f"TLS: cannot trust the server at {address}: {why}")
    reason = _reason(exc)
    if any(s in reason.lower() for s in ("wrong version number", "record layer", "http request")):
        return TLSError(
            f"TLS handshake with {address} failed ({reason}): the server does not speak TLS "
            "on this port: use redis://"
        )
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"TLS handshake with {address} failed: {reason}")
    return rx.ConnectionError(f"TLS handshake with {address} failed: {reason}")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc).strip() or type(exc).__name__
