from telemetry_run import trace as trace
from telemetry_run._version import __version__ as __version__
from telemetry_run.hookspecs import hookimpl as hookimpl

__all__ = ["__version__", "hookimpl", "trace"]
