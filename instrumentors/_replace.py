"""Plain-function patches, for targets that every process imports at start-up.

``threading`` is imported by every process before the application runs, so its instrumentor
patches at start-up, in processes most of which never import a library we wrap with wrapt:
importing wrapt for it would add wrapt's import to every start-up, and a wrapt proxy costs
more per call than a plain function on hot paths such as ``Thread.start`` and
``Executor.submit``. So these patches assign a plain function and remember the original;
``restore`` puts it back while the attribute still holds ours (as ``Patcher.restore`` does
for a replaced attribute).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Replacements"]


class Replacements:
    """Replaced class attributes, undone last first by ``restore``."""

    def __init__(self) -> None:
        self._done: list[tuple[type, str, Any, Any]] = []
        self._lock = threading.Lock()

    def replace(self, owner: type, name: str, make: Callable[[Any], Any]) -> None:
        """Set ``owner.name`` to ``make(original)`` unless already replaced by us."""
        with self._lock:
            if any(o is owner and n == name for o, n, _, _ in self._done):
                return
            original = owner.__dict__[name]
            replacement = make(original)
            setattr(owner, name, replacement)
            self._done.append((owner, name, original, replacement))

    def restore(self) -> None:
        with self._lock:
            done, self._done = self._done, []
        for owner, name, original, replacement in reversed(done):
            if owner.__dict__.get(name) is replacement:
                setattr(owner, name, original)
