"""The console exporter's waterfall form: spans held per trace until the local root ends.

Spans reach the exporter in end order and in batches (the batch processor's), so these tests
export in the shapes a batch processor produces and read what a user would see.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from telemetry_run.sdk import ConsoleSpanExporter, ReadableSpan
from telemetry_run.sdk.exporters.console import DEFAULT_MAX_SPANS, DEFAULT_MAX_TRACES
from telemetry_run.sdk.trace.api import SpanContext, SpanKind
from tests.unit.sdk.waterfall_traces import TRACE_ID, TraceBuilder, demo_trace, remote

FAR = 1e12  # a deadline that never passes
HEADER = re.compile(r"^trace ([0-9a-f]{32}) \| ", re.M)


def _exporter(
    max_traces: int = DEFAULT_MAX_TRACES, max_spans: int = DEFAULT_MAX_SPANS
) -> tuple[ConsoleSpanExporter, io.StringIO]:
    out = io.StringIO()
    exporter = ConsoleSpanExporter(out, waterfall=True, max_traces=max_traces, max_spans=max_spans)
    return exporter, out


def _span_lines(text: str, spans: list[ReadableSpan]) -> list[str]:
    names = {s.name for s in spans}
    return [line for line in text.splitlines() if line.lstrip("│├└─ ").split("  ")[0] in names]


def test_nothing_is_printed_until_the_local_root_ends_then_one_waterfall() -> None:
    spans = demo_trace()  # end order: load_user, the server span, GET, POST, the root
    exporter, out = _exporter()
    assert exporter.export(spans[:1], deadline=FAR).success
    # The server span's parent came in a header (remote), but GET, its parent, is here too.
    assert exporter.export(spans[1:4], deadline=FAR).success
    assert out.getvalue() == ""
    assert exporter.export(spans[4:], deadline=FAR).success
    text = out.getvalue()
    assert len(HEADER.findall(text)) == 1
    assert len(text.splitlines()) == 6  # the header and the five spans
    assert text.splitlines()[1].startswith("demo client ")
    exporter.shutdown(deadline=FAR)
    assert len(text) == len(out.getvalue())  # nothing was left to print at exit


def test_a_server_span_with_a_parent_in_another_process_is_printed_when_it_ends() -> None:
    with TraceBuilder() as b:
        server = b.span("GET /a", 0, 10, remote(), SpanKind.SERVER)
        b.span("work", 1, 2, server)
    exporter, out = _exporter()
    exporter.export(b.spans(), deadline=FAR)
    assert out.getvalue().splitlines()[1] == "⇠ remote parent 00f067aa0ba902b7 (another process)"


def test_traces_interleaved_in_batches_are_printed_each_as_its_root_ends() -> None:
    with TraceBuilder(trace_id=1) as first:
        root = first.span("first", 0, 10)
        first.span("first child", 1, 2, root)
    with TraceBuilder(trace_id=2) as second:
        root = second.span("second", 0, 10)
        second.span("second child", 1, 2, root)
    (a_child, a_root), (b_child, b_root) = first.spans(), second.spans()
    exporter, out = _exporter()
    exporter.export([a_child, b_child], deadline=FAR)
    exporter.export([b_root], deadline=FAR)
    assert HEADER.findall(out.getvalue()) == [f"{2:032x}"]
    exporter.export([a_root], deadline=FAR)
    assert HEADER.findall(out.getvalue()) == [f"{2:032x}", f"{1:032x}"]


def test_spans_whose_root_never_ends_here_are_printed_at_shutdown_with_a_note() -> None:
    with TraceBuilder() as b:  # the parent is a local span that never ends (or ended unseen)
        b.span("orphan", 0, 1, SpanContext(TRACE_ID, 0x3E7, is_remote=False, trace_flags=1))
    exporter, out = _exporter()
    exporter.export(b.spans(), deadline=FAR)
    assert out.getvalue() == ""
    exporter.shutdown(deadline=FAR)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("| printed at exit: its local root had not ended")
    assert lines[1] == "? parent 00000000000003e7 (not in this output)"
    assert lines[2].startswith("└─ orphan ")


def test_force_flush_prints_what_is_held() -> None:
    with TraceBuilder() as b:
        b.span("orphan", 0, 1, SpanContext(TRACE_ID, 0x3E7, is_remote=False, trace_flags=1))
    exporter, out = _exporter()
    exporter.export(b.spans(), deadline=FAR)
    assert exporter.force_flush(deadline=FAR)
    assert "printed at flush" in out.getvalue()
    exporter.shutdown(deadline=FAR)
    assert out.getvalue().count("orphan") == 1  # printed once


def _open_traces(count: int, spans_each: int) -> list[ReadableSpan]:
    """``count`` traces whose spans all wait for a local parent that never ends."""
    spans: list[ReadableSpan] = []
    for trace in range(1, count + 1):
        with TraceBuilder(trace_id=trace) as b:
            missing = SpanContext(trace, 0x3E7, is_remote=False, trace_flags=1)
            for i in range(spans_each):
                b.span(f"t{trace} s{i}", i, i + 1, missing)
        spans += b.spans()
    return spans


def test_held_traces_are_bounded_the_oldest_printed_early_and_none_lost() -> None:
    spans = _open_traces(5, 3)
    exporter, out = _exporter(max_traces=2)
    for start in range(0, len(spans), 3):
        exporter.export(spans[start : start + 3], deadline=FAR)
    early = out.getvalue()
    assert HEADER.findall(early) == [f"{1:032x}", f"{2:032x}", f"{3:032x}"]
    assert early.count("printed early: too many spans held") == 3
    exporter.shutdown(deadline=FAR)
    text = out.getvalue()
    assert len(HEADER.findall(text)) == 5
    assert sorted(_span_lines(text, spans)) == sorted(
        line for line in text.splitlines() if re.search(r"t\d s\d", line)
    )
    assert len(_span_lines(text, spans)) == len(spans)  # every span printed exactly once


def test_held_spans_are_bounded_too() -> None:
    spans = _open_traces(1, 10)
    exporter, out = _exporter(max_spans=4)
    exporter.export(spans[:4], deadline=FAR)
    assert out.getvalue() == ""
    exporter.export(spans[4:6], deadline=FAR)
    assert len(re.findall(r"t1 s\d", out.getvalue())) == 6  # the trace so far, printed early
    exporter.export(spans[6:], deadline=FAR)
    exporter.shutdown(deadline=FAR)
    assert len(_span_lines(out.getvalue(), spans)) == 10


def test_a_stream_that_cannot_encode_box_drawing_gets_ascii() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    exporter = ConsoleSpanExporter(out, waterfall=True)
    assert exporter.export(demo_trace(), deadline=FAR).success
    text = raw.getvalue().decode("ascii")
    assert "+- GET " in text and "x ERROR" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_follows_the_terminal_unless_turned_off() -> None:
    for color, stream, coloured in (
        (None, io.StringIO(), False),  # a pipe or a file
        (None, _Terminal(), True),
        (False, _Terminal(), False),  # NO_COLOR
    ):
        ConsoleSpanExporter(stream, waterfall=True, color=color).export(demo_trace(), deadline=FAR)
        assert ("\x1b[" in stream.getvalue()) is coloured, (color, type(stream))


def test_the_flat_and_json_forms_are_unchanged() -> None:
    spans = demo_trace()
    flat, json_out = io.StringIO(), io.StringIO()
    ConsoleSpanExporter(flat).export(spans, deadline=FAR)
    ConsoleSpanExporter(json_out, json=True, waterfall=True).export(spans, deadline=FAR)
    lines = flat.getvalue().splitlines()
    assert len(lines) == len(spans)
    assert all(line.startswith(repr(s.name) + " ") for line, s in zip(lines, spans, strict=True))
    assert all(line.startswith('{"traceId"') for line in json_out.getvalue().splitlines())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_print_the_spans_its_parent_holds(tmp_path: Path) -> None:
    with TraceBuilder() as b:
        b.span("orphan", 0, 1, SpanContext(TRACE_ID, 0x3E7, is_remote=False, trace_flags=1))
    path = tmp_path / "out.txt"
    with path.open("w", encoding="utf-8") as out:
        exporter = ConsoleSpanExporter(out, waterfall=True)
        exporter.export(b.spans(), deadline=FAR)
        pid = os.fork()
        if pid == 0:  # the child: its exit prints what it holds, which must be nothing
            exporter.shutdown(deadline=FAR)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        exporter.shutdown(deadline=FAR)
    assert path.read_text(encoding="utf-8").count("orphan") == 1


@pytest.mark.internal_errors
def test_a_drawing_bug_is_reported_once_and_the_spans_still_printed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from telemetry_run.sdk.exporters import waterfall

    def broken(*args: object, **kwargs: object) -> str:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(waterfall, "render_trace", broken)
    spans = demo_trace()
    exporter, out = _exporter()
    with caplog.at_level("ERROR", logger="telemetry_run"):
        assert exporter.export(spans, deadline=FAR).success
        assert exporter.export(spans, deadline=FAR).success
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 * len(spans)  # the flat form, one line per span
    assert all(
        line.startswith(repr(s.name) + " ") for line, s in zip(lines, spans * 2, strict=True)
    )
    errors = [r.getMessage() for r in caplog.records if "console waterfall" in r.getMessage()]
    assert errors == ["internal error in the console waterfall: ZeroDivisionError: a bug"]
