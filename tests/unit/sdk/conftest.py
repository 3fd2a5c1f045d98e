from __future__ import annotations

from dataclasses import dataclass

import pytest

from telemetry_run.sdk import (
    Diagnostics,
    InMemorySpanExporter,
    Resource,
    Sampler,
    SimpleSpanProcessor,
    SpanLimits,
    TracerProvider,
)
from telemetry_run.sdk.trace import Tracer


@dataclass
class Recorder:
    """A provider whose ended spans land in memory, synchronously."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    tracer: Tracer
    diagnostics: Diagnostics

    @property
    def spans(self):  # type: ignore[no-untyped-def]
        return self.exporter.get_finished_spans()

    def by_name(self, name: str):  # type: ignore[no-untyped-def]
        (span,) = [s for s in self.spans if s.name == name]
        return span


def make_recorder(
    diagnostics: Diagnostics,
    *,
    sampler: Sampler | None = None,
    limits: SpanLimits | None = None,
) -> Recorder:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "test"}),
        sampler=sampler,
        span_limits=limits,
        diagnostics=diagnostics,
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter, diagnostics=diagnostics))
    return Recorder(provider, exporter, provider.get_tracer("test", "1.0"), diagnostics)


@pytest.fixture
def recorder(diagnostics: Diagnostics) -> Recorder:
    return make_recorder(diagnostics)
