"""The usual advice: one `redis.Redis` at module scope, reused while the instance is warm."""

from __future__ import annotations

from typing import Any

import redis

from . import _workload

client = redis.Redis(**_workload.connection_args())


def handler(event: dict[str, Any], context: Any) -> None:
    _workload.run(client, event)


def connection_pools() -> list[Any]:
    return [client.connection_pool]
