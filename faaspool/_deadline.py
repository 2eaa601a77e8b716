"""Deadline arithmetic: how long the next wait may take, given the invocation's deadline and
the configuration. Shared by the sync and async layers; no I/O."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.exceptions as rx

from . import _policy
from ._commands import BLOCKING
from ._config import Config
from ._errors import DeadlineExceeded
from ._stats import counters

BLOCKING_NAMES = frozenset(BLOCKING) | frozenset(n.lower() for n in BLOCKING)


def budget(scope: Any, config: Config) -> float | None:
    """Seconds the next wait may take, or None without a deadline.

    Raises `DeadlineExceeded` when the deadline (minus the margin) has already passed.
    """
    if scope is None or scope.deadline is None:
        return None
    left: float = scope.deadline - config.deadline_margin - time.monotonic()
    if left <= 0:
        counters.deadline_hits += 1
        raise DeadlineExceeded(
            f"the invocation's deadline passed before {config.address} could be used"
        )
    return left


def remaining(scope: Any, config: Config) -> float | None:
    """Like `budget`, but never raises: negative once the deadline has passed."""
    if scope is None or scope.deadline is None:
        return None
    left: float = scope.deadline - config.deadline_margin - time.monotonic()
    return left


def clip(timeout: float | None, limit: float | None) -> float | None:
    """The shorter of a configured timeout and the budget (None means unbounded)."""
    if limit is None:
        return timeout
    return limit if timeout is None or limit < timeout else timeout


def command_timeout(config: Config, args: Sequence[Any], limit: float | None) -> float | None:
    """The read timeout for one command: ``socket_timeout`` plus any block time it asks
    for, clipped by the budget."""
    timeout: float | None = config.socket_timeout
    if args[0] in BLOCKING_NAMES:
        name = _policy.command_name(args)
        block = _policy.block_seconds(name, args[1:])
        timeout = None if block is None else config.socket_timeout + block
    return clip(timeout, limit)


def apply(conn: Any, config: Config, args: Sequence[Any], limit: float | None) -> None:
    """Set ``conn``'s connect budget and read timeout for the command ``args``."""
    conn.set_budget(limit)
    conn.set_timeout(command_timeout(config, args, limit))


def as_deadline(error: BaseException, limit: float | None, config: Config) -> BaseException:
    """Return ``error``, or raise `DeadlineExceeded` if it is a timeout the deadline caused."""
    if limit is not None and isinstance(error, rx.TimeoutError) and limit < config.socket_timeout:
        counters.deadline_hits += 1
        raise DeadlineExceeded(
            f"the invocation's deadline ran out waiting for {config.address} ({error})"
        ) from error
    return error
