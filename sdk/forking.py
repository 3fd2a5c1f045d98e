"""One place for what each SDK component must redo in a forked child.

Components register a callback here instead of calling ``os.register_at_fork`` themselves, so a
server that forks without Python's hooks (uWSGI forks in C) can run them all with one call,
``after_fork_in_child()``, from its own post-fork hook. Running them twice in the same child is
harmless: they run once per pid. Callbacks never block, never log and never join threads
(a forked child may hold copies of locks other threads owned).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

__all__ = ["after_fork_in_child", "register", "repaired_in"]

_callbacks: list[Callable[[], None]] = []
_ran_in = os.getpid()


def register(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every forked child, in registration order."""
    _callbacks.append(callback)


def repaired_in() -> int:
    """The pid the registered components were last set up for (compare with ``os.getpid()``)."""
    return _ran_in


def after_fork_in_child() -> None:
    """Reinitialise every registered component in this (child) process, once per pid."""
    global _ran_in
    pid = os.getpid()
    if pid == _ran_in:
        return
    _ran_in = pid
    for callback in list(_callbacks):
        # A child must start even if one component cannot reinitialise; logging here could
        # deadlock on a handler lock copied mid-use, so the failure stays silent.
        with contextlib.suppress(Exception):
            callback()


os.register_at_fork(after_in_child=after_fork_in_child)
