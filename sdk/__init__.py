"""Our own tracing SDK: it takes arguments and never reads the environment.

The distro (``telemetry_run.bootstrap``) builds it from configuration; code that wants its own
pipeline builds it directly::

    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
"""

from __future__ import annotations

from telemetry_run.sdk._lazy import lazy_exports

TYPE_CHECKING = False  # typing's own constant: the launcher imports this package, not typing
if TYPE_CHECKING:
    from typing import Final

    from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics
    from telemetry_run.sdk.exporters import ExportResult, SpanExporter
    from telemetry_run.sdk.exporters.console import ConsoleSpanExporter
    from telemetry_run.sdk.exporters.memory import InMemorySpanExporter
    from telemetry_run.sdk.processors import SpanProcessor
    from telemetry_run.sdk.processors.batch import BatchSpanProcessor
    from telemetry_run.sdk.processors.simple import SimpleSpanProcessor
    from telemetry_run.sdk.resources import Resource
    from telemetry_run.sdk.trace.ids import IdGenerator, RandomIdGenerator
    from telemetry_run.sdk.trace.limits import SpanLimits
    from telemetry_run.sdk.trace.provider import Tracer, TracerProvider
    from telemetry_run.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        Decision,
        ParentBased,
        ParentBasedTraceIdRatio,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = [
    "ALWAYS_OFF",
    "ALWAYS_ON",
    "BatchSpanProcessor",
    "ConsoleSpanExporter",
    "Decision",
    "Diagnostics",
    "ExportResult",
    "IdGenerator",
    "InMemorySpanExporter",
    "ParentBased",
    "ParentBasedTraceIdRatio",
    "RandomIdGenerator",
    "ReadableSpan",
    "Resource",
    "Sampler",
    "SamplingResult",
    "SimpleSpanProcessor",
    "SpanExporter",
    "SpanLimits",
    "SpanProcessor",
    "TraceIdRatioBased",
    "Tracer",
    "TracerProvider",
    "get_diagnostics",
]

_HOME: Final = {
    "ALWAYS_OFF": "telemetry_run.sdk.trace.sampling",
    "ALWAYS_ON": "telemetry_run.sdk.trace.sampling",
    "BatchSpanProcessor": "telemetry_run.sdk.processors.batch",
    "ConsoleSpanExporter": "telemetry_run.sdk.exporters.console",
    "Decision": "telemetry_run.sdk.trace.sampling",
    "Diagnostics": "telemetry_run.sdk.diagnostics",
    "ExportResult": "telemetry_run.sdk.exporters",
    "IdGenerator": "telemetry_run.sdk.trace.ids",
    "InMemorySpanExporter": "telemetry_run.sdk.exporters.memory",
    "ParentBased": "telemetry_run.sdk.trace.sampling",
    "ParentBasedTraceIdRatio": "telemetry_run.sdk.trace.sampling",
    "RandomIdGenerator": "telemetry_run.sdk.trace.ids",
    "ReadableSpan": "telemetry_run.sdk.trace.span",
    "Resource": "telemetry_run.sdk.resources",
    "Sampler": "telemetry_run.sdk.trace.sampling",
    "SamplingResult": "telemetry_run.sdk.trace.sampling",
    "SimpleSpanProcessor": "telemetry_run.sdk.processors.simple",
    "SpanExporter": "telemetry_run.sdk.exporters",
    "SpanLimits": "telemetry_run.sdk.trace.limits",
    "SpanProcessor": "telemetry_run.sdk.processors",
    "TraceIdRatioBased": "telemetry_run.sdk.trace.sampling",
    "Tracer": "telemetry_run.sdk.trace.provider",
    "TracerProvider": "telemetry_run.sdk.trace.provider",
    "get_diagnostics": "telemetry_run.sdk.diagnostics",
}


# Imported on first use: the bootstrap needs a few of these, not the console exporter's json or
# every processor, at every interpreter start.
__getattr__, __dir__ = lazy_exports(__name__, _HOME)
