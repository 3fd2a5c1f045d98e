"""The optional native module ``_speedups`` (``sdk/_speedups.c``), loaded in one place.

``speedups`` is the module, or None where it was not built (no C compiler at install) or does not
load; ``error`` then says why. Each caller binds the functions it uses to module attributes that
are None without it and keeps its Python twin beside them (the tests swap those attributes).
"""

from __future__ import annotations

from types import ModuleType

__all__ = ["error", "speedups"]

speedups: ModuleType | None
error: str | None
try:
    from telemetry_run.sdk import _speedups as speedups
except ImportError as exc:  # pragma: no cover - the Python twins run
    speedups, error = None, str(exc)
else:
    error = None
