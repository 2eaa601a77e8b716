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
    """Seconds the next wait may take, or None when the configured timeouts already fit
    inside what is left (or there is no deadline): then nothing needs clipping.

    Raises `DeadlineExceeded` when the deadline (minus the margin) has already passed.
    """
    if scope is None or scope.deadline is None:
        return None
    left: float = scope.deadline - config.deadline_margin - time.monotonic()
    if left >= config.longest_wait:
        return None
    if left <= 0:
        counters.deadline_hits += 1
        raise DeadlineExceeded(
            f"the invocation's deadline passed before {config.address} could be used"
        )
    return left


def command_budget(scope: Any, config: Config, first: Any) -> float | None:
    """`budget` for a command whose first word is ``first``: a blocking command may wait
    longer than any configured timeout, so it is always bounded by what is left."""
    if first not in BLOCKING_NAMES:
        return budget(scope, config)
    left = remaining(scope, config)
    if left is not None and left <= 0:
        return budget(scope, config)  # raises DeadlineExceeded
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
    """Set ``conn``'s connect budget and read timeout for the command ``args``.

    Under a deadline the timeout may stay within half the margin of the budget: it still
    fires before the deadline, and the socket is not re-armed on every command.
    """
    conn.set_budget(limit)
    slack = config.deadline_margin / 2 if limit is not None else 0.0
    conn.set_timeout(command_timeout(config, args, limit), slack)




def as_deadline(error: BaseException, scope: Any, config: Config) -> BaseException:
    """Return ``error``, or raise `DeadlineExceeded` if it is a timeout the deadline caused."""
    if not isinstance(error, rx.TimeoutError):
        return error
    left = remaining(scope, config)
    # A timeout that fires this close to the deadline (minus the margin) was the deadline's:
    # `apply` lets a socket's timeout sit within half the margin of the budget.
    if left is not None and left <= config.deadline_margin / 2 + 0.005:
        counters.deadline_hits += 1
        raise DeadlineExceeded(
            f"the invocation's deadline ran out waiting for {config.address} ({error})"
        ) from error
    return error
