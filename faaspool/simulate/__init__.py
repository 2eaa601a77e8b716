"""``faaspool simulate``: a local FaaS fleet against Redis, with the faults production brings.

Each strategy (connect per invocation, a module-global redis-py client, a tuned one, and
faaspool) runs as its own fleet of instance processes against its own Redis through a
simulated network, on the same arrivals and the same fault schedule; the report compares
what each one surfaced to the handler, wrote twice, held open and leaked.

Only argument parsing lives here: the simulator loads when the subcommand runs, so
``import faaspool`` and ``faaspool --help`` stay cheap.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from .settings import add_arguments as _add_arguments

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``faaspool simulate`` options to ``parser``."""
    _add_arguments(parser)
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 when faaspool misses one of its targets",
    )


def run(args: argparse.Namespace) -> int:
    """Run the simulation the options describe; print the report. Returns the exit status."""
    from .settings import settings_from_args

    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"faaspool simulate: {exc}", file=sys.stderr)
        return 2
    if settings.plot_path is not None and importlib.util.find_spec("matplotlib") is None:
        print(
            "faaspool simulate: --plot needs matplotlib: pip install 'faaspool[plot]' "
            "(or pip install matplotlib)",
            file=sys.stderr,
        )
        return 2
    mode = settings.progress
    has_rich = importlib.util.find_spec("rich") is not None
    if mode == "live" and not has_rich:
        print(
            "faaspool simulate: --progress live needs rich: pip install 'faaspool[cli]'",
            file=sys.stderr,
        )
        return 2
    if mode == "auto":
        mode = "live" if has_rich and sys.stderr.isatty() else "plain"

    from ..embedded import RedisServerError
    from .fleet import FleetError
    from .network import NetworkError
    from .report import (
        LiveProgress,
        PlainProgress,
        check_targets,
        format_report,
        write_json,
        write_plot,
    )
    from .runner import simulate

    try:
        if mode == "live":
            with LiveProgress() as live:
                results = simulate(settings, live)
        else:
            results = simulate(settings, PlainProgress() if mode == "plain" else None)
    except KeyboardInterrupt:
        print(
            "faaspool simulate: interrupted; every process it started is stopped", file=sys.stderr
        )
        return 130
    except (RedisServerError, FleetError, NetworkError, TimeoutError) as exc:
        print(f"faaspool simulate: {exc}", file=sys.stderr)
        return 1
    print(format_report(results))
    if settings.json_path is not None:
        write_json(results, settings.json_path)
        print(f"\nraw figures: {settings.json_path}")
    if settings.plot_path is not None:
        write_plot(results, settings.plot_path)
        print(f"latency plot: {settings.plot_path}")
    if getattr(args, "check", False) and not all(ok for ok, _ in check_targets(results)):
        return 1
    return 0
