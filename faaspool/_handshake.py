"""The connection handshake as data: which commands a new connection sends, and how each
reply is judged. Pure, shared by the sync and async connections.

redis-py sends these one at a time (five or six round trips); faaspool pipelines the same
commands, so error types and messages stay identical while the cost is one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.exceptions as rx

# How a reply is judged: raise on error, require "OK", or ignore an error (servers
# before 7.2 answer -ERR to CLIENT SETINFO).
HELLO = "hello"
AUTH = "auth"
SETNAME = "setname"
SETINFO = "setinfo"
SELECT = "select"


def commands(
    *,
    protocol: int,
    credentials: Sequence[str] | None,
    client_name: str | None,
    db: int,
    lib_name: str | None,
    lib_version: str | None,
) -> list[tuple[str, tuple[Any, ...]]]:
    """The handshake, as (kind, command args) pairs, in the order redis-py sends them."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    if credentials and protocol == 3:
        creds = tuple(credentials) if len(credentials) == 2 else ("default", credentials[0])
        out.append((HELLO, ("HELLO", 3, "AUTH", *creds)))
    elif credentials:
        out.append((AUTH, ("AUTH", *credentials)))
    elif protocol == 3:
        out.append((HELLO, ("HELLO", 3)))
    if client_name:
        out.append((SETNAME, ("CLIENT", "SETNAME", client_name)))
    if lib_name:
        out.append((SETINFO, ("CLIENT", "SETINFO", "LIB-NAME", lib_name)))
    if lib_version:
        out.append((SETINFO, ("CLIENT", "SETINFO", "LIB-VER", lib_version)))
    if db:
        out.append((SELECT, ("SELECT", db)))
    return out


def check(kind: str, reply: Any, protocol: int) -> None:
    """Raise what redis-py raises for a bad ``reply`` to a handshake command of ``kind``.

    ``reply`` may be the error instance the parser returned instead of raising.
    """
    if isinstance(reply, rx.ResponseError):
        if kind == SETINFO:
            return
        raise reply
    if kind == HELLO:
        proto = reply.get(b"proto", reply.get("proto")) if isinstance(reply, dict) else None
        if proto is not None and proto != protocol:
            raise rx.ConnectionError("Invalid RESP version")
    elif kind == AUTH:
        if _text(reply) != "OK":
            raise rx.AuthenticationError("Invalid Username or Password")
    elif kind == SETNAME:
        if _text(reply) != "OK":
            raise rx.ConnectionError("Error setting client name")
    elif kind == SELECT and _text(reply) != "OK":
        raise rx.ConnectionError("Invalid Database")


def expects_tls(error: rx.ConnectionError) -> rx.ConnectionError:
    """The error for a plain connection the server closed before answering the handshake."""
    return rx.ConnectionError(
        f"{error}. The server closed the connection before answering the handshake; if "
        "this is a TLS port, the server expects TLS: use rediss://"
    )


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
