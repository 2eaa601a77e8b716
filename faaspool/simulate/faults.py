"""The fault schedule: what goes wrong, when, and the thread that makes it happen.

A schedule is a comma-separated list of ``kind@when[:option=value...]``; ``when`` is in
seconds from the start (``12`` or ``12s``) or a share of the run (``30%``). ``default``
is the schedule below, ``none`` an empty one. Every fault hits every strategy at the same
moment (one thread per strategy), so all of them face the same schedule.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = [
    "DEFAULT_SCHEDULE",
    "KINDS",
    "FaultEvent",
    "FaultRunner",
    "FaultSpec",
    "Target",
    "Unsupported",
    "lulls",
    "parse_schedule",
]

# Spaced so that each fault's aftermath (up to a timeout plus a cold start for a client
# that hangs) is over before the next one begins.
DEFAULT_SCHEDULE = (
    "client-kill@10%,idle-timeout@20%,reply-lost@32.5%,restart@42.5%,"
    "failover@52.5%,nat-drop@62.5%,maxclients@85%"
)


_REPLY_LOST_GAP = 0.5


class Unsupported(Exception):
    """This target cannot inject that fault (e.g. restarting a server it does not own)."""


class Target(Protocol):
    """What one strategy's Redis (and its network link) lets the schedule do to it."""

    name: str

    def client_kill(self) -> str: ...
    def set_idle_timeout(self, seconds: int) -> str: ...
    def restart(self) -> str: ...
    def failover(self) -> str: ...
    def set_maxclients_pressure(self, on: bool) -> str: ...
    def set_nat_idle(self, idle: float | None) -> str: ...
    def drop_replies(self, count: int) -> str: ...


@dataclasses.dataclass(frozen=True)
class Kind:
    summary: str
    options: dict[str, float]


KINDS: dict[str, Kind] = {
    "client-kill": Kind("CLIENT KILL TYPE normal: the server closes every client connection", {}),
    "idle-timeout": Kind(
        "the server's `timeout` drops to TIMEOUT s while traffic stops for LULL s", {
            "timeout": 1, "lull": 3.5},
    ),
    "reply-lost": Kind(
        "the replies to the next COUNT INCRs are lost after the server applied them, "
        "and the connection is reset", {"count": 2},
    ),
    "restart": Kind("the server restarts (its data kept, as on a node reboot)", {}),
    "nat-drop": Kind(
        "for HOLD s the network silently forgets flows idle for IDLE s (a NAT gateway or "
        "load balancer) while traffic stops for LULL s",
        {"idle": 0.0, "lull": 2.5, "hold": 4.0},
    ),
    "failover": Kind(
        "the replica is promoted, the endpoint moves to it, the old primary becomes a "
        "read-only replica (writes on its open connections get READONLY)", {},
    ),
    "maxclients": Kind(
        "for HOLD s the server accepts no new connection (maxclients = connections open)",
        {"hold": 2.0},
    ),
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class FaultSpec:
    """One fault of the schedule, ``at`` seconds after the start."""

    kind: str
    at: float
    options: dict[str, float]

    @property
    def label(self) -> str:
        return self.kind

    def option(self, name: str) -> float:
        return self.options[name]


def parse_schedule(text: str, duration: float, nat_idle: float) -> list[FaultSpec]:
    """Parse a schedule for a run of ``duration`` seconds; raises ValueError naming the bad part."""
    text = text.strip()
    if text.lower() == "none" or not text:
        return []
    if text.lower() == "default":
        text = DEFAULT_SCHEDULE
    specs = [
        _parse_one(part.strip(), duration, nat_idle) for part in text.split(",") if part.strip()
    ]
    return sorted(specs, key=lambda s: s.at)


def _parse_one(part: str, duration: float, nat_idle: float) -> FaultSpec:
    head, *option_parts = part.split(":")
    kind_name, sep, when = head.partition("@")
    kind_name = kind_name.strip().lower()
    if kind_name not in KINDS:
        raise ValueError(f"unknown fault {kind_name!r} in {part!r}: choose from {', '.join(KINDS)}")
    if not sep:
        raise ValueError(f"fault {part!r} has no time: write {kind_name}@SECONDS or @PERCENT%")
    at = _parse_when(when.strip(), duration, part)
    kind = KINDS[kind_name]
    options = dict(kind.options)
    for option in option_parts:
        key, eq, value = option.partition("=")
        key = key.strip().lower()
        if not eq or key not in kind.options:
            allowed = ", ".join(kind.options) or "none"
            raise ValueError(f"bad option {option!r} in {part!r} (options: {allowed})")
        try:
            options[key] = float(value)
        except ValueError:
            raise ValueError(f"option {key!r} in {part!r} must be a number") from None
        if options[key] < 0:
            raise ValueError(f"option {key!r} in {part!r} must not be negative")
    if kind_name == "nat-drop" and not options["idle"]:
        options["idle"] = nat_idle
    if kind_name == "idle-timeout" and options["timeout"] < 1:
        raise ValueError(f"option 'timeout' in {part!r} must be at least 1 (seconds)")
    if kind_name == "reply-lost" and options["count"] < 1:
        raise ValueError(f"option 'count' in {part!r} must be at least 1")
    return FaultSpec(kind_name, at, options)


def _parse_when(when: str, duration: float, part: str) -> float:
    try:
        if when.endswith("%"):
            at = float(when[:-1]) / 100 * duration
        else:
            at = float(when.removesuffix("s"))
    except ValueError:
        raise ValueError(
            f"bad time {when!r} in {part!r}: write seconds (12) or a share (30%)"
        ) from None
    if not 0 <= at < duration:
        raise ValueError(f"fault {part!r} is outside the run (0 to {duration:g} s)")
    return at


def lulls(specs: Sequence[FaultSpec]) -> list[tuple[float, float]]:
    """The (start, end) windows in which the schedule stops traffic."""
    return [(s.at, s.at + s.option("lull")) for s in specs if "lull" in s.options]


@dataclasses.dataclass
class FaultEvent:
    """What one step of the schedule did, per strategy (``outcomes``: name -> text)."""

    kind: str
    phase: str  # "start" or "end"
    at: float  # seconds since the run's start, when the step began
    took: float
    outcomes: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


Action = Callable[["Target"], str]


def _steps(spec: FaultSpec) -> list[tuple[float, str, Action]]:
    kind = spec.kind
    if kind == "client-kill":
        return [(spec.at, "start", lambda t: t.client_kill())]
    if kind == "restart":
        return [(spec.at, "start", lambda t: t.restart())]
    if kind == "failover":
        return [(spec.at, "start", lambda t: t.failover())]
    if kind == "reply-lost":
        # One at a time: armed together, a client's re-sent INCR would lose its reply too.
        return [
            (spec.at + i * _REPLY_LOST_GAP, "start", lambda t: t.drop_replies(1))
            for i in range(int(spec.option("count")))
        ]
    if kind == "idle-timeout":
        seconds = int(spec.option("timeout"))
        # Restored once traffic is back, so the server's own clock has acted by then.
        end = spec.at + spec.option("lull") + 0.5
        return [
            (spec.at, "start", lambda t: t.set_idle_timeout(seconds)),
            (end, "end", lambda t: t.set_idle_timeout(0)),
        ]
    if kind == "nat-drop":
        idle = spec.option("idle")
        end = spec.at + max(spec.option("hold"), spec.option("lull"))
        return [
            (spec.at, "start", lambda t: t.set_nat_idle(idle)),
            (end, "end", lambda t: t.set_nat_idle(None)),
        ]
    if kind == "maxclients":
        return [
            (spec.at, "start", lambda t: t.set_maxclients_pressure(True)),
            (spec.at + spec.option("hold"), "end", lambda t: t.set_maxclients_pressure(False)),
        ]
    raise ValueError(f"no steps for fault {kind!r}")


class FaultRunner:
    """Runs the schedule on a thread: each step on every target at once, then logs it."""

    def __init__(self, specs: Sequence[FaultSpec], targets: Sequence[Target]) -> None:
        self._steps = sorted(
            (
                (at, spec.kind, phase, action)
                for spec in specs
                for at, phase, action in _steps(spec)
            ),
            key=lambda step: step[0],
        )
        self._targets = list(targets)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._lock = threading.Lock()
        self.events: list[FaultEvent] = []
        self.error: BaseException | None = None

    def start(self, started: float) -> None:
        """Begin the schedule; ``started`` is the run's `time.monotonic` origin."""
        self._started = started
        self._thread = threading.Thread(target=self._run, name="faaspool-faults", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Skip the steps not yet begun and wait for the current one."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def snapshot(self) -> list[FaultEvent]:
        with self._lock:
            return list(self.events)

    def _run(self) -> None:
        try:
            for at, kind, phase, action in self._steps:
                if self._stop.wait(max(0.0, self._started + at - time.monotonic())):
                    return
                begun = time.monotonic()
                outcomes = self._on_every_target(action)
                event = FaultEvent(
                    kind, phase, begun - self._started, time.monotonic() - begun, outcomes
                )
                with self._lock:
                    self.events.append(event)
        except BaseException as exc:
            self.error = exc

    def _on_every_target(self, action: Action) -> dict[str, str]:
        outcomes: dict[str, str] = {}

        def apply(target: Target) -> None:
            try:
                outcomes[target.name] = action(target)
            except Unsupported as exc:
                outcomes[target.name] = f"skipped: {exc}"
            except Exception as exc:
                outcomes[target.name] = f"failed: {type(exc).__name__}: {exc}"

        threads = [
            threading.Thread(target=apply, args=(t,), name=f"fault-{t.name}", daemon=True)
            for t in self._targets
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60.0)
        for target in self._targets:
            outcomes.setdefault(target.name, "failed: did not finish within 60 s")
        return outcomes
