"""The invocation scope: one invocation's deadline and what it checked out.

Held in a context variable, so every thread and every asyncio task sees its own.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
import types
import weakref
from typing import TYPE_CHECKING, Any

import redis

from ._stats import counters

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger("faaspool")

current: contextvars.ContextVar[Invocation | None] = contextvars.ContextVar(
    "faaspool_invocation", default=None
)

# Every pool in the process, so an ending invocation can find what it left checked out.
pools: weakref.WeakSet[Any] = weakref.WeakSet()
_warned_sites: set[str] = set()


class Invocation:
    """Scope one invocation: its deadline, and a leak guard for what it checks out.

    ``timeout`` is the time left in seconds (e.g. Lambda's remaining time), or
    ``deadline`` an absolute `time.monotonic` value. Use it as ``with`` or ``async with``.
    At exit, any connection still checked out inside it is reclaimed: returned to its
    pool if clean, else closed, with one warning naming where it was acquired.
    """

    __slots__ = ("__weakref__", "_outer", "_token", "deadline", "name", "out", "started")

    def __init__(
        self,
        timeout: float | None = None,
        *,
        deadline: float | None = None,
        name: str | None = None,
    ) -> None:
        self.started = time.monotonic()
        if timeout is not None and deadline is not None:
            raise TypeError("pass timeout= or deadline=, not both")
        if timeout is not None:
            deadline = self.started + float(timeout)
        self.deadline = deadline
        self.name = name
        # Connections checked out in this scope and not yet back, kept by the pools under
        # their locks, so an invocation that leaked nothing ends without scanning them.
        self.out = 0
        self._token: contextvars.Token[Invocation | None] | None = None
        self._outer: Invocation | None = None

    def remaining(self) -> float | None:
        """Seconds until the deadline (negative once past), or None without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def __enter__(self) -> Self:
        outer = current.get()
        if (
            outer is not None
            and outer.deadline is not None
            and (self.deadline is None or outer.deadline < self.deadline)
        ):
            self.deadline = outer.deadline
        self._outer = outer
        self._token = current.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        try:
            self.reclaim()
        finally:
            if self._token is not None:
                try:
                    current.reset(self._token)
                except ValueError:
                    # Exited in another context than entered (a framework moved us).
                    current.set(self._outer)
                self._token = None

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _leftovers(self) -> list[tuple[Any, Any]]:
        found: list[tuple[Any, Any]] = []
        for pool in list(pools):
            found.extend((pool, conn) for conn in pool.checked_out_by(self))
        return found

    def reclaim(self) -> int:
        """Take back what this invocation still has checked out; return how many.

        Every pool (sync or asyncio) offers ``checked_out_by(scope)`` and a synchronous
        ``reclaim(conn) -> bool`` (True if returned, False if closed).
        """
        if not self.out:
            return 0
        found = self._leftovers()
        for pool, conn in found:
            site = getattr(conn, "lease_site", None)
            self._report(site, pool.reclaim(conn))
        return len(found)

    def _report(self, site: str | None, returned: bool) -> None:
        counters.leaks_reclaimed += 1
        site = site or "a command interrupted mid-flight"
        if site in _warned_sites:
            return
        _warned_sites.add(site)
        logger.warning(
            "faaspool: a connection acquired at %s was still checked out when the "
            "invocation ended; %s it. Release it with `with faaspool.dedicated(client)` "
            "or close the pubsub/pipeline that holds it.",
            site,
            "returned" if returned else "closed",
        )


# Frames in these trees are plumbing; the first frame outside them is the user's code.
_INTERNAL_PREFIXES = (
    os.path.dirname(os.path.abspath(redis.__file__)),
    os.path.dirname(os.path.abspath(__file__)),
    os.path.dirname(os.path.abspath(os.__file__)),
)


def caller_site() -> str:
    """``file:line in function()`` of the first frame outside redis-py, faaspool and the
    standard library: where the user acquired what is being recorded."""
    frame: types.FrameType | None = sys._getframe(1)
    for _ in range(40):
        if frame is None:
            break
        filename = frame.f_code.co_filename
        if not filename.startswith(_INTERNAL_PREFIXES):
            return f"{filename}:{frame.f_lineno} in {frame.f_code.co_name}()"
        frame = frame.f_back
    return "an unknown place"


def remaining() -> float | None:
    """Seconds left in the current invocation, or None outside one / without a deadline."""
    scope = current.get()
    return None if scope is None else scope.remaining()
