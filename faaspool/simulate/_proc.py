"""Child-process plumbing shared by the simulator's processes."""

from __future__ import annotations

import os

from .instance import PARENT_ENV, die_with_parent

__all__ = ["child_env", "die_with_parent"]


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child of this process: ``base`` (default: ours) plus our pid."""
    env = dict(os.environ if base is None else base)
    env[PARENT_ENV] = str(os.getpid())
    return env
