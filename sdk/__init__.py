"""Our own tracing SDK: it takes arguments and never reads the environment.

The distro (``telemetry_run.bootstrap``) builds it from configuration; code that wants its own
pipeline builds it directly::

    provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
"""

from __future__ import annotations

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
