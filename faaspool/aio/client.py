"""The asyncio client: a `redis.asyncio.Redis` whose command path never replays a write.

``execute_command`` is replaced, not wrapped: one checkout (with the liveness check), one
send, one read, one return. On failure the shared `_policy.Attempts` decides, exactly as
in the sync client: send again when no byte was written or the command is read-only;
`AmbiguousWriteError` otherwise; back off on a busy or loading server; drop the pool's
sockets after READONLY.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio.client as rac
import redis.exceptions as rx

from .. import _deadline, _policy
from .._commands import MULTI, WATCH
from .._config import Config
from .._scope import current as _current_scope
from .._stats import counters
from .pool import ConnectionPool


class Redis(rac.Redis):
    """A `redis.asyncio.Redis` over a faaspool.aio `ConnectionPool` (one per event loop).

    Everything redis-py offers works as usual; commands, pipelines and transactions
    follow faaspool's reuse, retry and deadline rules.
    """

    faaspool_config: Config
    connection_pool: ConnectionPool
    connection: Any

    @classmethod
    def from_config(cls, config: Config) -> Redis:
        """A client over a new pool for ``config``; nothing connects yet."""
        client = cls(connection_pool=ConnectionPool(config))
        client.faaspool_config = config
        return client

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__}({self.connection_pool!r})>"

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)

    async def watch(self, *names: Any) -> Any:  # type: ignore[override]
        """On a `faaspool.aio.dedicated` client, WATCH ``names`` on its connection;
        elsewhere, as redis-py (use a pipeline)."""
        if self.connection is None:
            return super().watch(*names)
        return await self.execute_command("WATCH", *names)

    async def unwatch(self) -> Any:  # type: ignore[override]
        """UNWATCH on a `faaspool.aio.dedicated` client's connection; elsewhere, as redis-py."""
        if self.connection is None:
            return super().unwatch()
        return await self.execute_command("UNWATCH")

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.single_connection_client:
            await self.initialize()
            async with self._single_conn_lock:
                return await self._run(self.connection, True, args, options)
        return await self._run(self.connection, False, args, options)

    async def _run(self, held: Any, check_held: bool, args: Any, options: Any) -> Any:
        pool = self.connection_pool
        cfg: Config = pool.faaspool_config
        scope = _current_scope.get()
        attempts: _policy.Attempts | None = None
        while True:
            budget = _deadline.command_budget(scope, cfg, args[0])
            if held is None:
                conn = await pool.checkout(scope, budget)
            else:
                conn = held
                if check_held:
                    # A single-connection client never checks out: check before each use.
                    await _check_held(conn, budget)
            conn.sent = False
            limited = budget is not None or args[0] in _deadline.BLOCKING_NAMES
            if limited:
                _deadline.apply(conn, cfg, args, budget)
            try:
                await conn.send_command(*args)
                response = await self.parse_response(conn, args[0], **options)
            except rx.ResponseError as error:
                # The whole reply was read: the connection itself is fine.
                conn.in_flight = False
                if limited:
                    conn.set_timeout(cfg.socket_timeout)
                if held is None:
                    pool.release_now(conn)
                if not isinstance(error, rx.ReadOnlyError) and not _policy.is_busy(error):
                    raise
                failure: BaseException = error
            except BaseException as error:
                if held is None and conn.scope is not scope:
                    # The invocation's leak guard took it back meanwhile: not ours.
                    raise
                session = conn.session
                conn.close_now()
                if held is None:
                    pool.release_now(conn)
                if not isinstance(error, Exception):
                    raise
                if held is not None and session & (MULTI | WATCH):
                    # A reconnect would silently drop the open transaction or WATCH.
                    raise
                failure = _deadline.as_deadline(error, scope, cfg)
            else:
                conn.in_flight = False
                if limited:
                    conn.set_timeout(cfg.socket_timeout)
                if held is None:
                    pool.release_now(conn)
                return response
            if attempts is None:
                attempts = _policy.Attempts(cfg)
            action, delay = attempts.after_failure(
                failure,
                names=(_policy.command_name(args),),
                sent=conn.sent,
                now=time.monotonic(),
                budget=_deadline.remaining(scope, cfg),
            )
            await _before_retry(pool, action, delay)


class Pipeline(rac.Pipeline):
    """redis-py's asyncio pipeline, sent again as a batch only when the whole batch is safe."""

    connection_pool: ConnectionPool
    connection: Any

    async def reset(self) -> None:  # type: ignore[override]
        conn = getattr(self, "connection", None)
        if conn is not None and getattr(self, "watching", False):
            # redis-py's own UNWATCH here reads its reply off the connection directly.
            self.watching = False
            try:
                await conn.send_command("UNWATCH")
                await conn.read_response()
                conn.in_flight = False
            except rx.ConnectionError:
                conn.close_now()
            except BaseException:
                conn.close_now()
                raise
        await super().reset()  # type: ignore[no-untyped-call]

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        """WATCH and the reads between WATCH and MULTI: sent once, never again.

        A connection lost while watching raises `WatchError`, as redis-py does.
        """
        pool = self.connection_pool
        cfg: Config = pool.faaspool_config
        scope = _current_scope.get()
        budget = _deadline.command_budget(scope, cfg, args[0])
        conn = self.connection
        if conn is None:
            conn = await pool.checkout(scope, budget)
            self.connection = conn
        conn.sent = False
        if budget is not None or args[0] in _deadline.BLOCKING_NAMES:
            _deadline.apply(conn, cfg, args, budget)
        try:
            await conn.send_command(*args)
            response = await self.parse_response(conn, args[0], **options)
        except rx.ResponseError:
            conn.in_flight = False
            raise
        except BaseException as error:
            conn.close_now()
            if not isinstance(error, Exception):
                raise
            if self.watching:
                await self.reset()
                raise rx.WatchError(
                    f"A {type(error).__name__} occurred while watching one or more keys"
                ) from error
            _deadline.as_deadline(error, scope, cfg)  # raises DeadlineExceeded when it was that
            raise
        conn.in_flight = False
        if budget is not None:
            conn.set_timeout(cfg.socket_timeout)
        return response

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        if not stack and not self.watching:
            return []
        if self.scripts:
            await self.load_scripts()  # type: ignore[no-untyped-call]
        transactional = self.is_transaction or self.explicit_transaction
        run = self._execute_transaction if transactional else self._execute_pipeline
        pool = self.connection_pool
        cfg: Config = pool.faaspool_config
        scope = _current_scope.get()
        attempts: _policy.Attempts | None = None
        try:
            while True:
                budget = _deadline.budget(scope, cfg)
                conn = self.connection
                if conn is None:
                    conn = await pool.checkout(scope, budget)
                    self.connection = conn
                conn.sent = False
                conn.in_flight = True
                # Queued commands bypass send_command, where session state is tracked.
                conn.session = _policy.session_after_stack(stack, cfg.db, conn.session)
                if budget is not None:
                    _deadline.apply(conn, cfg, ("PIPELINE",), budget)
                try:
                    response: list[Any] = await run(conn, stack, raise_on_error)
                except (rx.ResponseError, rx.WatchError):
                    # Every reply was read (EXEC answered, or nil for a changed WATCH).
                    conn.in_flight = False
                    if transactional:
                        conn.session &= ~(MULTI | WATCH)
                    raise
                except BaseException as error:
                    conn.close_now()
                    if not isinstance(error, Exception):
                        raise
                    if self.watching:
                        raise rx.WatchError(
                            "A ConnectionError occurred while watching one or more keys"
                        ) from error
                    failure = _deadline.as_deadline(error, scope, cfg)
                else:
                    conn.in_flight = False
                    if transactional:
                        conn.session &= ~(MULTI | WATCH)
                    if budget is not None:
                        conn.set_timeout(cfg.socket_timeout)
                    return response
                if attempts is None:
                    attempts = _policy.Attempts(cfg)
                action, delay = attempts.after_failure(
                    failure,
                    names=[_policy.command_name(args) for args, _ in stack],
                    sent=conn.sent,
                    now=time.monotonic(),
                    budget=_deadline.remaining(scope, cfg),
                )
                pool.release_now(conn)
                self.connection = None
                await _before_retry(pool, action, delay)
        finally:
            await self.reset()


async def _check_held(conn: Any, budget: float | None) -> None:
    if conn._writer is not None and not conn.in_flight and not conn.session:
        now = time.monotonic()
        state = conn.check(now)
        if state:
            await conn.settle(state, now, budget)
        conn.last_used = now


async def _before_retry(pool: ConnectionPool, action: _policy.Action, delay: float) -> None:
    if action is _policy.Action.FAILOVER:
        pool.invalidate()
    if action is _policy.Action.RETRY:
        counters.retries += 1
    else:
        counters.backoffs += 1
    if delay > 0:
        await asyncio.sleep(delay)
