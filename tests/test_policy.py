"""Retry decisions: pure, so checked exhaustively here and by the fault scenarios live."""

from __future__ import annotations

import pytest
import redis.exceptions as rx

from faaspool import AmbiguousWriteError, DeadlineExceeded
from faaspool._config import resolve
from faaspool._policy import Action, Attempts, backoff_delay, block_seconds, command_name, decide


@pytest.mark.parametrize(
    ("error", "names", "sent", "action"),
    [
        (rx.ConnectionError("x"), ["INCR"], False, Action.RETRY),
        (rx.ConnectionError("x"), ["INCR"], True, Action.AMBIGUOUS),
        (rx.TimeoutError("x"), ["GET"], True, Action.RETRY),
        (rx.TimeoutError("x"), ["GET", "INCR"], True, Action.AMBIGUOUS),
        (rx.ConnectionError("x"), ["CLIENT LIST"], True, Action.RETRY),
        (rx.AuthenticationError("x"), ["GET"], False, Action.RAISE),
        (rx.BusyLoadingError("x"), ["INCR"], True, Action.BACKOFF),
        (rx.ConnectionError("max number of clients reached"), ["SET"], True, Action.BACKOFF),
        (rx.ResponseError("BUSY Redis is busy running a script"), ["SET"], True, Action.BACKOFF),
        (rx.ReadOnlyError("You can't write"), ["SET"], True, Action.FAILOVER),
        (rx.ResponseError("WRONGTYPE"), ["GET"], True, Action.RAISE),
    ],
)
def test_decide(error: Exception, names: list[str], sent: bool, action: Action) -> None:
    assert decide(error, names=names, sent=sent) is action


def test_allow_list_extends_safe_commands() -> None:
    err = rx.ConnectionError("x")
    assert decide(err, names=["SET"], sent=True, extra_safe=frozenset({"SET"})) is Action.RETRY


def test_command_names_are_canonical() -> None:
    assert command_name(("get", "k")) == "GET"
    assert command_name((b"client", b"list")) == "CLIENT LIST"
    assert command_name(("CLIENT LIST",)) == "CLIENT LIST"


def test_block_seconds() -> None:
    assert block_seconds("GET", ["k"]) == 0.0
    assert block_seconds("BLPOP", ["a", "b", 2]) == 2.0
    assert block_seconds("BLPOP", ["a", 0]) is None
    assert block_seconds("XREAD", ["BLOCK", 1500, "STREAMS", "s", "$"]) == 1.5
    assert block_seconds("XREAD", ["COUNT", 1, "STREAMS", "s", "$"]) == 0.0
    assert block_seconds("WAIT", [1, 250]) == 0.25


def test_backoff_is_bounded() -> None:
    for attempt in range(12):
        for r in (0.0, 0.5, 1.0):
            assert 0.01 <= backoff_delay(attempt, 0.02, 0.5, r) <= 0.5


def test_attempts_raise_ambiguous_with_the_command_name() -> None:
    attempts = Attempts(resolve("redis://h", environ={}))
    with pytest.raises(AmbiguousWriteError, match="INCR") as info:
        attempts.after_failure(
            rx.ConnectionError("gone"), names=["INCR"], sent=True, now=0.0, budget=None
        )
    assert info.value.command == "INCR"


def test_safe_resends_stop_after_max_retries() -> None:
    attempts = Attempts(resolve("redis://h", {"max_retries": 2}, environ={}))
    err = rx.ConnectionError("reset")
    assert attempts.after_failure(err, names=["GET"], sent=True, now=0, budget=None)[1] == 0
    attempts.after_failure(err, names=["GET"], sent=True, now=0, budget=None)
    with pytest.raises(rx.ConnectionError, match="reset"):
        attempts.after_failure(err, names=["GET"], sent=True, now=0, budget=None)


def test_refused_connections_are_retried_inside_the_window() -> None:
    attempts = Attempts(resolve("redis://h", {"busy_retry_window": 1.0}, environ={}))
    err = rx.ConnectionError("Connection refused")
    action, delay = attempts.after_failure(err, names=["INCR"], sent=False, now=0, budget=None)
    assert (action, delay) == (Action.RETRY, 0.0)  # at once: a fresh connect may just work
    for now in (0.0, 0.1, 0.5):
        action, delay = attempts.after_failure(
            err, names=["INCR"], sent=False, now=now, budget=None
        )
        assert action is Action.BACKOFF and delay > 0
    with pytest.raises(rx.ConnectionError, match="still so after"):
        attempts.after_failure(err, names=["INCR"], sent=False, now=1.5, budget=None)


def test_busy_server_backs_off_inside_its_window_then_fails_clearly() -> None:
    attempts = Attempts(resolve("redis://h", {"busy_retry_window": 1.0}, environ={}))
    err = rx.BusyLoadingError("Redis is loading the dataset in memory")
    action, delay = attempts.after_failure(err, names=["GET"], sent=True, now=0.0, budget=None)
    assert action is Action.BACKOFF and delay > 0
    with pytest.raises(rx.BusyLoadingError, match="still so after"):
        attempts.after_failure(err, names=["GET"], sent=True, now=5.0, budget=None)


def test_no_time_left_for_a_retry_is_a_deadline() -> None:
    attempts = Attempts(resolve("redis://h", {"busy_retry_window": 10}, environ={}))
    err = rx.BusyLoadingError("loading")
    with pytest.raises((DeadlineExceeded, rx.BusyLoadingError)):
        attempts.after_failure(err, names=["GET"], sent=True, now=0.0, budget=0.001)
