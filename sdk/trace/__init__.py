"""Tracing: API types, the recording span, the provider, samplers, limits and ids.

Names load on first use, so importing one submodule (``trace.api``) does not import them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.limits import SpanLimits
    from telemetry_run.sdk.trace.provider import Tracer, TracerProvider
    from telemetry_run.sdk.trace.span import (
        Event,
        InstrumentationScope,
        ReadableSpan,
        RecordingSpan,
    )

__all__ = [
    "Event",
    "InstrumentationScope",
    "ReadableSpan",
    "RecordingSpan",
    "SpanLimits",
    "Tracer",
    "TracerProvider",
]

_HOME: Final = {
    "Event": "telemetry_run.sdk.trace.span",
    "InstrumentationScope": "telemetry_run.sdk.trace.span",
    "ReadableSpan": "telemetry_run.sdk.trace.span",
    "RecordingSpan": "telemetry_run.sdk.trace.span",
    "SpanLimits": "telemetry_run.sdk.trace.limits",
    "Tracer": "telemetry_run.sdk.trace.provider",
    "TracerProvider": "telemetry_run.sdk.trace.provider",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    import sys

    value = getattr(importlib.import_module(home), name)
    # setattr, not globals(): the submodule ``trace.globals`` shadows that builtin here.
    setattr(sys.modules[__name__], name, value)
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
