"""Retry, failover and backoff decisions. Pure functions: no I/O, shared by sync and async.

The rule that matters most: a command whose bytes may have reached the server is sent
again only if repeating it cannot change data. Anything else surfaces as
`AmbiguousWriteError` and is never replayed.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from typing import Any

import redis.exceptions as rx

from ._commands import BLOCKING, CLEARS, DB, SAFE_TO_REPEAT, SESSION
from ._errors import AmbiguousWriteError, DeadlineExceeded, TLSError
from ._stats import counters


class Action(enum.Enum):
    """What to do after a command failed."""

    RETRY = "retry"  # reconnect and send again at once
    BACKOFF = "backoff"  # the server is busy or loading: wait, then send again
    FAILOVER = "failover"  # drop every pooled socket (a demoted primary), then send again
    AMBIGUOUS = "ambiguous"  # sent, reply lost, not safe to repeat
    RAISE = "raise"  # not retryable


# redis-py strips known error codes from the message; "BUSY" (a long script) it keeps.
_BUSY_ERRORS = (rx.BusyLoadingError, rx.MasterDownError, rx.TryAgainError)


def command_name(args: Sequence[Any]) -> str:
    """The canonical upper-case name of a command, with its subcommand if joined."""
    first = args[0]
    if isinstance(first, bytes | bytearray | memoryview):
        first = bytes(first).decode("utf-8", "replace")
    name = str(first).upper()
    if name in _CONTAINERS and len(args) > 1 and " " not in name:
        sub = args[1]
        if isinstance(sub, bytes | bytearray | memoryview):
            sub = bytes(sub).decode("utf-8", "replace")
        return f"{name} {str(sub).upper()}"
    return name


_CONTAINERS = frozenset(
    {"CLIENT", "CONFIG", "OBJECT", "MEMORY", "XINFO", "COMMAND", "PUBSUB", "SCRIPT",
     "FUNCTION", "SLOWLOG", "ACL", "CLUSTER"}
)


def is_safe_to_repeat(name: str, extra: frozenset[str] = frozenset()) -> bool:
    """True when sending ``name`` twice leaves the data as sending it once would."""
    return name in SAFE_TO_REPEAT or name in extra


def is_busy(error: BaseException) -> bool:
    """A server state that passes by itself: loading, busy script, no primary, full."""
    if isinstance(error, _BUSY_ERRORS):
        return True
    text = str(error)
    if isinstance(error, rx.ConnectionError) and "max number of clients reached" in text:
        return True
    return isinstance(error, rx.ResponseError) and text.startswith("BUSY ")


def decide(
    error: BaseException,
    *,
    names: Sequence[str],
    sent: bool,
    extra_safe: frozenset[str] = frozenset(),
) -> Action:
    """Decide what to do after ``error`` ended an attempt to run the commands ``names``.

    ``sent`` is False only when no byte of the attempt reached the socket.
    """
    if isinstance(error, rx.AuthenticationError | TLSError):
        return Action.RAISE
    if is_busy(error):
        # The server refused the command before running it.
        return Action.BACKOFF
    if isinstance(error, rx.ReadOnlyError):
        return Action.FAILOVER
    if isinstance(error, rx.ConnectionError | rx.TimeoutError):
        if not sent:
            return Action.RETRY
        if all(is_safe_to_repeat(n, extra_safe) for n in names):
            return Action.RETRY
        return Action.AMBIGUOUS
    return Action.RAISE


def backoff_delay(attempt: int, base: float, cap: float, rand: float | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [base/2, min(cap, base * 2**attempt)]."""
    ceiling = min(cap, base * (2 ** max(0, attempt)))
    r = random.random() if rand is None else rand
    return float(base / 2 + r * max(0.0, ceiling - base / 2))


def block_seconds(name: str, args: Sequence[Any]) -> float | None:
    """How long a blocking command may legitimately wait for its reply.

    ``0.0`` for a command that does not block; ``None`` for one that may block forever.
    """
    spec = BLOCKING.get(name)
    if spec is None:
        return 0.0
    index, unit = spec
    try:
        if name in ("XREAD", "XREADGROUP"):
            upper = [str(a).upper() if isinstance(a, str) else a for a in args]
            if "BLOCK" not in upper and b"BLOCK" not in upper:
                return 0.0
            pos = upper.index("BLOCK") if "BLOCK" in upper else upper.index(b"BLOCK")
            raw = args[pos + 1]
        else:
            raw = args[index]
        value = float(raw) * unit
    except (IndexError, ValueError, TypeError):
        return None
    return None if value <= 0 else value


def session_bits(name: str, args: Sequence[Any], db: int, current: int) -> int:
    """The connection's session-state bits after sending command ``name``."""
    cleared = CLEARS.get(name)
    if cleared is not None:
        return current & ~cleared
    bits = SESSION.get(name, 0)
    if bits == DB:
        try:
            return current | DB if int(args[1]) != db else current & ~DB
        except (IndexError, ValueError, TypeError):
            return current | DB
    return current | bits


SESSION_NAMES = frozenset(SESSION) | frozenset(CLEARS)


def tracks_session(first: Any) -> bool:
    """Cheap pre-check on a command's first word: might it change session state?"""
    return first in SESSION_NAMES or first.__class__ is not str or not first.isupper()


def session_after_stack(stack: Sequence[Any], db: int, current: int) -> int:
    """Session bits after a pipeline's queued ``(args, options)`` commands are sent."""
    for args, _ in stack:
        if tracks_session(args[0]):
            name = command_name(args)
            if name in SESSION_NAMES:
                current = session_bits(name, args, db, current)
    return current


class Attempts:
    """The retry budget of one command (or one pipeline): how many times, how long.

    Pure bookkeeping; the sync and async callers do the waiting. `after_failure` returns
    the action and the delay before the next attempt, or raises what the caller must see.
    """

    __slots__ = ("busy_since", "busy_tries", "config", "retries")

    def __init__(self, config: Any) -> None:
        self.config = config
        self.retries = 0
        self.busy_since: float | None = None
        self.busy_tries = 0

    def after_failure(
        self,
        error: BaseException,
        *,
        names: Sequence[str],
        sent: bool,
        now: float,
        budget: float | None,
    ) -> tuple[Action, float]:
        cfg = self.config
        action = decide(error, names=names, sent=sent, extra_safe=cfg.retry_safe_commands)
        if action is Action.RAISE:
            raise error
        if action is Action.AMBIGUOUS:
            counters.ambiguous_writes += 1
            name = " ".join(dict.fromkeys(n for n in names if not is_safe_to_repeat(n)))
            raise AmbiguousWriteError(
                f"{name} was sent to {cfg.address} but the connection failed before its "
                f"reply arrived ({type(error).__name__}: {error}). The server may or may "
                f"not have applied it; faaspool did not send it again.",
                command=name,
            ) from error
        if action is Action.RETRY and not sent and self.retries >= 1:
            # Nothing reached the server, so trying again is always safe; a server that
            # is restarting refuses connections for a moment: wait it out like a busy one.
            action = Action.BACKOFF
        if action is Action.RETRY:
            self.retries += 1
            if self.retries > cfg.max_retries:
                raise error
            delay = 0.0 if self.retries == 1 else backoff_delay(
                self.retries - 2, cfg.backoff_base, cfg.backoff_cap
            )
        else:
            if self.busy_since is None:
                self.busy_since = now
            waited = now - self.busy_since
            window = cfg.busy_retry_window
            if budget is not None:
                window = min(window, waited + budget)
            delay = backoff_delay(self.busy_tries, cfg.backoff_base, cfg.backoff_cap)
            self.busy_tries += 1
            if waited + delay > window:
                raise _still_busy(error, self.busy_tries, waited, cfg) from error
        if budget is not None and delay >= budget:
            raise DeadlineExceeded(
                f"the invocation's deadline left no time to retry after "
                f"{type(error).__name__}: {error}"
            ) from error
        return action, delay


def _still_busy(error: BaseException, tries: int, waited: float, cfg: Any) -> BaseException:
    detail = f"(still so after {tries} attempts over {waited * 1000:.0f} ms)"
    text = str(error)
    if "max number of clients reached" in text:
        text = (
            f"the server at {cfg.address} refused the connection: max number of clients "
            f"reached {detail}. Raise the server's maxclients or lower max_connections "
            f"(now {cfg.max_connections}) across the fleet."
        )
    elif isinstance(error, rx.ReadOnlyError):
        text = (
            f"{text} {detail}: {cfg.address} is still a read-only replica after "
            "reconnecting; check that the address points at the primary"
        )
    else:
        text = f"{text} {detail}"
    try:
        return type(error)(text)
    except Exception:
        return rx.ConnectionError(text)
