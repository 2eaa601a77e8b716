"""The one error only asyncio use can cause."""

from __future__ import annotations


class WrongLoopError(RuntimeError):
    """A faaspool.aio client was used on an event loop other than the one it belongs to.

    Raised before any byte is sent, instead of asyncio's "attached to a different loop"
    after the command was already written.
    """
