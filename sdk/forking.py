"""One place for what each SDK component must redo in a forked child.

Components register a callback here instead of calling ``os.register_at_fork`` themselves, so a
server that forks without Python's hooks (uWSGI forks in C) can run them all with one call,
``after_fork_in_child()``, from its own post-fork hook. Running them twice in the same child is
harmless: they run once per pid. Callbacks never block, never log and never join threads
(a forked child may hold copies of locks other threads owned).
"""

from __future__ import annotations

import _thread
import contextlib
import os
import sys
from collections.abc import Callable

__all__ = ["after_fork_in_child", "register", "repaired_in"]


def _forget_imports_of_lost_threads() -> None:
    """Imports other threads had under way at the fork: those threads do not exist here.

    Each such import holds its module's lock for good in this child, so the next import of
    that module (an exporter's lazy one on its first export, say) would wait forever. The
    half-run module is dropped and its lock forgotten: the module is imported again, from
    scratch, when next needed. Python resets its global import lock at a fork, but not these
    per-module ones (``importlib._bootstrap._module_locks``, the same on 3.11 to 3.13).
    """
    bootstrap = sys.modules.get("_frozen_importlib")
    locks = getattr(bootstrap, "_module_locks", None)
    if not isinstance(locks, dict):
        return
    me = _thread.get_ident()
    for name, ref in list(locks.items()):
        lock = ref()
        owner = getattr(lock, "owner", None)
        if owner is None or owner == me:  # free, or this thread's own import in progress
            continue
        module = sys.modules.get(name)
        if module is not None and getattr(module.__spec__, "_initializing", False):
            sys.modules.pop(name, None)
        locks.pop(name, None)


# First, so that the components' callbacks can import.
_callbacks: list[Callable[[], None]] = [_forget_imports_of_lost_threads]
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
