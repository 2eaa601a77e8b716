"""Each strategy's Redis: its own embedded server (and replica), or a shared external one,
reached through its own link of the simulated network. Faults are applied here.

Embedded servers keep their data across restarts (append-only file) and fail over without
losing writes (writes paused until the replica caught up), so what the server holds at the
end is the whole truth about writes applied twice.
"""

from __future__ import annotations

import contextlib
import time
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..embedded import RedisServer, wait_for
from .faults import Unsupported
from .network import NetworkProcess

__all__ = ["INCR_PATTERN", "Backend", "EmbeddedBackend", "ExternalBackend"]

# How the workload's INCR looks on the wire: redis-py sends incr() as INCRBY key 1.
INCR_PATTERN = "\r\nINCRBY\r\n"
_KEEP_DATA = ("--appendonly", "yes")
_DEFAULT_MAXCLIENTS = 10000
_SYNC_TIMEOUT = 10.0


class Backend:
    """The network side of a strategy's Redis; subclasses add the server side."""

    def __init__(self, name: str, network: NetworkProcess, key_prefix: str, function: str) -> None:
        self.name = name
        self.network = network
        self.key_prefix = key_prefix
        # The fleet's function name: in every connection's client name.
        self.function = function
        self.url = ""

    def admin(self) -> redis.Redis:
        raise NotImplementedError

    # -- faults the network injects --------------------------------------------------------

    def set_nat_idle(self, idle: float | None) -> str:
        self.network.set_nat_idle(self.name, idle)
        return "forgetting idle flows" if idle is not None else "flows kept again"

    def drop_replies(self, count: int) -> str:
        self.network.drop_replies(self.name, INCR_PATTERN, count)
        return f"the next {count} INCR replies will be lost"

    # -- faults the server side injects (overridden where possible) ------------------------

    def client_kill(self) -> str:
        raise Unsupported("not possible here")

    def set_idle_timeout(self, seconds: int) -> str:
        raise Unsupported("needs the simulator's own server (no --redis-url)")

    def restart(self) -> str:
        raise Unsupported("needs the simulator's own server (no --redis-url)")

    def failover(self) -> str:
        raise Unsupported("needs the simulator's own server (no --redis-url)")

    def set_maxclients_pressure(self, on: bool) -> str:
        raise Unsupported("needs the simulator's own server (no --redis-url)")

    # -- the truth at the end ----------------------------------------------------------------

    def incr_values(self) -> dict[int, int]:
        """Invocation id -> value of its INCR key, for every such key on the server."""
        admin = self.admin()
        match = f"{self.key_prefix}inv:*"
        keys = list(admin.scan_iter(match=match, count=1000))
        values: dict[int, int] = {}
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            for key, value in zip(batch, admin.mget(batch), strict=True):
                if value is not None:
                    values[int(str(key).rsplit(":", 1)[1])] = int(value)
        return values

    def close(self) -> None:
        raise NotImplementedError


def _admin_for(url: str) -> redis.Redis:
    # No retries: a fault step must report what happened, not hide it.
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        protocol=2,
        socket_timeout=5.0,
        socket_connect_timeout=5.0,
        retry=Retry(NoBackoff(), 0),
    )


class EmbeddedBackend(Backend):
    """A private redis-server (plus a replica when the schedule fails over) for one strategy."""

    def __init__(
        self,
        name: str,
        network: NetworkProcess,
        *,
        with_replica: bool,
        executable: str | None = None,
    ) -> None:
        super().__init__(name, network, f"sim:{name}:", f"sim-{name}")
        self.primary = RedisServer(extra_args=_KEEP_DATA, executable=executable)
        self.replica: RedisServer | None = None
        try:
            self.primary.start()
            if with_replica:
                self.replica = RedisServer(extra_args=_KEEP_DATA, executable=executable)
                self.replica.start()
                self.replica.demote_to_replica_of(self.primary)
            port = network.add_link(name, self.primary.host, self.primary.port)
        except BaseException:
            self.close()
            raise
        self.url = f"redis://127.0.0.1:{port}/0"

    def admin(self) -> redis.Redis:
        return self.primary.admin()

    def servers(self) -> list[RedisServer]:
        return [s for s in (self.primary, self.replica) if s is not None]

    def client_kill(self) -> str:
        killed = self.primary.admin().client_kill_filter(_type="normal", skipme=True)
        return f"killed {killed} connections"

    def set_idle_timeout(self, seconds: int) -> str:
        self.primary.admin().config_set("timeout", seconds)
        return f"timeout {seconds}"

    def restart(self) -> str:
        began = time.monotonic()
        self.primary.restart()
        return f"down for {(time.monotonic() - began) * 1000:.0f} ms"

    def failover(self) -> str:
        old, new = self.primary, self.replica
        if new is None:
            raise Unsupported("no replica was started")
        began = time.monotonic()
        old_admin = old.admin()
        old_admin.client_pause(int(_SYNC_TIMEOUT * 1000), all=False)
        try:

            def caught_up() -> bool:
                # Offsets compare only within one history: after a restart the replica
                # holds the old one until it resyncs, and the primary starts a new one
                # when a replica first attaches.
                theirs, mine = old.info("replication"), new.info("replication")
                return (
                    mine.get("master_link_status") == "up"
                    and mine.get("master_replid") == theirs["master_replid"]
                    and int(mine["master_repl_offset"]) >= int(theirs["master_repl_offset"])
                )

            wait_for(caught_up, _SYNC_TIMEOUT * 0.8, "the replica to catch up")
            new.promote()
            self.network.retarget(self.name, new.host, new.port)
            old.demote_to_replica_of(new, wait=False)
        finally:
            with contextlib.suppress(redis.RedisError):
                old_admin.client_unpause()
        self.primary, self.replica = new, old
        took = (time.monotonic() - began) * 1000
        wait_for(
            lambda: old.info("replication").get("master_link_status") == "up",
            _SYNC_TIMEOUT,
            "the old primary to sync as a replica",
        )
        return f"promoted the replica in {took:.0f} ms"

    def set_maxclients_pressure(self, on: bool) -> str:
        admin = self.primary.admin()
        if not on:
            admin.config_set("maxclients", _DEFAULT_MAXCLIENTS)
            return f"maxclients {_DEFAULT_MAXCLIENTS}"
        clients = admin.info("clients")
        replicas = int(admin.info("replication").get("connected_slaves", 0))
        limit = max(1, int(clients["connected_clients"]) + replicas)
        admin.config_set("maxclients", limit)
        return f"maxclients {limit} (the connections open)"

    def close(self) -> None:
        for server in (self.replica, self.primary):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()


class ExternalBackend(Backend):
    """A server the simulator does not own (``--redis-url``): only its own clients are
    killed, only network faults are injected, and its keys are deleted at the end."""

    def __init__(self, name: str, network: NetworkProcess, url: str, run_id: str) -> None:
        super().__init__(name, network, f"sim:{run_id}:{name}:", f"sim-{run_id}-{name}")
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(
                "--redis-url must be a redis:// URL: the simulated network forwards plain TCP, "
                "so a rediss:// certificate could not match the proxy's address"
            )
        self._admin = _admin_for(url)
        port = network.add_link(name, parts.hostname or "127.0.0.1", parts.port or 6379)
        # urlsplit leaves userinfo percent-encoded: keep it exactly as the user wrote it.
        userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        auth = f"{userinfo}@" if userinfo else ""
        self.url = urlunsplit(
            ("redis", f"{auth}127.0.0.1:{port}", parts.path or "/0", parts.query, "")
        )

    def admin(self) -> redis.Redis:
        return self._admin

    def client_kill(self) -> str:
        mine = (self.function + ":", f"faaspool:{self.function}:")
        ids = [c["id"] for c in self._admin.client_list() if c.get("name", "").startswith(mine)]
        for client_id in ids:
            with contextlib.suppress(redis.ResponseError):
                self._admin.client_kill_filter(_id=client_id)
        return f"killed {len(ids)} of this fleet's connections"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            keys = list(self._admin.scan_iter(match=f"{self.key_prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                self._admin.delete(*keys[start : start + 500])
        with contextlib.suppress(Exception):
            self._admin.close()
