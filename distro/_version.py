"""The distribution's version; the SDK owns the one definition (``telemetry_run.sdk._version``)."""

from telemetry_run.sdk._version import __version__

__all__ = ["__version__"]
