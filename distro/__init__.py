"""telemetry-run: zero-code OpenTelemetry tracing for Python applications.

The public front door. Application code uses ``telemetry_run.trace`` (spans),
``telemetry_run.context`` and ``telemetry_run.propagate``; plugin authors write
``from telemetry_run import hookimpl`` (the rest is in ``telemetry_run.plugin``). Both resolve on
first use: this package is imported at start-up in every instrumented process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telemetry_run._version import __version__

if TYPE_CHECKING:
    from telemetry_run import trace
    from telemetry_run.hookspecs import hookimpl

__all__ = ["__version__", "hookimpl", "trace"]


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        from telemetry_run.hookspecs import hookimpl  # lazily, see above

        return hookimpl
    if name == "trace":
        import importlib

        return importlib.import_module("telemetry_run.trace")
    raise AttributeError(f"module 'telemetry_run' has no attribute {name!r}")
