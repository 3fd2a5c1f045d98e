"""The tracing API for application code, with the OpenTelemetry API's names and call shapes.

Code written against ``opentelemetry.trace`` ports by changing the import. Tracers obtained
before a provider is set (at import time, say) start recording once it is set.
"""

from __future__ import annotations

from telemetry_run.sdk.trace.api import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    TracerProvider,
    TraceState,
)
from telemetry_run.sdk.trace.current import get_current_span, set_span_in_context, use_span
from telemetry_run.sdk.trace.globals import get_tracer, get_tracer_provider, set_tracer_provider

__all__ = [
    "INVALID_SPAN",
    "Link",
    "NonRecordingSpan",
    "Span",
    "SpanContext",
    "SpanKind",
    "Status",
    "StatusCode",
    "TraceFlags",
    "TraceState",
    "Tracer",
    "TracerProvider",
    "get_current_span",
    "get_tracer",
    "get_tracer_provider",
    "set_span_in_context",
    "set_tracer_provider",
    "use_span",
]
