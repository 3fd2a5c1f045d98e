"""Tracing: API types, the recording span, the provider, samplers, limits and ids.

Names load on first use, so importing one submodule (``trace.api``) does not import them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run.sdk._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _HOME)
