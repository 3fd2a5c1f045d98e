"""The public modules expose exactly their documented names (httpx-style check)."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "telemetry_run.trace": {
        "get_tracer",
        "get_tracer_provider",
        "set_tracer_provider",
        "get_current_span",
        "use_span",
        "set_span_in_context",
        "Span",
        "Tracer",
        "TracerProvider",
        "NonRecordingSpan",
        "INVALID_SPAN",
        "SpanContext",
        "TraceFlags",
        "TraceState",
        "Link",
        "SpanKind",
        "Status",
        "StatusCode",
    },
    "telemetry_run.context": {
        "Context",
        "get_current",
        "attach",
        "detach",
        "get_value",
        "set_value",
    },
    "telemetry_run.propagate": {"inject", "extract", "get_global_textmap", "set_global_textmap"},
    "telemetry_run.baggage": {"get", "get_all", "set", "remove", "clear"},
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_exactly_the_documented_api(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert getattr(module, name) is not None
    public = {n for n in vars(module) if not n.startswith("_") and n != "annotations"}
    assert public == PUBLIC[module_name]


def test_trace_types_are_abstract_where_the_api_is() -> None:
    from telemetry_run import trace

    for abstract in (trace.Span, trace.Tracer, trace.TracerProvider):
        with pytest.raises(TypeError):
            abstract()  # type: ignore[abstract]


def test_code_written_for_opentelemetry_ports_by_changing_imports() -> None:
    """The call shapes of the OpenTelemetry API work unchanged."""
    from telemetry_run import context, propagate, trace
    from telemetry_run.sdk import InMemorySpanExporter, SimpleSpanProcessor, TracerProvider

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

    tracer = trace.get_tracer(__name__, "1.0")
    with tracer.start_as_current_span("handle", kind=trace.SpanKind.SERVER) as span:
        span.set_attribute("http.request.method", "GET")
        span.add_event("start", {"k": "v"})
        headers: dict[str, str] = {}
        propagate.inject(headers)
        assert headers["traceparent"].startswith("00-")
        ctx = propagate.extract(headers)
        remote = trace.get_current_span(ctx).get_span_context()
        assert remote.trace_id == span.get_span_context().trace_id
        token = context.attach(context.set_value("k", "v"))
        assert context.get_value("k") == "v"
        context.detach(token)
        span.set_status(trace.Status(trace.StatusCode.OK))
    with trace.use_span(trace.INVALID_SPAN):
        assert not trace.get_current_span().is_recording()
    (done,) = exporter.get_finished_spans()
    assert done.name == "handle" and done.kind is trace.SpanKind.SERVER
