"""faaspool: the module-scope client, every wait bounded by the invocation's deadline.

SET is declared safe to repeat (it writes the same value again), so only the INCR can end
in `faaspool.AmbiguousWriteError` when its reply is lost.
"""

from __future__ import annotations

from typing import Any

import faaspool

from . import _workload

# At module scope, like the module-global client: nothing connects until the first
# command, and faaspool's own modules load during the cold start, not the first invocation.
client = faaspool.get_redis(retry_safe_commands="SET")


def handler(event: dict[str, Any], context: Any) -> None:
    with faaspool.invocation(timeout=context.get_remaining_time_in_millis() / 1000):
        _workload.run(client, event)


def connection_pools() -> list[Any]:
    return [client.connection_pool]


def stats() -> dict[str, int]:
    return faaspool.stats()
