"""Tracing: API types, the recording span, the provider, samplers, limits and ids."""

from __future__ import annotations

from telemetry_run.sdk.trace.limits import SpanLimits
from telemetry_run.sdk.trace.provider import Tracer, TracerProvider
from telemetry_run.sdk.trace.span import Event, InstrumentationScope, ReadableSpan, RecordingSpan

__all__ = [
    "Event",
    "InstrumentationScope",
    "ReadableSpan",
    "RecordingSpan",
    "SpanLimits",
    "Tracer",
    "TracerProvider",
]
