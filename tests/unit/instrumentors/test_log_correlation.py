"""Log records, structlog events and loguru records carry the current span's ids (#16)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_run.config import Config, Variable
from telemetry_run.instrumentors.base import NotApplicable
from telemetry_run.instrumentors.log_correlation import LogCorrelationInstrumentor
from telemetry_run.instrumentors.plugin import SPECS
from telemetry_run.log_correlation import loguru_patcher, structlog_processor
from telemetry_run.sdk.trace import ReadableSpan
from telemetry_run.testing import SpanRecorder
from tests.native_twins import twins

factory_twin = twins("telemetry_run.sdk.log_correlation", "_NativeRecordFactory")


FORMAT_FIELDS = ("otelTraceID", "otelSpanID", "otelTraceSampled", "otelServiceName")
FORMAT = "%(otelTraceID)s %(otelSpanID)s %(otelTraceSampled)s %(otelServiceName)s %(message)s"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """A handler of the application's own, with a format naming the fields."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("tests.app")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


@pytest.fixture
def instrumented(span_recorder: SpanRecorder) -> Iterator[LogCorrelationInstrumentor]:
    before = logging.getLogRecordFactory()
    instrumentor = LogCorrelationInstrumentor()
    assert instrumentor.instrument(span_recorder.provider)
    yield instrumentor
    instrumentor.uninstrument()
    assert logging.getLogRecordFactory() is before


def _ids(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x} {span.context.span_id:016x}"


@pytest.mark.usefixtures("instrumented")
def test_a_line_logged_in_a_span_has_its_ids_and_one_outside_has_zeros(
    span_recorder: SpanRecorder, lines: io.StringIO
) -> None:
    logger = logging.getLogger("tests.app")
    with span_recorder.tracer.start_as_current_span("request"):
        logger.info("inside")
        with span_recorder.tracer.start_as_current_span("query"):
            logger.info("nested")
        logger.info("inside again")
    logger.info("outside")
    request, query = span_recorder.one("request"), span_recorder.one("query")
    assert lines.getvalue().splitlines() == [
        f"{_ids(request)} True test inside",
        f"{_ids(query)} True test nested",
        f"{_ids(request)} True test inside again",
        "0 0 False test outside",
    ]


def test_the_factory_chains_to_one_set_before_and_a_chaining_one_set_after(
    span_recorder: SpanRecorder, lines: io.StringIO
) -> None:
    original = logging.getLogRecordFactory()

    def tagging(before: Any, tag: str) -> Any:
        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = before(*args, **kwargs)
            record.msg = f"{record.msg} [{tag}]"
            return record

        return factory

    logging.setLogRecordFactory(tagging(original, "app-before"))
    try:
        instrumentor = LogCorrelationInstrumentor()
        instrumentor.instrument(span_recorder.provider)
        logging.setLogRecordFactory(tagging(logging.getLogRecordFactory(), "app-after"))
        with span_recorder.tracer.start_as_current_span("request"):
            logging.getLogger("tests.app").info("both")
        instrumentor.uninstrument()  # ours is not the factory: left in place, passing through
        with span_recorder.tracer.start_as_current_span("later"):
            record = logging.getLogger("t").makeRecord("t", logging.INFO, "f", 1, "after", (), None)
        idle = logging.getLogger("t").makeRecord("t", logging.INFO, "f", 1, "idle", (), None)
    finally:
        logging.setLogRecordFactory(original)
    ids = _ids(span_recorder.one("request"))
    assert lines.getvalue().splitlines() == [f"{ids} True test both [app-before] [app-after]"]
    assert record.msg == "after [app-before] [app-after]"
    assert "otelTraceID" not in vars(record)
    assert "otelTraceID" not in vars(idle)  # outside a span too: nothing added once uninstalled


def test_the_factory_is_the_twin_asked_for_and_passes_calls_through_unchanged(
    instrumented: LogCorrelationInstrumentor, factory_twin: str
) -> None:
    factory = logging.getLogRecordFactory()
    assert (type(factory).__name__ == "RecordFactory") is (factory_twin == "native")
    # keywords reach the previous factory (LogRecord's func and sinfo), positional or not
    record = factory("n", logging.INFO, "f", 1, "m %s", ("x",), None, func="handler", sinfo="s")
    assert (record.funcName, record.stack_info, record.getMessage()) == ("handler", "s", "m x")
    assert record.otelTraceID == "0"
    with pytest.raises(TypeError):  # the previous factory's own error, as without us
        factory("too few")


def test_a_previous_factory_that_fails_or_makes_no_plain_record_fails_as_without_us(
    span_recorder: SpanRecorder,
) -> None:
    from telemetry_run.sdk.log_correlation import record_factory

    class Gate:
        active = True

    def failing(*args: Any) -> Any:
        raise LookupError("the app's factory")

    with pytest.raises(LookupError, match="the app's factory"):
        record_factory(failing, "svc", Gate())("n", logging.INFO, "f", 1, "m", (), None)
    slotted = record_factory(lambda *args: 42, "svc", Gate())  # no __dict__ to put fields in
    with pytest.raises(AttributeError):
        slotted("n", logging.INFO, "f", 1, "m", (), None)
    Gate.active = False  # turned off: whatever the previous factory made goes through as is
    assert slotted("n", logging.INFO, "f", 1, "m", (), None) == 42
    with span_recorder.tracer.start_as_current_span("request"):
        assert slotted("n", logging.INFO, "f", 1, "m", (), None) == 42


def test_a_format_naming_the_fields_works_before_any_span_and_never_raises(
    instrumented: LogCorrelationInstrumentor,
) -> None:
    record = logging.getLogger("tests.app").makeRecord("n", logging.INFO, "f", 1, "m", (), None)
    assert logging.Formatter(FORMAT).format(record) == "0 0 False test m"
    # In the record's own __dict__ (what every formatting style reads), not a class default.
    assert {key: vars(record)[key] for key in FORMAT_FIELDS} == {
        "otelTraceID": "0",
        "otelSpanID": "0",
        "otelTraceSampled": False,
        "otelServiceName": "test",
    }
    assert logging.Formatter("{otelTraceID}-{otelSpanID} {message}", style="{").format(record) == (
        "0-0 m"
    )


def test_log_correlation_false_is_a_quiet_skip(span_recorder: SpanRecorder) -> None:
    (spec,) = [spec for spec in SPECS if spec.name == "logging"]
    variables: list[Variable] = list(spec.declared_variables())
    warnings: list[str] = []
    config = Config.from_env({"OTEL_PYTHON_LOG_CORRELATION": "False"}, variables)
    before = logging.getLogRecordFactory()
    with pytest.raises(NotApplicable, match="OTEL_PYTHON_LOG_CORRELATION=false"):
        LogCorrelationInstrumentor().instrument(span_recorder.provider, config)
    assert logging.getLogRecordFactory() is before
    bad = Config.from_env({"OTEL_PYTHON_LOG_CORRELATION": "yes"}, variables, warn=warnings.append)
    assert bad["OTEL_PYTHON_LOG_CORRELATION"] is True
    assert warnings == [
        "OTEL_PYTHON_LOG_CORRELATION='yes' is not a boolean (true or false); "
        "using the default (true)"
    ]


def test_the_structlog_processor_and_the_loguru_patcher_add_the_same_fields(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry_run.sdk import log_correlation
    from telemetry_run.sdk.trace import globals as trace_globals

    monkeypatch.setattr(log_correlation, "_fields", None)  # read the global provider anew
    monkeypatch.setattr(trace_globals, "get_tracer_provider", lambda: span_recorder.provider)
    outside = structlog_processor(None, "info", {"event": "outside"})
    with span_recorder.tracer.start_as_current_span("request"):
        event = structlog_processor(None, "info", {"event": "inside"})
        record: dict[str, Any] = {"extra": {"user": "u-1"}}
        loguru_patcher(record)
    context = span_recorder.one("request").context
    expected = {
        "otelTraceID": f"{context.trace_id:032x}",
        "otelSpanID": f"{context.span_id:016x}",
        "otelTraceSampled": True,
        "otelServiceName": "test",
    }
    assert event == {"event": "inside", **expected}
    assert record == {"extra": {"user": "u-1", **expected}}
    assert outside == {
        "event": "outside",
        "otelTraceID": "0",
        "otelSpanID": "0",
        "otelTraceSampled": False,
        "otelServiceName": "test",
    }


def test_a_span_that_fails_to_give_its_context_costs_the_ids_not_the_log_line(
    instrumented: LogCorrelationInstrumentor,
    span_recorder: SpanRecorder,
    lines: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from telemetry_run.sdk import diagnostics
    from telemetry_run.sdk.trace.current import use_span

    reported: list[str] = []
    collecting = diagnostics.Diagnostics()
    collecting.on_internal_error = lambda error: reported.append(error.where)
    monkeypatch.setattr(diagnostics, "get_diagnostics", lambda: collecting)
    from telemetry_run.trace import NonRecordingSpan, SpanContext

    class BrokenSpan(NonRecordingSpan):
        def get_span_context(self) -> SpanContext:
            raise RuntimeError("a span of another SDK, say")

    with use_span(BrokenSpan(span_recorder.tracer.start_span("x").get_span_context())):
        logging.getLogger("tests.app").info("still logged")
    assert lines.getvalue() == "0 0 False test still logged\n"
    assert reported == ["log correlation: read the current span"]


def test_structlog_and_loguru_render_the_fields_through_their_own_pipelines(
    span_recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loguru
    import structlog

    from telemetry_run.sdk import log_correlation
    from telemetry_run.sdk.trace import globals as trace_globals

    monkeypatch.setattr(log_correlation, "_fields", None)
    monkeypatch.setattr(trace_globals, "get_tracer_provider", lambda: span_recorder.provider)
    printed = io.StringIO()
    struct_logger = structlog.wrap_logger(
        structlog.PrintLogger(printed),
        processors=[
            structlog_processor,
            structlog.processors.KeyValueRenderer(key_order=["event", "otelSpanID"]),
        ],
    )
    sink = io.StringIO()
    handler = loguru.logger.add(sink, format="{extra[otelTraceID]} {extra[otelSpanID]} {message}")
    try:
        patched = loguru.logger.patch(loguru_patcher)  # type: ignore[arg-type]
        with span_recorder.tracer.start_as_current_span("request"):
            struct_logger.info("paid")
            patched.info("shipped")
        patched.info("idle")
    finally:
        loguru.logger.remove(handler)
    context = span_recorder.one("request").context
    span_id, trace_id = f"{context.span_id:016x}", f"{context.trace_id:032x}"
    (line,) = printed.getvalue().splitlines()
    assert line.startswith(f"event='paid' otelSpanID='{span_id}' ")
    assert f"otelTraceID='{trace_id}'" in line
    assert sink.getvalue().splitlines() == [f"{trace_id} {span_id} shipped", "0 0 idle"]
