"""The console and in-memory exporters."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from telemetry_run.sdk import (
    ConsoleSpanExporter,
    Diagnostics,
    InMemorySpanExporter,
    ReadableSpan,
    Resource,
    SimpleSpanProcessor,
    TracerProvider,
)
from telemetry_run.sdk.trace import Tracer
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from tests.unit.sdk.scripts import run_script

FAR = 1e12  # a deadline that never passes


@pytest.fixture
def tracer_and_spans(diagnostics: Diagnostics) -> Iterator[tuple[Tracer, InMemorySpanExporter]]:
    recorder = InMemorySpanExporter()
    provider = TracerProvider(
        Resource({"service.name": "exporter-test"}),
        diagnostics=diagnostics,
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(recorder, diagnostics=diagnostics))
    yield provider.get_tracer("exporter-test", "2.0"), recorder
    provider.shutdown(timeout=5)


def parent_and_child(tracer: Tracer) -> tuple[ReadableSpan, ReadableSpan]:
    """A SERVER root with attributes and a child that failed; both ended."""
    with tracer.start_as_current_span(
        "GET /items", kind=SpanKind.SERVER, attributes={"http.method": "GET", "n": 3}
    ) as parent:
        child = tracer.start_span("load", attributes={"rows": 2, "tags": ("a", "b")})
        child.add_event("cache miss", {"key": "k"})
        child.set_status(StatusCode.ERROR, "db down")
        child.end()
    return parent, child  # type: ignore[return-value]


def strict_json(line: str) -> Any:
    """Parse as RFC 8259 JSON: NaN and Infinity are not JSON."""

    def reject(constant: str) -> NoReturn:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(line, parse_constant=reject)


# -- console, readable lines -------------------------------------------------------------------


def test_console_writes_one_readable_line_per_span(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    parent, child = parent_and_child(tracer_and_spans[0])
    out = io.StringIO()
    result = ConsoleSpanExporter(out).export([child, parent], deadline=FAR)
    assert result.success
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""  # every line ends with a newline
    child_line, parent_line = lines[:-1]

    pctx, cctx = parent.context, child.context
    assert child_line.startswith("'load' INTERNAL ")
    assert " ERROR(db down) " in child_line
    assert f"trace={cctx.trace_id:032x} span={cctx.span_id:016x} parent={pctx.span_id:016x}" in (
        child_line
    )
    assert '{"rows": 2, "tags": ["a", "b"]}' in child_line
    assert child_line.endswith("events=[cache miss]")

    assert parent_line.startswith("'GET /items' SERVER ")
    assert " UNSET " in parent_line
    assert f"span={pctx.span_id:016x} parent={'-' * 16}" in parent_line
    assert parent_line.endswith('{"http.method": "GET", "n": 3}')


def test_console_keeps_multi_line_values_on_one_line(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer = tracer_and_spans[0]
    with (
        contextlib.suppress(ValueError),
        tracer.start_as_current_span("multi\nline name", attributes={"sql": "SELECT 1\nFROM t"}),
    ):
        inner = tracer.start_span("inner")
        inner.add_event("first\nsecond")
        inner.end()
        raise ValueError("first line\nsecond line\r\nthird")
    inner, outer = tracer_and_spans[1].get_finished_spans()
    out = io.StringIO()
    assert ConsoleSpanExporter(out).export([inner, outer], deadline=FAR).success
    lines = out.getvalue().split("\n")
    assert len(lines) == 3
    assert lines[-1] == ""
    assert "events=[first\\nsecond]" in lines[0]
    assert "ERROR(ValueError: first line\\nsecond line\\r\\nthird)" in lines[1]
    assert "\r" not in out.getvalue()


def test_console_defaults_to_stdout_as_it_is_at_export_time(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, _ = parent_and_child(tracer_and_spans[0])
    exporter = ConsoleSpanExporter()
    replaced = io.StringIO()
    monkeypatch.setattr(sys, "stdout", replaced)  # e.g. redirected after the exporter was made
    assert exporter.export([parent], deadline=FAR).success
    assert replaced.getvalue().startswith("'GET /items' SERVER ")


# -- console, JSON -----------------------------------------------------------------------------


def test_console_json_writes_one_valid_object_per_line(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    parent, child = parent_and_child(tracer_and_spans[0])
    out = io.StringIO()
    assert ConsoleSpanExporter(out, json=True).export([child, parent], deadline=FAR).success
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""
    c, p = (strict_json(line) for line in lines[:-1])

    assert p["traceId"] == c["traceId"] == f"{parent.context.trace_id:032x}"
    assert p["spanId"] == f"{parent.context.span_id:016x}"
    assert c["spanId"] == f"{child.context.span_id:016x}"
    for obj in (p, c):
        assert len(obj["traceId"]) == 32
        assert len(obj["spanId"]) == 16
        assert int(obj["traceId"], 16)
        assert int(obj["spanId"], 16)
    assert c["parentSpanId"] == p["spanId"]
    assert "parentSpanId" not in p
    assert p["kind"] == "SPAN_KIND_SERVER"
    assert c["kind"] == "SPAN_KIND_INTERNAL"
    assert c["status"] == {"code": "STATUS_CODE_ERROR", "message": "db down"}
    assert p["status"] == {"code": "STATUS_CODE_UNSET"}
    assert p["attributes"] == {"http.method": "GET", "n": 3}
    assert c["attributes"] == {"rows": 2, "tags": ["a", "b"]}
    assert c["events"][0]["name"] == "cache miss"
    assert c["events"][0]["attributes"] == {"key": "k"}
    assert p["startTimeUnixNano"] <= p["endTimeUnixNano"]
    assert p["resource"] == {"service.name": "exporter-test"}
    assert p["scope"] == {"name": "exporter-test"}


def test_console_json_stays_valid_json_for_non_finite_floats(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer = tracer_and_spans[0]
    span = tracer.start_span(
        "odd numbers",
        attributes={"nan": float("nan"), "inf": float("inf"), "many": (1.5, float("-inf"))},
    )
    span.add_event("e", {"ninf": float("-inf")})
    span.end()
    out = io.StringIO()
    assert ConsoleSpanExporter(out, json=True).export([span], deadline=FAR).success  # type: ignore[list-item]
    (line,) = out.getvalue().splitlines()
    obj = strict_json(line)
    # The OTLP/JSON (protobuf JSON) spelling of non-finite doubles.
    assert obj["attributes"] == {"nan": "NaN", "inf": "Infinity", "many": [1.5, "-Infinity"]}
    assert obj["events"][0]["attributes"] == {"ninf": "-Infinity"}


# -- console, broken streams -------------------------------------------------------------------


class BrokenPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


class FailingFlush(io.StringIO):
    def flush(self) -> None:
        raise OSError(5, "Input/output error")


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("kind", ["closed", "broken-pipe", "failing-flush"])
def test_console_reports_a_broken_stream_as_a_failed_export(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter], kind: str, json_lines: bool
) -> None:
    parent, _ = parent_and_child(tracer_and_spans[0])
    stream: io.StringIO
    if kind == "closed":
        stream = io.StringIO()
        stream.close()
    else:
        stream = BrokenPipe() if kind == "broken-pipe" else FailingFlush()
    result = ConsoleSpanExporter(stream, json=json_lines).export([parent], deadline=FAR)
    assert not result.success
    assert result.error
    assert result.error.startswith("console write failed")


def test_console_flush_and_shutdown_are_harmless() -> None:
    exporter = ConsoleSpanExporter(io.StringIO())
    assert exporter.force_flush(deadline=FAR)
    exporter.shutdown(deadline=FAR)
    assert exporter.export([], deadline=FAR).success


# -- in memory ---------------------------------------------------------------------------------


def test_in_memory_keeps_spans_in_order_until_cleared(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    parent, child = parent_and_child(tracer_and_spans[0])
    exporter = InMemorySpanExporter()
    assert exporter.get_finished_spans() == ()
    assert exporter.export([child], deadline=FAR).success
    assert exporter.export([parent, child], deadline=FAR).success
    snapshot = exporter.get_finished_spans()
    assert snapshot == (child, parent, child)
    exporter.clear()
    assert exporter.get_finished_spans() == ()
    assert snapshot == (child, parent, child)  # earlier snapshots are not affected
    assert exporter.force_flush(deadline=FAR)


def test_in_memory_fails_fast_after_shutdown(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    parent, _ = parent_and_child(tracer_and_spans[0])
    exporter = InMemorySpanExporter()
    exporter.export([parent], deadline=FAR)
    exporter.shutdown(deadline=FAR)
    result = exporter.export([parent], deadline=FAR)
    assert not result.success
    assert result.error
    assert exporter.get_finished_spans() == (parent,)


def test_in_memory_records_through_the_provider(
    tracer_and_spans: tuple[Tracer, InMemorySpanExporter],
) -> None:
    tracer, recorder = tracer_and_spans
    parent, child = parent_and_child(tracer)
    assert recorder.get_finished_spans() == (child, parent)


# -- fork --------------------------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent(
    """
    import io, os, sys, threading
    from telemetry_run.sdk import (
        ConsoleSpanExporter, Diagnostics, InMemorySpanExporter, Resource, SimpleSpanProcessor,
        TracerProvider,
    )

    kind, out = sys.argv[1], sys.argv[2]
    entered, release = threading.Event(), threading.Event()
    parent = os.getpid()

    class SlowStream(io.StringIO):
        # In the parent, a write blocks (a full pipe, a slow terminal) until released.
        def write(self, s):
            if os.getpid() == parent and not release.is_set():
                entered.set()
                release.wait()
            return super().write(s)

    exporter = ConsoleSpanExporter(SlowStream()) if kind == "console" else InMemorySpanExporter()
    diag = Diagnostics()
    provider = TracerProvider(
        Resource({"service.name": "fork"}), diagnostics=diag, shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter(), diagnostics=diag))
    span = provider.get_tracer("fork").start_span("s")
    span.end()

    if kind == "console":
        busy = threading.Thread(target=lambda: exporter.export([span], deadline=1e12))
    else:
        # The in-memory exporter holds its lock only briefly: hold it across the fork.
        def hold():
            with exporter._lock:
                entered.set()
                release.wait()
        busy = threading.Thread(target=hold)
    busy.start()
    assert entered.wait(20)
    pid = os.fork()
    if pid == 0:
        try:
            ok = exporter.export([span], deadline=1e12).success
            with open(out, "w") as f:
                f.write(str(ok))
        finally:
            os._exit(0)
    release.set()
    busy.join()
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("kind", ["console", "memory"])
def test_a_child_forked_while_another_thread_exports_can_export(tmp_path: Path, kind: str) -> None:
    # Without a fresh lock in the child, its export waits forever for the parent's thread.
    out = tmp_path / "child.txt"
    stdout, stderr, returncode = run_script(FORK_SCRIPT, kind, str(out), timeout=30)
    assert returncode == 0, stderr
    assert stdout.split() == ["0"], (stdout, stderr)
    assert out.read_text() == "True"
