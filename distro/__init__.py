"""telemetry-run: zero-code OpenTelemetry tracing for Python applications.

The public front door. Application code uses ``telemetry_run.trace`` (spans),
``telemetry_run.context`` and ``telemetry_run.propagate``; nothing heavy is imported here.
"""

from __future__ import annotations

from telemetry_run._version import __version__

__all__ = ["__version__"]
