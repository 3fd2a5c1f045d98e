"""The built-in instrumentor plugin: registered first, through the same hook as third-party ones.

Flask, Django, requests and gRPC arrive with the instrumentors issue; until then this plugin
declares none. Each will be one ``InstrumentorSpec`` here (cheap data: the instrumentor's module
is imported only after its target library is).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from telemetry_run.hookspecs import hookimpl

if TYPE_CHECKING:
    from telemetry_run.instrumentors.base import InstrumentorSpec

__all__ = ["telemetry_run_instrumentors"]


@hookimpl
def telemetry_run_instrumentors() -> list[InstrumentorSpec]:
    """The built-in instrumentors (none yet)."""
    return []
