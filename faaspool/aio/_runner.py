"""A persistent event loop for platforms that call handlers synchronously (AWS Lambda).

``asyncio.run`` makes a new loop per call and closes it, so every invocation of an async
handler would reconnect. `Runner` keeps one loop across calls; connections made on it
survive until the instance is frozen or shut down. No thread runs the loop between
calls: it only runs inside `Runner.run`.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import os
import threading
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Runner:
    """Run coroutines to completion on one event loop that persists across calls.

    Not for concurrent use from several threads: each thread gets its own default
    runner through `run`. A forked child starts a new loop.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's loop, created on first use (and anew after close or fork)."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._pid != os.getpid():
            loop = asyncio.new_event_loop()
            self._loop, self._pid = loop, os.getpid()
        return loop

    def run(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` (a coroutine or any awaitable) on the persistent loop and return its result.

        Tasks it leaves pending stay on the loop and resume during the next call.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if inspect.iscoroutine(coro):
                coro.close()
            raise RuntimeError(
                "faaspool.aio.run() was called from inside a running event loop; "
                "await the coroutine instead"
            )
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Close the runner's connections, cancel what is pending, and close its loop."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._pid != os.getpid() or loop.is_running():
            return
        self._loop = None
        from . import _cache

        try:
            _cache.forget_loop(loop)
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


_local = threading.local()


def default() -> Runner:
    """This thread's default runner."""
    runner: Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = Runner()
        _local.runner = runner
        # Interpreter exit: close the loop and its connections (best effort).
        atexit.register(runner.close)
    return runner


def run(coro: Awaitable[T]) -> T:
    """Run ``coro`` on this thread's persistent loop: the async handler's entry point.

    An async handler called through ``run`` 1,000 times reuses one connection, where
    ``asyncio.run`` would open 1,000.
    """
    return default().run(coro)
