"""The simulator's options: command-line flags and the validated settings they make."""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path

from .faults import DEFAULT_SCHEDULE, KINDS, FaultSpec, parse_schedule
from .strategies import STRATEGIES, Strategy, parse_strategies

__all__ = ["Settings", "add_arguments", "redacted_url", "settings_from_args"]

# Time in the simulator is compressed: a NAT gateway forgets a flow after 350 s idle and
# Azure's load balancer after 240 s; here the network forgets it after NAT_IDLE seconds,
# and the strategies' idle checks (faaspool's idle_probe_after, default 60 s; redis-py's
# health_check_interval, often 30 s) are scaled to PROBE_AFTER to keep them below it.
NAT_IDLE = 2.0
PROBE_AFTER = 1.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything one simulation needs to know."""

    duration: float = 40.0
    instances: int = 3
    threads: int = 1
    rate: float = 12.0
    timeout: float = 3.0
    lifetime: float = 20.0
    faults: tuple[FaultSpec, ...] = ()
    strategies: tuple[Strategy, ...] = tuple(STRATEGIES.values())
    redis_url: str | None = None
    json_path: Path | None = None
    plot_path: Path | None = None
    seed: int = 1
    nat_idle: float = NAT_IDLE
    probe_after: float = PROBE_AFTER
    progress: str = "auto"  # "auto" (live when a terminal), "live", "plain", "none"

    @property
    def max_connections(self) -> int:
        """faaspool's default pool size per instance on the simulated platform: one
        invocation plus a dedicated connection on Lambda, threads + 1 elsewhere."""
        return 2 if self.threads == 1 else self.threads + 1

    def describe(self) -> dict[str, object]:
        """The settings as plain data (no password: the URL is redacted)."""
        return {
            "duration": self.duration,
            "instances": self.instances,
            "threads": self.threads,
            "platform": "lambda" if self.threads == 1 else "gcf/azure",
            "rate": self.rate,
            "timeout": self.timeout,
            "lifetime": self.lifetime,
            "faults": [{"kind": f.kind, "at": f.at, "options": f.options} for f in self.faults],
            "strategies": [s.name for s in self.strategies],
            "redis": redacted_url(self.redis_url) if self.redis_url else "embedded",
            "seed": self.seed,
            "nat_idle": self.nat_idle,
            "probe_after": self.probe_after,
        }


def redacted_url(url: str) -> str:
    """``url`` with any password shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        user = userinfo.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``faaspool simulate`` flags to ``parser``."""
    d = Settings()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    kinds = "\n".join(
        textwrap.fill(
            f"{name:13} {kind.summary}", 90, initial_indent="  ", subsequent_indent=" " * 16
        )
        for name, kind in KINDS.items()
    )
    strategies = "\n".join(
        textwrap.fill(
            f"{s.name:9} {s.summary}", 90, initial_indent="  ", subsequent_indent=" " * 12
        )
        for s in STRATEGIES.values()
    )
    parser.epilog = (
        f"strategies:\n{strategies}\n\nfaults (--faults 'kind@SECONDS|PERCENT%[:option=value]',"
        f" comma-separated; 'none' for none):\n{kinds}\n\ndefault schedule:\n  {DEFAULT_SCHEDULE}"
    )
    add = parser.add_argument
    # fmt: off
    add("--duration", type=_positive_float, default=d.duration, metavar="SECONDS",
        help=f"how long invocations arrive (default {d.duration:g})")
    add("--instances", type=_positive_int, default=d.instances, metavar="N",
        help=f"instances per strategy (default {d.instances})")
    add("--threads", type=_positive_int, default=d.threads, metavar="T",
        help="invocations per instance at once: 1 is Lambda; more is Cloud Functions / "
        "Azure (default 1)")
    add("--rate", type=_positive_float, default=d.rate, metavar="PER_SECOND",
        help=f"invocations per second per strategy, Poisson arrivals (default {d.rate:g})")
    add("--timeout", type=_positive_float, default=d.timeout, metavar="SECONDS",
        help=f"the function's timeout, each invocation's deadline (default {d.timeout:g})")
    add("--lifetime", type=float, default=d.lifetime, metavar="SECONDS",
        help=f"mean life of an instance before it is recycled; 0 never (default {d.lifetime:g})")
    add("--faults", default="default", metavar="SCHEDULE",
        help="the fault schedule (see below; default 'default')")
    add("--strategies", default="all", metavar="LIST",
        help=f"comma-separated, from {', '.join(STRATEGIES)} (default all)")
    add("--redis-url", default=None, metavar="URL",
        help="a redis:// server to use instead of private embedded ones (server-side "
        "faults are then skipped)")
    add("--json", dest="json_path", type=Path, default=None, metavar="FILE",
        help="write the raw figures as JSON")
    add("--plot", dest="plot_path", type=Path, default=None, metavar="FILE.png",
        help="draw latency over time per strategy, faults marked (needs matplotlib)")
    add("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    add("--progress", choices=("auto", "live", "plain", "none"), default="auto",
        help="live table (needs rich), plain lines, or nothing (default: live on a terminal)")
    # fmt: on


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate the parsed flags; raises ValueError with a message for the user."""
    if args.lifetime < 0:
        raise ValueError("--lifetime must not be negative")
    if args.instances > 64 or args.threads > 64:
        raise ValueError("--instances and --threads are at most 64 each")
    if args.plot_path is not None and args.plot_path.suffix.lower() != ".png":
        raise ValueError("--plot writes a PNG: give a file name ending in .png")
    faults = parse_schedule(args.faults, args.duration, NAT_IDLE)
    strategies = parse_strategies(args.strategies)
    return Settings(
        duration=float(args.duration),
        instances=int(args.instances),
        threads=int(args.threads),
        rate=float(args.rate),
        timeout=float(args.timeout),
        lifetime=float(args.lifetime),
        faults=tuple(faults),
        strategies=tuple(strategies),
        redis_url=args.redis_url,
        json_path=args.json_path,
        plot_path=args.plot_path,
        seed=int(args.seed),
        progress=args.progress,
    )
