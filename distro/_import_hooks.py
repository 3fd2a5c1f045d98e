"""Post-import hooks: run a callback when a module has been imported, now or later.

The same mechanism as wrapt's importer (a ``sys.meta_path`` finder that wraps the real loader
and puts it back after the module ran), written here because importing ``wrapt`` pulls in
``importlib.metadata`` and ``asyncio`` (~45 ms; ``bench/startup_parts.py``, row
``import-hooks``) at every interpreter start, even for applications that never import an
instrumented library. wrapt is still what patches, once a target is imported.
Hooks guard themselves: the instrumentation's hook swallows its failures (TELEMETRY_RUN_STRICT
aside), so the application's import never fails because of us.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["register_post_import_hook"]

Hook = Callable[[ModuleType], None]

_lock = threading.RLock()  # a fresh one in a forked child (see the end of this module)
_hooks: dict[str, list[Hook]] = {}
_finder_installed = False
_resolving = threading.local()


def register_post_import_hook(hook: Hook, module_name: str) -> None:
    """Call ``hook(module)`` once ``module_name`` is imported (at once if it already is).

    A module still executing (this is called from an import it triggers) whose import another
    hook is waiting for gets the hook when it has finished, with the others.
    """
    global _finder_installed
    with _lock:
        module = sys.modules.get(module_name)
        if module is None or (module_name in _hooks and _initializing(module)):
            _hooks.setdefault(module_name, []).append(hook)
            if not _finder_installed:
                sys.meta_path.insert(0, _Finder())
                _finder_installed = True
            return
    _run(hook, module)


def _initializing(module: ModuleType) -> bool:
    """Whether ``module`` is still executing (importlib marks its spec while it does)."""
    return getattr(getattr(module, "__spec__", None), "_initializing", False) is True


def _run(hook: Hook, module: ModuleType) -> None:
    # Hooks guard themselves (the instrumentation reports and swallows its failures); only in
    # strict mode does one raise, and then failing the import is what was asked for.
    hook(module)


def _fire(name: str, module: ModuleType) -> None:
    with _lock:
        hooks = _hooks.pop(name, [])
    for hook in hooks:
        _run(hook, module)


class _Loader:
    """Runs the real loader, restores it on the module, then fires the hooks."""

    def __init__(self, loader: Any, name: str):
        self._loader = loader
        self._name = name

    def create_module(self, spec: Any) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        # The module must see its real loader (importlib.resources, pkgutil, reloads use it).
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _fire(self._name, sys.modules.get(self._name, module))

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._loader, attribute)


class _Finder:
    """Finds hooked modules through the other finders and wraps their loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> Any:
        if fullname not in _hooks:
            return None
        busy: set[str] = getattr(_resolving, "names", set())
        if fullname in busy:
            return None
        busy.add(fullname)
        _resolving.names = busy
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            busy.discard(fullname)
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec  # namespace packages and legacy loaders: left alone
        spec.loader = _Loader(spec.loader, fullname)  # type: ignore[assignment]  # duck-typed Loader
        return spec


def _reinit_lock_after_fork() -> None:
    # Held by a thread whose import fired hooks at the fork, it would be held for good here.
    global _lock
    _lock = threading.RLock()


# Python's own hook, not telemetry_run.sdk.forking's: this module must not import the SDK.
os.register_at_fork(after_in_child=_reinit_lock_after_fork)
