"""What the user sees: live progress while the run goes, then a plain summary table, the
faults as they happened, faaspool's targets checked, and optionally JSON and a plot."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .faults import FaultEvent
from .metrics import Summary
from .runner import Results, Snapshot

__all__ = [
    "LiveProgress",
    "PlainProgress",
    "PlotUnavailable",
    "check_targets",
    "format_events",
    "format_report",
    "format_table",
    "write_json",
    "write_plot",
]

WARM_P50_TOLERANCE = 0.05

COLUMNS: tuple[tuple[str, str], ...] = (
    ("strategy", "strategy"),
    ("invocations", "invocations"),
    ("errors_read_safe", "read/SET errors"),
    ("errors_write", "INCR errors"),
    ("applied_twice", "applied twice"),
    ("p50_warm_ms", "p50 warm"),
    ("p99_ms", "p99"),
    ("peak_connections", "peak conns"),
    ("connects", "connects"),
    ("leaked", "leaked"),
    ("past_deadline", "past deadline"),
)


def _cell(key: str, summary: Summary) -> str:
    value: Any = getattr(summary, key)
    if key.endswith("_ms"):
        return "-" if value is None else f"{value:.2f} ms"
    if key == "errors_write" and summary.ambiguous_reported:
        return f"{value} ({summary.ambiguous_reported} reported)"
    return str(value)


def format_table(summaries: Sequence[Summary], markdown: bool = False) -> str:
    """The summary table, as aligned plain text or as a Markdown table."""
    headers = [title for _, title in COLUMNS]
    rows = [[_cell(key, s) for key, _ in COLUMNS] for s in summaries]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def format_events(events: Sequence[FaultEvent]) -> str:
    """One line per fault step and strategy outcome."""
    lines = []
    for event in events:
        outcomes = {v for v in event.outcomes.values()}
        if len(outcomes) == 1:
            detail = outcomes.pop()
        else:
            detail = "; ".join(f"{k}: {v}" for k, v in event.outcomes.items())
        lines.append(f"  {event.at:6.1f} s  {event.kind} ({event.phase}): {detail}")
    return "\n".join(lines) or "  (none)"


def check_targets(results: Results) -> list[tuple[bool, str]]:
    """faaspool's targets, each with whether this run met it. Empty without faaspool."""
    try:
        f = results.summary("faaspool")
    except KeyError:
        return []
    limit = results.settings.instances * results.settings.max_connections
    checks = [
        (f.errors_read_safe == 0, f"errors surfaced on reads and SETs: {f.errors_read_safe}"),
        (f.applied_twice == 0, f"writes applied twice: {f.applied_twice}"),
        (f.leaked == 0, f"leaked connections: {f.leaked}"),
        (f.past_deadline == 0, f"invocations past their deadline: {f.past_deadline}"),
        (
            f.peak_connections <= limit,
            f"peak server connections {f.peak_connections} <= instances x max_connections "
            f"= {results.settings.instances} x {results.settings.max_connections} = {limit}",
        ),
    ]
    try:
        g = results.summary("global")
    except KeyError:
        return checks
    if f.p50_warm_ms is not None and g.p50_warm_ms:
        ratio = f.p50_warm_ms / g.p50_warm_ms
        checks.append(
            (
                ratio <= 1 + WARM_P50_TOLERANCE,
                f"warm p50 {f.p50_warm_ms:.2f} ms vs module-global {g.p50_warm_ms:.2f} ms: "
                f"{ratio:.2f}x (target <= {1 + WARM_P50_TOLERANCE:.2f}x)",
            )
        )
    return checks


def format_report(results: Results) -> str:
    """The plain summary printed at the end of a run."""
    s = results.settings
    shape = "Lambda, one invocation at a time" if s.threads == 1 else f"{s.threads} threads"
    head = (
        f"faaspool simulate: {s.duration:g} s, {s.instances} instances per strategy ({shape}), "
        f"{s.rate:g} invocations/s per strategy, {s.timeout:g} s timeout, seed {s.seed}\n"
        f"server: {results.server}"
    )
    parts = [
        head,
        "",
        format_table(results.summaries),
        "",
        "faults:",
        format_events(results.events),
    ]
    notes = []
    for summary in results.summaries:
        if summary.ambiguous_reported:
            notes.append(
                f"{summary.strategy}: {summary.ambiguous_reported} INCR(s) whose reply was lost "
                "raised AmbiguousWriteError and were not sent again"
            )
        if summary.acknowledged_lost:
            notes.append(
                f"{summary.strategy}: {summary.acknowledged_lost} INCR(s) acknowledged to the "
                "handler are missing on the server"
            )
        if summary.killed:
            notes.append(
                f"{summary.strategy}: {summary.killed} invocation(s) hung until the platform "
                "killed the instance at the deadline"
            )
    if notes:
        parts += ["", "notes:", *(f"  {n}" for n in notes)]
    targets = check_targets(results)
    if targets:
        parts += ["", "faaspool targets:"]
        parts += [f"  [{'ok' if ok else 'MISSED'}] {text}" for ok, text in targets]
    parts += [
        "",
        "read/SET errors: GET or SET failures the handler saw; INCR errors: failed INCRs "
        '("reported": AmbiguousWriteError,',
        "the reply was lost and the write not repeated); applied twice: INCR keys holding 2 "
        "on the server; peak conns / connects:",
        "connections open at once / opened, as the server saw them; leaked: connections left "
        "checked out after an invocation.",
    ]
    return "\n".join(parts)


def write_json(results: Results, path: Path) -> None:
    path.write_text(json.dumps(results.as_dict(), indent=1) + "\n")


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def write_plot(results: Results, path: Path) -> None:
    """Latency over time, one panel per strategy, fault steps marked."""
    # Loaded by name: matplotlib is optional, and type-checking must not need it.
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'faaspool[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    line = importlib.import_module("matplotlib.lines").Line2D

    names = [s.strategy for s in results.summaries]
    fig, axes = plt.subplots(
        len(names),
        1,
        sharex=True,
        sharey=True,
        figsize=(11, 2.1 * len(names) + 0.8),
        squeeze=False,
    )
    starts = [e for e in results.events if e.phase == "start"]
    for axis, name in zip(axes[:, 0], names, strict=True):
        records = results.records.get(name, [])
        ok = [(r.at, r.duration * 1000) for r in records if r.ok]
        bad = [(r.at, r.duration * 1000) for r in records if not r.ok]
        if ok:
            axis.scatter(*zip(*ok, strict=True), s=4, color="tab:blue", label="ok")
        if bad:
            axis.scatter(*zip(*bad, strict=True), s=14, marker="x", color="tab:red", label="error")
        for event in starts:
            axis.axvline(event.at, color="grey", linestyle=":", linewidth=1)
        axis.set_yscale("log")
        axis.set_ylabel("ms")
        axis.set_title(name, loc="left", fontsize=10)
        axis.grid(True, axis="y", alpha=0.3)
    top = axes[0, 0]
    labelled = -10.0
    for event in starts:
        # Steps of one fault (reply-lost arms one drop at a time) get one label.
        if event.at - labelled < 1.0:
            continue
        labelled = event.at
        top.annotate(
            event.kind, (event.at, 1.0), xycoords=("data", "axes fraction"),
            rotation=90, fontsize=7, va="top", ha="right", color="dimgrey",
        )  # fmt: skip
    axes[-1, 0].set_xlabel("seconds since start")
    legend = [
        line([], [], marker="o", linestyle="", markersize=3, color="tab:blue", label="ok"),
        line([], [], marker="x", linestyle="", color="tab:red", label="error"),
        line([], [], linestyle=":", color="grey", label="fault"),
    ]
    fig.legend(handles=legend, loc="upper right")
    fig.suptitle("faaspool simulate: invocation latency, faults marked")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


class PlainProgress:
    """A line every few seconds (for logs and pipes)."""

    def __init__(self, stream: IO[str] | None = None, every: float = 5.0) -> None:
        self._stream = stream or sys.stderr
        self._every = every
        self._next = 0.0
        self._events = 0

    def update(self, snapshot: Snapshot) -> None:
        for event in snapshot.events[self._events :]:
            self._stream.write(f"[{event.at:5.1f} s] fault {event.kind} ({event.phase})\n")
        self._events = len(snapshot.events)
        if snapshot.elapsed < self._next:
            return
        self._next = snapshot.elapsed + self._every
        parts = [f"{r['strategy']} {r['invocations']} inv {r['errors']} err" for r in snapshot.rows]
        self._stream.write(f"[{snapshot.elapsed:5.1f} s] " + ", ".join(parts) + "\n")
        self._stream.flush()


class LiveProgress:
    """A live rich table; use as a context manager."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(stderr=True)
        self._live = Live(console=self._console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._live.__exit__(None, None, None)

    def update(self, snapshot: Snapshot) -> None:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False)
        for title in ("strategy", "invocations", "errors", "past deadline", "p50 (recent)",
                      "conns open", "peak", "connects"):  # fmt: skip
            table.add_column(title, justify="left" if title == "strategy" else "right")
        for row in snapshot.rows:
            p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f} ms"
            errors = str(row["errors"])
            table.add_row(
                row["strategy"],
                str(row["invocations"]),
                Text(errors, style="red" if row["errors"] else ""),
                str(row["past_deadline"]),
                p50,
                str(row["open"]),
                str(row["peak"]),
                str(row["connects"]),
            )
        elapsed = min(snapshot.elapsed, snapshot.duration)
        head = Table.grid(padding=(0, 2))
        head.add_row(
            Text(f"faaspool simulate  {elapsed:5.1f} / {snapshot.duration:g} s"),
            ProgressBar(total=snapshot.duration, completed=elapsed, width=40),
        )
        recent = snapshot.events[-4:]
        faults = Text(
            "\n".join(f"{e.at:5.1f} s  {e.kind} ({e.phase})" for e in recent) or "no fault yet",
            style="dim",
        )
        self._live.update(Group(head, Text(), table, Text(), faults), refresh=True)
