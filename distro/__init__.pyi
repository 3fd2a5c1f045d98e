from telemetry_run import trace as trace
from telemetry_run.hookspecs import hookimpl as hookimpl
from telemetry_run.sdk._version import __version__ as __version__

__all__ = ["__version__", "hookimpl", "trace"]
