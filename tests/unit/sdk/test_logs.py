"""Logs export's SDK half: what a ``logging`` record becomes (ids of the span current when it
was made, severity, exception attributes, the logger as scope), which records are left out (our
own, a non-propagating logger's, anything logged inside the export path), the bounded queue's
drop count, the console line, and that the application's logging configuration is untouched."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from telemetry_run.sdk import Diagnostics, Resource
from telemetry_run.sdk.exporters import SUCCESS, ExportResult
from telemetry_run.sdk.logs import LogData, bridge, severity_number
from telemetry_run.sdk.logs.console import ConsoleLogExporter, format_log_line
from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor
from telemetry_run.sdk.logs.provider import LoggerProvider
from tests.unit.sdk.conftest import Recorder

HOUR = 3600.0


def poll_for(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + 10.0
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.002)


class KeepingExporter:
    """Keeps the records; ``during_export`` runs inside each export (a library that logs)."""

    def __init__(self, during_export: Callable[[], None] | None = None) -> None:
        self.records: list[LogData] = []
        self.during_export = during_export
        self.lock = threading.Lock()

    def export(self, records: Sequence[LogData], *, deadline: float) -> ExportResult:
        if self.during_export is not None:
            self.during_export()
        with self.lock:
            self.records.extend(records)
        return SUCCESS

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        pass

    def bodies(self) -> list[str]:
        with self.lock:
            return [record.body for record in self.records]


class Pipeline:
    def __init__(self, exporter: KeepingExporter, max_queue_size: int = 2048) -> None:
        self.exporter = exporter
        self.provider = LoggerProvider(Resource({"service.name": "logs-test"}))
        self.processor = BatchLogRecordProcessor(
            exporter,
            max_queue_size=max_queue_size,
            schedule_delay=HOUR,  # exports happen at the test's flush
            max_export_batch_size=max_queue_size,
            diagnostics=self.provider.diagnostics,
        )
        self.provider.add_log_record_processor(self.processor)

    def flush(self) -> list[LogData]:
        assert self.provider.force_flush(10.0)
        with self.exporter.lock:
            return list(self.exporter.records)


@pytest.fixture
def pipeline() -> Iterator[Pipeline]:
    made = Pipeline(KeepingExporter())
    bridge.attach(logging, made.provider)
    try:
        yield made
    finally:
        bridge.detach(logging)
        made.provider.shutdown(5.0)


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("app.orders")
    logger.setLevel(logging.DEBUG)
    try:
        yield logger
    finally:
        logger.setLevel(logging.NOTSET)


def test_severity_numbers_follow_the_data_model_mapping_of_python_levels() -> None:
    assert [severity_number(n) for n in (10, 20, 30, 40, 50)] == [5, 9, 13, 17, 21]
    assert [severity_number(n) for n in (21, 22, 25, 29)] == [10, 11, 12, 12]
    assert severity_number(5) == 1  # a custom TRACE level
    assert severity_number(0) == 0
    assert severity_number(99) == 24


def test_a_record_made_inside_a_span_carries_its_ids_and_one_outside_none(
    pipeline: Pipeline, app_logger: logging.Logger, recorder: Recorder
) -> None:
    with recorder.tracer.start_as_current_span("checkout") as span:
        app_logger.warning("paid %s euros", 12)
    app_logger.error("after")
    inside, outside = pipeline.flush()
    ctx = span.get_span_context()
    assert (inside.trace_id, inside.span_id) == (ctx.trace_id, ctx.span_id)
    assert inside.trace_flags == int(ctx.trace_flags) and inside.trace_flags & 1
    assert inside.body == "paid 12 euros"
    assert (inside.severity_number, inside.severity_text) == (13, "WARNING")
    assert inside.scope == "app.orders"
    assert inside.resource.attributes["service.name"] == "logs-test"
    assert inside.attributes["code.function.name"] == (
        "test_a_record_made_inside_a_span_carries_its_ids_and_one_outside_none"
    )
    assert inside.attributes["code.file.path"] == __file__
    assert 0 < inside.time <= inside.observed_time
    assert (outside.trace_id, outside.span_id, outside.severity_number) == (0, 0, 17)


def test_an_exception_record_carries_its_type_message_and_stack_trace(
    pipeline: Pipeline, app_logger: logging.Logger
) -> None:
    try:
        {}["sku-42"]
    except KeyError:
        app_logger.exception("lookup failed")
    (record,) = pipeline.flush()
    assert record.attributes["exception.type"] == "KeyError"
    assert record.attributes["exception.message"] == "'sku-42'"
    stacktrace = record.attributes["exception.stacktrace"]
    assert isinstance(stacktrace, str)
    assert stacktrace.startswith("Traceback (most recent call last)")
    assert "in test_an_exception_record_carries" in stacktrace
    assert record.body == "lookup failed"


def test_extra_fields_become_attributes_and_objects_their_text(
    pipeline: Pipeline, app_logger: logging.Logger
) -> None:
    class Order:
        def __str__(self) -> str:
            return "order#7"

    app_logger.info("placed", extra={"order.id": 7, "order": Order(), "tags": ["a", "b"]})
    (record,) = pipeline.flush()
    assert record.attributes["order.id"] == 7
    assert record.attributes["order"] == "order#7"
    assert record.attributes["tags"] == ("a", "b")
    assert "msg" not in record.attributes and "args" not in record.attributes


def test_the_loggers_levels_decide_what_is_exported(pipeline: Pipeline) -> None:
    quiet = logging.getLogger("app.quiet")
    quiet.info("below the root's WARNING: not exported")
    quiet.warning("exported")
    assert [r.body for r in pipeline.flush()] == ["exported"]


def test_our_own_and_non_propagating_loggers_records_are_not_exported(
    pipeline: Pipeline,
) -> None:
    logging.getLogger("telemetry_run").error("our diagnostics")
    logging.getLogger("telemetry_run.sdk").error("ours too")
    isolated = logging.getLogger("app.isolated")
    isolated.propagate = False
    try:
        isolated.error("stops before the root")
    finally:
        isolated.propagate = True
    logging.getLogger("app.kept").error("kept")
    assert [r.body for r in pipeline.flush()] == ["kept"]


def test_records_logged_inside_the_export_path_are_not_exported_again() -> None:
    library = logging.getLogger("app.transport")
    exported = Pipeline(KeepingExporter(lambda: library.error("retrying the upload")))
    bridge.attach(logging, exported.provider)
    try:
        logging.getLogger("app").error("one")
        records = exported.flush()
        logging.getLogger("app").error("two")
        records = exported.flush()
    finally:
        bridge.detach(logging)
        exported.provider.shutdown(5.0)
    assert [r.body for r in records] == ["one", "two"]
    counts = exported.provider.diagnostics.snapshot()
    assert (counts["produced"], counts["exported"], counts["dropped"]) == (2, 2, 0)


def test_a_handler_that_logs_while_handling_is_exported_once_per_record(
    pipeline: Pipeline,
) -> None:
    class Echo(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.name != "app.echo":
                logging.getLogger("app.echo").error("echo of %s", record.getMessage())

    handler = Echo()
    logging.getLogger("app").addHandler(handler)
    try:
        logging.getLogger("app.source").error("original")
    finally:
        logging.getLogger("app").removeHandler(handler)
    assert [r.body for r in pipeline.flush()] == ["original", "echo of original"]


def test_a_full_queue_drops_new_records_and_counts_them() -> None:
    entered, release = threading.Event(), threading.Event()

    def hold_the_first_batch() -> None:
        if not entered.is_set():
            entered.set()
            release.wait(30)

    full = Pipeline(KeepingExporter(hold_the_first_batch), max_queue_size=3)
    bridge.attach(logging, full.provider)
    try:
        for n in range(3):  # a full batch: the worker takes it and is held in export
            logging.getLogger("app").error("record %d", n)
        assert entered.wait(10)
        for n in range(3, 8):  # three fit in the queue again, two do not
            logging.getLogger("app").error("record %d", n)
    finally:
        bridge.detach(logging)
        release.set()
    records = full.flush()
    full.provider.shutdown(5.0)
    assert [r.body for r in records] == [f"record {n}" for n in range(6)]
    counts = full.provider.diagnostics.snapshot()
    assert (counts["produced"], counts["exported"], counts["queue_full"]) == (8, 6, 2)


def test_basic_config_and_the_last_resort_handler_still_work(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    stream = io.StringIO()
    try:
        assert root.handlers == []  # nothing of ours is in there
        logging.getLogger("app").warning("to the last resort")
        logging.basicConfig(stream=stream, format="APP %(levelname)s %(message)s")
        logging.getLogger("app").warning("configured")
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
    assert stream.getvalue() == "APP WARNING configured\n"
    assert "to the last resort" in capsys.readouterr().err
    assert [r.body for r in pipeline.flush()] == ["to the last resort", "configured"]


def test_a_bug_in_capture_is_reported_once_and_the_app_logs_on(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    errors: list[object] = []
    pipeline.provider.diagnostics.on_internal_error = errors.append
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("app").addHandler(handler)

    def broken(self: object, record: object) -> None:
        raise RuntimeError("capture bug")

    monkeypatch.setattr(bridge._Bridge, "capture", broken)
    try:
        logging.getLogger("app").error("still printed")
    finally:
        logging.getLogger("app").removeHandler(handler)
    assert stream.getvalue() == "still printed\n"
    assert len(errors) == 1


def test_console_prints_one_line_per_record(pipeline: Pipeline) -> None:
    try:
        raise ValueError("bad\nsku")
    except ValueError:
        logging.getLogger("app.console").exception("multi\nline")
    (record,) = pipeline.flush()
    out = io.StringIO()
    assert ConsoleLogExporter(out).export([record], deadline=HOUR + time.monotonic()).success
    (line,) = out.getvalue().splitlines()
    assert line == format_log_line(record)
    stamp, severity, scope, rest = line.split(" ", 3)
    assert stamp.endswith("Z") and stamp[:4].isdigit()
    assert (severity, scope) == ("ERROR", "app.console")
    assert rest.startswith("'multi\\nline' trace=" + "0" * 32 + " span=" + "0" * 16)
    assert '"exception.type": "ValueError"' in rest
    assert "Traceback" not in rest


def test_log_counters_are_apart_from_span_counters(diagnostics: Diagnostics) -> None:
    provider = LoggerProvider(Resource({}))
    assert provider.diagnostics is not diagnostics
    assert provider.diagnostics.noun == "log record"


def test_attribute_limits_keep_the_first_attributes_and_cut_long_strings() -> None:
    limited = Pipeline(KeepingExporter())
    limited.provider.max_attributes = 4
    limited.provider.max_attribute_length = 5
    bridge.attach(logging, limited.provider)
    try:
        logging.getLogger("app").error(
            "a long message is not an attribute",
            extra={"note": "abcdefgh", "tags": ["abcdefgh", "ab"], "n": 3},
        )
    finally:
        bridge.detach(logging)
    (record,) = limited.flush()
    limited.provider.shutdown(5.0)
    assert record.body == "a long message is not an attribute"
    assert len(record.attributes) == 4
    assert record.dropped_attributes == 2
    assert record.attributes["code.file.path"] == __file__[:5]
    assert list(record.attributes)[:3] == [
        "code.file.path",
        "code.function.name",
        "code.line.number",
    ]
    (extra,) = [value for key, value in record.attributes.items() if not key.startswith("code.")]
    assert extra in ("abcde", ("abcde", "ab"), 3)


def test_attaching_again_sends_the_records_to_the_new_provider(pipeline: Pipeline) -> None:
    logging.getLogger("app").error("to the first")
    second = Pipeline(KeepingExporter())
    bridge.attach(logging, second.provider)
    try:
        logging.getLogger("app").error("to the second")
    finally:
        second.provider.shutdown(5.0)
    assert [r.body for r in pipeline.flush()] == ["to the first"]
    assert second.exporter.bodies() == ["to the second"]
