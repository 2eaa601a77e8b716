"""The fleet simulator's figures, written to bench/README.md.

    make bench        (or: python bench/simulate.py [--duration 40] [--seed 1])

Runs `faaspool simulate` with its defaults (four strategies on the default fault schedule,
each against its own embedded redis-server), prints the report, and rewrites
bench/README.md with the table, the faults as they happened, and faaspool's targets.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from pathlib import Path

import _common as c  # noqa: F401  (puts the repository on sys.path)

from faaspool.simulate import add_arguments
from faaspool.simulate.report import (
    PlainProgress,
    check_targets,
    format_events,
    format_report,
    format_table,
)
from faaspool.simulate.runner import Results, simulate
from faaspool.simulate.settings import settings_from_args
from faaspool.simulate.strategies import STRATEGIES

README = Path(__file__).resolve().parent / "README.md"


def render(results: Results) -> str:
    s = results.settings
    shape = "Lambda: one invocation at a time" if s.threads == 1 else f"{s.threads} threads"
    strategies = "\n".join(
        f"- **{x.name}**: {x.summary}" for x in STRATEGIES.values() if x in s.strategies
    )
    targets = "\n".join(
        f"- {'met' if ok else '**missed**'}: {text}" for ok, text in check_targets(results)
    )
    machine = (
        f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    return f"""# Benchmarks

`make bench` runs `bench/core.py` (the sync core against redis-py in one process: warm
latency, cold connect, the next command after each fault, import cost; it prints its
tables, and the top-level README quotes them) and `bench/simulate.py`, which runs the fleet
simulator and rewrites this file. Nothing here is asserted by the tests.

## Fleet simulator: latest run

`faaspool simulate --duration {s.duration:g} --seed {s.seed}` (the defaults), run
{results.started_at} on {machine}. {s.instances} instances per strategy ({shape}),
{s.rate:g} invocations/s per strategy on the same Poisson arrivals, {s.timeout:g} s
timeout, instances recycled after about {s.lifetime:g} s. Server: {results.server}.

{format_table(results.summaries, markdown=True)}

Strategies:

{strategies}

Faults, as they happened (every strategy at the same moment):

```
{format_events(results.events)}
```

faaspool's targets:

{targets}

What the columns mean: *read/SET errors* are GET or SET failures the handler saw; *INCR
errors* are failed INCRs ("reported": `AmbiguousWriteError`, the reply was lost and the
write was not sent again); *applied twice* counts INCR keys holding 2 or more on the
server (each invocation increments its own key once); *p50 warm* is the median handler
time of invocations after an instance's first, *p99* covers every invocation; *peak conns*
and *connects* are the connections open at once and opened, as the server saw them;
*leaked* are connections still checked out after an invocation ended with nothing else
running; *past deadline* counts invocations that returned after their deadline or were
killed at it. Time is compressed: the network forgets flows idle for {s.nat_idle:g} s (a NAT
gateway: 350 s), so faaspool's `idle_probe_after` and the tuned client's
`health_check_interval` are {s.probe_after:g} s. `docs/simulator.md` explains the rest.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--output", type=Path, default=README, help="default bench/README.md")
    args = parser.parse_args()
    settings = dataclasses.replace(settings_from_args(args), progress="plain")
    results = simulate(settings, PlainProgress())
    print(format_report(results))
    args.output.write_text(render(results))
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
