"""Per-process counters. Plain integer increments: no lock on the hot path, and a forked
child starts from zero."""

from __future__ import annotations

import os

FIELDS = (
    "connects",
    "reconnects",
    "reuses",
    "probes",
    "stale_found",
    "retries",
    "ambiguous_writes",
    "failovers",
    "backoffs",
    "dirty_discarded",
    "leaks_reclaimed",
    "deadline_hits",
    "pool_waits",
)


class Counters:
    """The process's counters, as attributes named in `FIELDS`."""

    __slots__ = FIELDS

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        for name in FIELDS:
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIELDS}

    connects: int
    reconnects: int
    reuses: int
    probes: int
    stale_found: int
    retries: int
    ambiguous_writes: int
    failovers: int
    backoffs: int
    dirty_discarded: int
    leaks_reclaimed: int
    deadline_hits: int
    pool_waits: int


counters = Counters()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=counters.reset)


def stats() -> dict[str, int]:
    """A snapshot of this process's counters.

    ``connects`` new sockets; ``reconnects`` of those, the ones that replaced a socket
    found dead; ``reuses`` checkouts of a live socket; ``probes`` idle PINGs sent;
    ``stale_found`` dead sockets caught before use; ``retries`` commands sent again;
    ``ambiguous_writes`` writes refused a replay; ``failovers`` pools dropped after a
    READONLY reply; ``backoffs`` waits on a busy or loading server; ``dirty_discarded``
    connections closed on return because of leftover session state; ``leaks_reclaimed``
    connections taken back at invocation end; ``deadline_hits`` waits cut by the
    deadline; ``pool_waits`` checkouts that had to wait for a free connection.
    """
    return counters.snapshot()
