"""wrapt, imported without importing asyncio when the application has not.

wrapt 2 imports ``asyncio`` at the top of ``wrapt.synchronization`` but uses it only inside its
async helpers, which we never call. An application that never imports asyncio (a Flask app on
gunicorn's sync workers) would pay for it the moment its framework is patched: about 20 ms of
start-up here, a fifth of everything else we add. So while wrapt is imported, ``asyncio`` in
``sys.modules`` is a stand-in that wrapt binds; the stand-in leaves ``sys.modules`` as soon as
wrapt is in, and forwards any attribute to the real asyncio, importing it then. Any use of the
stand-in, even during the import (another thread, or a wrapt that needs asyncio at import
time), takes it out and imports the real module first, so the worst case is the import we
avoided, never a broken ``asyncio``.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import types
from typing import Any

__all__ = ["load_wrapt"]

_lock = threading.Lock()


class _AsyncioOnFirstUse(types.ModuleType):
    """What ``import asyncio`` inside wrapt binds: the real module, imported on first use."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get("asyncio") is self:
            del sys.modules["asyncio"]
        return getattr(importlib.import_module("asyncio"), name)


def load_wrapt() -> types.ModuleType:
    """``import wrapt``, leaving asyncio out of ``sys.modules`` if it was out."""
    wrapt = sys.modules.get("wrapt")
    if wrapt is not None:
        return wrapt
    with _lock:
        if "asyncio" in sys.modules or "wrapt" in sys.modules:
            return importlib.import_module("wrapt")
        stand_in = _AsyncioOnFirstUse("asyncio")
        sys.modules["asyncio"] = stand_in
        try:
            return importlib.import_module("wrapt")
        finally:
            if sys.modules.get("asyncio") is stand_in:
                del sys.modules["asyncio"]


def _reinit_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


# Python's own hook, not telemetry_run.sdk.forking's: this module must not import the SDK.
os.register_at_fork(after_in_child=_reinit_lock_after_fork)
