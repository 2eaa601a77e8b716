"""The client: a `redis.Redis` whose command path never replays a write.

``execute_command`` is replaced, not wrapped: one checkout (with the liveness probe), one
send, one read, one return. On failure, `_policy.Attempts` decides: reconnect and send
again when no byte was written or the command is read-only; raise `AmbiguousWriteError`
otherwise; back off on a busy or loading server; drop the pool after READONLY.
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis
import redis.client
import redis.exceptions as rx

from . import _deadline, _policy
from ._commands import MULTI, WATCH
from ._config import Config
from ._scope import current as _current_scope
from ._stats import counters
from .pool import ConnectionPool


class Redis(redis.Redis):
    """A `redis.Redis` over a faaspool `ConnectionPool`.

    Everything redis-py offers works as usual; commands, pipelines and transactions
    follow faaspool's reuse, retry and deadline rules.
    """

    faaspool_config: Config

    @classmethod
    def from_config(cls, config: Config) -> Redis:
        """A client over a new pool for ``config`` (nothing connects yet)."""
        client = cls(connection_pool=ConnectionPool(config))
        client.faaspool_config = config
        return client

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__}({self.connection_pool!r})>"

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return Pipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )

    def watch(self, *names: Any) -> Any:
        """On a `faaspool.dedicated` client, WATCH ``names`` on its connection (for a
        MULTI/EXEC that follows on it); elsewhere, as redis-py (use a pipeline)."""
        if self.connection is None:
            return super().watch(*names)
        return self.execute_command("WATCH", *names)  # type: ignore[no-untyped-call]

    def unwatch(self) -> Any:
        """UNWATCH on a `faaspool.dedicated` client's connection; elsewhere, as redis-py."""
        if self.connection is None:
            return super().unwatch()
        return self.execute_command("UNWATCH")  # type: ignore[no-untyped-call]

    def _execute_command(self, *args: Any, **options: Any) -> Any:
        pool: Any = self.connection_pool
        cfg: Config = pool.faaspool_config
        held: Any = self.connection
        scope = _current_scope.get()
        attempts: _policy.Attempts | None = None
        while True:
            budget = _deadline.command_budget(scope, cfg, args[0])
            conn: Any = held if held is not None else pool.checkout(scope, budget)
            conn.sent = False
            if budget is not None or args[0] in _deadline.BLOCKING_NAMES:
                _deadline.apply(conn, cfg, args, budget)
            elif conn._timeout != cfg.socket_timeout:
                # Left shorter by an earlier deadline-bound command.
                conn.set_timeout(cfg.socket_timeout)
            try:
                conn.send_command(*args)
                response = self.parse_response(conn, args[0], **options)  # type: ignore[no-untyped-call]
            except rx.ResponseError as error:
                # The whole reply was read: the connection itself is fine.
                conn.in_flight = False
                if held is None:
                    pool.release(conn)
                if not isinstance(error, rx.ReadOnlyError) and not _policy.is_busy(error):
                    raise
                failure: BaseException = error
            except BaseException as error:
                session = conn.session
                conn.disconnect()
                if held is None:
                    pool.release(conn)
                if not isinstance(error, Exception):
                    raise
                if held is not None and session & (MULTI | WATCH):
                    # A reconnect would silently drop the open transaction or WATCH.
                    raise
                failure = _deadline.as_deadline(error, scope, cfg)
            else:
                conn.in_flight = False
                if held is None:
                    pool.release(conn)
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
            _before_retry(pool, action, delay)


class Pipeline(redis.client.Pipeline):
    """redis-py's pipeline, retried as a batch only when the whole batch is safe."""

    def _send_command_parse_response(
        self, conn: Any, command_name: Any, *args: Any, **options: Any
    ) -> Any:
        # WATCH and the reads before MULTI run one at a time: each reply read in full.
        response = super()._send_command_parse_response(  # type: ignore[no-untyped-call]
            conn, command_name, *args, **options
        )
        conn.in_flight = False
        return response

    def reset(self) -> None:  # type: ignore[override]
        conn = getattr(self, "connection", None)
        if conn is not None and getattr(self, "watching", False):
            # redis-py's own UNWATCH here reads its reply off the connection directly.
            self.watching = False
            try:
                conn.send_command("UNWATCH")
                conn.read_response()
                conn.in_flight = False
            except rx.ConnectionError:
                conn.disconnect()
        super().reset()

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        stack = self.command_stack
        if not stack and not self.watching:
            return []
        if self.scripts:
            self.load_scripts()  # type: ignore[no-untyped-call]
        transactional = bool(cast(bool, self.transaction) or self.explicit_transaction)
        run: Any = self._execute_transaction if transactional else self._execute_pipeline
        pool: Any = self.connection_pool
        cfg: Config = pool.faaspool_config
        scope = _current_scope.get()
        attempts: _policy.Attempts | None = None
        try:
            while True:
                budget = _deadline.budget(scope, cfg)
                conn: Any = self.connection
                if conn is None:
                    conn = pool.checkout(scope, budget)
                    self.connection = conn
                conn.sent = False
                conn.in_flight = True
                # Queued commands bypass send_command, where session state is tracked.
                conn.session = _policy.session_after_stack(stack, cfg.db, conn.session)
                if budget is not None:
                    _deadline.apply(conn, cfg, ("PIPELINE",), budget)
                elif conn._timeout != cfg.socket_timeout:
                    conn.set_timeout(cfg.socket_timeout)
                try:
                    response = run(conn, stack, raise_on_error)
                except (rx.ResponseError, rx.WatchError):
                    # Every reply was read (EXEC answered, or nil for a changed WATCH).
                    conn.in_flight = False
                    if transactional:
                        conn.session &= ~(MULTI | WATCH)
                    raise
                except BaseException as error:
                    conn.disconnect()
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
                    return cast(list[Any], response)
                if attempts is None:
                    attempts = _policy.Attempts(cfg)
                action, delay = attempts.after_failure(
                    failure,
                    names=[_policy.command_name(args) for args, _ in stack],
                    sent=conn.sent,
                    now=time.monotonic(),
                    budget=_deadline.remaining(scope, cfg),
                )
                pool.release(conn)
                self.connection = None
                _before_retry(pool, action, delay)
        finally:
            self.reset()


def _before_retry(pool: Any, action: _policy.Action, delay: float) -> None:
    if action is _policy.Action.FAILOVER:
        pool.invalidate()
    if action is _policy.Action.RETRY:
        counters.retries += 1
    else:
        counters.backoffs += 1
    if delay > 0:
        time.sleep(delay)
