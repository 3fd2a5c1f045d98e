"""telemetry-run: zero-code OpenTelemetry tracing for Python applications.

The public front door. Application code uses ``telemetry_run.trace`` (spans),
``telemetry_run.context`` and ``telemetry_run.propagate``; plugin authors write
``from telemetry_run import hookimpl`` (the rest is in ``telemetry_run.plugin``). Both resolve on
first use: this package is imported by the launcher and at start-up in every instrumented
process, so it imports nothing but the SDK's lazy-export helper (not even ``typing``: its types
are in ``__init__.pyi``).
"""

from telemetry_run.sdk._lazy import lazy_exports

__all__ = ["__version__", "hookimpl", "trace"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "__version__": "telemetry_run.sdk._version",
        "hookimpl": "telemetry_run.hookspecs",
        "trace": "telemetry_run.trace",
    },
)
