"""Exception classes.

Each faaspool error also subclasses the redis-py error a caller already catches, so an
existing ``except redis.ConnectionError`` keeps working when faaspool is dropped in.
"""

from __future__ import annotations

import redis.exceptions as _rx


class FaaspoolError(_rx.RedisError):
    """Base class of every error faaspool raises itself."""


class ConfigError(FaaspoolError, ValueError):
    """A URL or option is invalid. The message names the option and never holds a secret."""


class PoolExhaustedError(FaaspoolError, _rx.ConnectionError):
    """Every connection of the pool stayed checked out until the wait limit ran out."""


class DeadlineExceeded(FaaspoolError, _rx.TimeoutError):
    """The invocation's remaining time (minus the safety margin) ran out during a wait."""


class TLSError(FaaspoolError, _rx.ConnectionError):
    """A TLS handshake failed for a reason a retry cannot fix: an untrusted or expired
    certificate, a host name mismatch, or a server that does not speak TLS."""


class AmbiguousWriteError(FaaspoolError, _rx.ConnectionError):
    """A command that is not safe to repeat was sent, and its reply was lost.

    The server may or may not have applied it; faaspool never sends it a second time.
    ``command`` holds the command name.
    """

    def __init__(self, message: str, command: str = "") -> None:
        super().__init__(message)
        self.command = command


__all__ = [
    "AmbiguousWriteError",
    "ConfigError",
    "DeadlineExceeded",
    "FaaspoolError",
    "PoolExhaustedError",
    "TLSError",
]
