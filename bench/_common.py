"""Shared bits of the benchmark scripts: timing loops and table printing."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def sample(call: Callable[[], Any], n: int) -> list[float]:
    """Per-call latencies in microseconds."""
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        call()
        out.append((clock() - start) / 1000)
    return out


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int, n: int) -> dict[str, list[float]]:
    """Alternate the contenders in rounds, so the machine's drift hits each alike; the order
    flips every round, so neither always runs right after the other."""
    results: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls.items())
    for round_no in range(rounds):
        for name, call in order if round_no % 2 == 0 else reversed(order):
            results[name].extend(sample(call, n))
    return results


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a plain-text table."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        line = "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        print(line)
        if n == 0:
            print("-" * len(line))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
