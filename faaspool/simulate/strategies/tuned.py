"""Module scope with the tuning people reach for: health checks, short timeouts, retries.

``health_check_interval`` comes from $FAASPOOL_SIM_HEALTH_CHECK_INTERVAL, scaled with the
simulator's compressed idle times (as faaspool's ``idle_probe_after`` is).
"""

from __future__ import annotations

import math
import os
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import _workload


def _interval() -> int:
    # redis-py takes whole seconds.
    return max(1, math.ceil(float(os.environ.get("FAASPOOL_SIM_HEALTH_CHECK_INTERVAL", "30"))))


client = redis.Redis(
    **_workload.connection_args(),
    health_check_interval=_interval(),
    socket_timeout=1.0,
    socket_connect_timeout=1.0,
    socket_keepalive=True,
    retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), 3),
    retry_on_error=[redis.ConnectionError, redis.TimeoutError],
)


def handler(event: dict[str, Any], context: Any) -> None:
    _workload.run(client, event)


def connection_pools() -> list[Any]:
    return [client.connection_pool]
