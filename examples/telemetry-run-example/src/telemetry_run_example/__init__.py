"""An example telemetry-run plugin: the ``route`` sampler and the ``tinyqueue`` instrumentor.

telemetry-run loads ``telemetry_run_example.plugin`` (the entry point ``example`` in the
``telemetry_run`` group) in every process it starts, so that module and this package import
nothing heavy; the sampler and the instrumentor live in modules of their own, imported only when
the sampler is selected or ``tinyqueue`` is imported by the application.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
