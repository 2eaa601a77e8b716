"""Connect per invocation: a new `redis.Redis` each time, closed at the end."""

from __future__ import annotations

from typing import Any

import redis

from . import _workload


def handler(event: dict[str, Any], context: Any) -> None:
    client = redis.Redis(**_workload.connection_args())
    try:
        _workload.run(client, event)
    finally:
        client.close()


def connection_pools() -> list[Any]:
    return []
