"""telemetry-run: zero-code OpenTelemetry tracing for Python applications.

The public front door. Application code uses ``telemetry_run.trace`` (spans),
``telemetry_run.context`` and ``telemetry_run.propagate``; plugin authors write
``from telemetry_run import hookimpl`` (the rest is in ``telemetry_run.plugin``). Both resolve on
first use: this package is imported by the launcher and at start-up in every instrumented
process, so it imports nothing else (not even ``typing``: its types are in ``__init__.pyi``).
"""

__all__ = ["__version__", "hookimpl", "trace"]


def __getattr__(name):
    if name == "__version__":
        from telemetry_run.sdk._version import __version__

        return __version__
    if name == "hookimpl":
        from telemetry_run.hookspecs import hookimpl

        return hookimpl
    if name == "trace":
        import importlib

        return importlib.import_module("telemetry_run.trace")
    raise AttributeError(f"module 'telemetry_run' has no attribute {name!r}")
