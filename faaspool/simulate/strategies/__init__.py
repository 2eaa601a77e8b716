"""The ways of using Redis from a function that the simulator compares.

Each strategy is a handler module that an instance imports once (its cold start) and calls
per invocation, as a FaaS runtime does. A module offers ``handler(event, context)`` and
``connection_pools()`` (the pools whose checked-out connections count as leaks).
"""

from __future__ import annotations

import dataclasses

__all__ = ["STRATEGIES", "Strategy", "parse_strategies"]


@dataclasses.dataclass(frozen=True)
class Strategy:
    """A named handler module and a one-line account of what it does."""

    name: str
    module: str
    summary: str


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "naive",
            "faaspool.simulate.strategies.naive",
            "a new redis.Redis per invocation, closed at the end",
        ),
        Strategy(
            "global",
            "faaspool.simulate.strategies.module_global",
            "one redis.Redis at module scope, redis-py defaults (the usual advice)",
        ),
        Strategy(
            "tuned",
            "faaspool.simulate.strategies.tuned",
            "module scope, health_check_interval, 1 s timeouts, 3 retries with backoff",
        ),
        Strategy(
            "faaspool",
            "faaspool.simulate.strategies.with_faaspool",
            "faaspool.get_redis() at module scope, each invocation in "
            "faaspool.invocation(timeout=remaining time)",
        ),
    )
}


def parse_strategies(text: str) -> list[Strategy]:
    """``"all"`` or a comma-separated list of names, in the order given."""
    if text.strip().lower() == "all":
        return list(STRATEGIES.values())
    chosen: list[Strategy] = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in STRATEGIES:
            known = ", ".join(STRATEGIES)
            raise ValueError(f"unknown strategy {name!r}: choose from {known} (or all)")
        if STRATEGIES[name] not in chosen:
            chosen.append(STRATEGIES[name])
    if not chosen:
        raise ValueError("no strategy chosen")
    return chosen
