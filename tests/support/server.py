"""The test harness's servers are the product's embedded servers (faaspool.embedded),
which the demo and the fleet simulator use as well."""

from faaspool.embedded import (
    ADMIN_CLIENT_NAME,
    HOST,
    SHARED_PORT,
    RedisServer,
    RedisServerError,
    TLSFiles,
    available_redis_servers,
    find_redis_server,
    free_port,
    redis_server_version,
    tls_supported,
    wait_for,
)

__all__ = [
    "ADMIN_CLIENT_NAME",
    "HOST",
    "SHARED_PORT",
    "RedisServer",
    "RedisServerError",
    "TLSFiles",
    "available_redis_servers",
    "find_redis_server",
    "free_port",
    "redis_server_version",
    "tls_supported",
    "wait_for",
]
