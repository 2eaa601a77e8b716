"""Socket options and poll masks shared by the sync and async connections."""

from __future__ import annotations

import select
import socket

# Readable, urgent, or the peer half-closed: any of these on an idle socket means unsafe.
POLL_FLAGS = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)
# The peer is gone for sure (as opposed to bytes that may be TLS records).
CLOSED_FLAGS = select.POLLHUP | select.POLLERR | select.POLLNVAL | getattr(select, "POLLRDHUP", 0)


def _keepalive_options() -> list[tuple[int, int]]:
    # Notice a dead peer within ~45 s even when no command is waiting on it.
    wanted = (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    return [(getattr(socket, n), v) for n, v in wanted if hasattr(socket, n)]


KEEPALIVE = _keepalive_options()
