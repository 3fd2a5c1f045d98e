"""The global provider: proxies for early tracers, and the first provider set wins."""

from __future__ import annotations

import logging

import pytest

from telemetry_run import trace
from telemetry_run.sdk import Diagnostics, InMemorySpanExporter, SimpleSpanProcessor, TracerProvider
from telemetry_run.sdk.trace.globals import ProxyTracerProvider


def _provider(diagnostics: Diagnostics) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(diagnostics=diagnostics, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter, diagnostics=diagnostics))
    return provider, exporter


def test_a_tracer_taken_before_the_provider_records_once_it_is_set(
    diagnostics: Diagnostics,
) -> None:
    assert isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    early = trace.get_tracer("lib.at.import.time", "2.0")
    with early.start_as_current_span("before") as span:
        assert not span.is_recording()

    @early.start_as_current_span("decorated")
    def work() -> bool:
        return trace.get_current_span().is_recording()

    assert work() is False
    provider, exporter = _provider(diagnostics)
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider
    with early.start_as_current_span("after") as span:
        assert span.is_recording()
    assert work() is True
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["after", "decorated"]
    scope = exporter.get_finished_spans()[0].instrumentation_scope
    assert (scope.name, scope.version) == ("lib.at.import.time", "2.0")


def test_a_second_provider_is_ignored_with_one_warning_naming_both(
    diagnostics: Diagnostics, caplog: pytest.LogCaptureFixture
) -> None:
    first, first_exporter = _provider(diagnostics)
    second, second_exporter = _provider(diagnostics)
    trace.set_tracer_provider(first)
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        trace.set_tracer_provider(second)
    assert trace.get_tracer_provider() is first
    warnings = [r for r in caplog.records if "ignored" in r.getMessage()]
    assert len(warnings) == 1
    assert repr(first) in warnings[0].getMessage() and repr(second) in warnings[0].getMessage()
    with trace.get_tracer("x").start_as_current_span("s"):
        pass
    assert len(first_exporter.get_finished_spans()) == 1
    assert second_exporter.get_finished_spans() == ()


def test_get_tracer_with_an_explicit_provider(diagnostics: Diagnostics) -> None:
    provider, exporter = _provider(diagnostics)
    tracer = trace.get_tracer("x", tracer_provider=provider)
    tracer.start_span("s").end()
    assert len(exporter.get_finished_spans()) == 1
    assert provider.get_tracer("x") is provider.get_tracer("x")
