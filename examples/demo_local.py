"""Run a handler the way a warm FaaS instance does, against an embedded Redis, and show
what faaspool did on each invocation: reused, probed, found stale, reconnected.

    make demo        (or: python examples/demo_local.py)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import faaspool
from faaspool.embedded import RedisServer


def handler(event: dict[str, Any], remaining_s: float) -> int:
    """A Lambda-style handler: count visits with the module-scope client."""
    with faaspool.invocation(timeout=remaining_s):
        r = faaspool.get_redis(idle_probe_after=0.5)
        return int(r.incr(f"visits:{event['user']}"))


def main() -> None:
    with RedisServer() as server:
        os.environ["REDIS_URL"] = server.url
        admin = server.admin()
        faults: dict[int, tuple[str, Callable[[], None]]] = {
            3: ("CLIENT KILL (server drops us)", lambda: _kill(admin)),
            5: ("server restart", server.restart),
            7: ("idle for 0.6 s (> idle_probe_after)", lambda: time.sleep(0.6)),
        }
        print(f"embedded redis-server at {server.host}:{server.port}\n")
        header = (
            f"{'#':>2}  {'before this invocation':<36} {'result':>6}  {'ms':>6}  "
            "what faaspool did"
        )
        print(header)
        print("-" * (len(header) + 20))
        for n in range(1, 10):
            note = ""
            if n in faults:
                note, fault = faults[n]
                fault()
            before = faaspool.stats()
            start = time.perf_counter()
            result = handler({"user": "ada"}, remaining_s=3.0)
            ms = (time.perf_counter() - start) * 1000
            after = faaspool.stats()
            did = {k: after[k] - before[k] for k in after if after[k] != before[k]}
            print(f"{n:>2}  {note:<36} {result:>6}  {ms:6.2f}  {_describe(did)}")
        totals = faaspool.stats()
        print(
            f"\n{totals['connects']} connections opened for 9 invocations and 3 faults; "
            f"{totals['stale_found']} stale sockets caught before use; "
            f"{totals['ambiguous_writes']} writes at risk of replay; 0 errors."
        )
        faaspool.close_all()


def _kill(admin: Any) -> None:
    admin.client_kill_filter(_type="normal", skipme=True)
    time.sleep(0.05)  # let the FIN reach our idle socket, as it would between invocations


def _describe(did: dict[str, int]) -> str:
    words = {
        "connects": "connected",
        "reconnects": "reconnected",
        "reuses": "reused a warm socket",
        "probes": "PING-probed an idle socket",
        "stale_found": "found a dead socket before use",
        "retries": "retried a safe command",
    }
    if did.get("reconnects"):
        did.pop("connects", None)
    parts = [f"{words[k]}" + (f" x{v}" if v > 1 else "") for k, v in did.items() if k in words]
    return ", ".join(parts) or "-"


if __name__ == "__main__":
    main()
