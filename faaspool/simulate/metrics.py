"""Figures per strategy: what each invocation did, and what the server and network saw.

Pure: records in, summaries out. Latencies are measured inside the instance around the
handler call, so queueing and thawing are not counted; an invocation killed by the
platform counts with the time it ran until the kill.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .strategies._workload import UNSAFE_WRITE

__all__ = ["Record", "Summary", "percentile", "summarize"]

KILLED = "killed by the platform"


@dataclasses.dataclass
class Record:
    """One invocation, as its instance (or the platform) reported it."""

    id: int
    instance: str
    at: float  # seconds since the run's start, when the handler began
    duration: float
    ok: bool
    cold: bool
    op: str | None = None  # the workload step that failed
    error: str | None = None  # its exception's class name
    message: str = ""
    killed: bool = False  # the platform killed the instance at the deadline
    late: bool = False  # the handler returned after its deadline


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclasses.dataclass
class Summary:
    """One strategy's figures for the report; durations in milliseconds."""

    strategy: str
    invocations: int
    ok: int
    cold_starts: int
    errors_read_safe: int  # GET or SET failed (or the handler itself)
    errors_write: int  # the INCR failed
    ambiguous_reported: int  # of those, AmbiguousWriteError: reported, never re-sent
    killed: int
    past_deadline: int
    throttled: int
    p50_warm_ms: float | None
    p99_ms: float | None
    p50_cold_ms: float | None
    applied_twice: int  # INCR keys holding 2 or more on the server
    acknowledged_lost: int  # INCRs the handler saw succeed that the server does not hold
    peak_connections: int
    connects: int
    leaked: int
    orphaned_at_end: int
    error_classes: dict[str, int]
    faaspool_stats: dict[str, int] | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def summarize(
    strategy: str,
    records: Iterable[Record],
    *,
    incr_values: Mapping[int, int],
    link: Mapping[str, int],
    leaked: int,
    held_at_end: int,
    throttled: int,
    faaspool_stats: dict[str, int] | None,
) -> Summary:
    """Fold one strategy's records and the server's and network's counts into a Summary."""
    records = list(records)
    failed = [r for r in records if not r.ok]
    write_errors = [r for r in failed if r.op == UNSAFE_WRITE]
    warm = [r.duration * 1000 for r in records if r.ok and not r.cold]
    cold = [r.duration * 1000 for r in records if r.ok and r.cold]
    every = [r.duration * 1000 for r in records]
    classes = Counter(KILLED if r.killed else f"{r.op}: {r.error}" for r in failed)
    return Summary(
        strategy=strategy,
        invocations=len(records),
        ok=len(records) - len(failed),
        cold_starts=sum(1 for r in records if r.cold),
        errors_read_safe=sum(1 for r in failed if not r.killed and r.op != UNSAFE_WRITE),
        errors_write=len(write_errors),
        ambiguous_reported=sum(1 for r in write_errors if r.error == "AmbiguousWriteError"),
        killed=sum(1 for r in records if r.killed),
        past_deadline=sum(1 for r in records if r.killed or r.late),
        throttled=throttled,
        p50_warm_ms=percentile(warm, 50),
        p99_ms=percentile(every, 99),
        p50_cold_ms=percentile(cold, 50),
        applied_twice=sum(1 for v in incr_values.values() if v >= 2),
        acknowledged_lost=sum(1 for r in records if r.ok and incr_values.get(r.id, 0) == 0),
        peak_connections=int(link.get("peak_open", 0)),
        connects=int(link.get("connects", 0)),
        leaked=leaked,
        orphaned_at_end=max(0, int(link.get("open", 0)) - held_at_end),
        error_classes=dict(classes.most_common()),
        faaspool_stats=faaspool_stats,
    )
