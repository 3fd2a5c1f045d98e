"""The console waterfall: fixed traces drawn as golden text (plain mode), and its edges.

Plain mode is what a pipe, a file or ``NO_COLOR`` gets; the golden texts are what a user reads.
The 500-span trace's golden text is ``golden/waterfall_500.txt``.
"""

from __future__ import annotations

from pathlib import Path

from telemetry_run.sdk.exporters.waterfall import Glyphs, format_duration, render_trace
from telemetry_run.sdk.trace.api import SpanContext, SpanKind, StatusCode
from tests.unit.sdk.waterfall_traces import (
    TRACE_ID,
    TraceBuilder,
    demo_trace,
    remote,
)

GOLDEN = Path(__file__).parent / "golden"


def test_the_demo_trace_nests_by_parent_with_bars_durations_and_key_attributes() -> None:
    # The Flask server span's parent came in a traceparent header but is a span of this
    # process, in the same output: it nests under that client span, no marker.
    assert render_trace(demo_trace()).splitlines() == [
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 | demo | 5 spans | 18.2 ms | 1 error",
        "demo client                     ████████████████████████████████████████    18.2 ms",
        "├─ GET                           █████████████████                           7.9 ms"
        "  client status=200",
        "│  └─ GET /users/<int:user_id>      ███████████                              5.1 ms"
        "  server route=/users/<int:user_id> status=200",
        "│     └─ load_user                     █                                     400 µs",
        "└─ POST                                             ████████████████████     9.0 ms"
        "  client ✗ ERROR: 500 status=500",
    ]


def test_a_parent_in_another_process_is_a_marker_and_errors_are_marked() -> None:
    with TraceBuilder() as b:
        server = b.span(
            "GET /checkout",
            0,
            50,
            remote(),
            SpanKind.SERVER,
            {"http.route": "/checkout", "http.response.status_code": 500},
            error="payment service unavailable",
        )
        b.span("SELECT orders", 1, 4, server, SpanKind.CLIENT, {"db.operation.name": "SELECT"})
        b.span(
            "pay.Payments/Charge",
            5,
            45,
            server,
            SpanKind.CLIENT,
            {"rpc.service": "pay.Payments", "rpc.method": "Charge", "rpc.grpc.status_code": 14},
            error="UNAVAILABLE",
        )
    assert render_trace(b.spans()) == (
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 | shop | 3 spans | 50.0 ms | 2 errors\n"
        "⇠ remote parent 00f067aa0ba902b7 (another process)\n"
        "└─ GET /checkout           ████████████████████████████████████████    50.0 ms"
        "  server ✗ ERROR: payment service unavailable route=/checkout status=500\n"
        "   ├─ SELECT orders         ██                                          3.0 ms"
        "  client db=SELECT\n"
        "   └─ pay.Payments/Charge      ████████████████████████████████        40.0 ms"
        "  client ✗ ERROR: UNAVAILABLE rpc=pay.Payments/Charge grpc_status=14\n"
    )


def test_spans_whose_local_parent_is_not_shown_hang_under_a_missing_parent_marker() -> None:
    with TraceBuilder() as b:
        b.span("root", 0, 10)
        lost_parent = SpanContext(TRACE_ID, 0x3E7, is_remote=False, trace_flags=1)
        b.span("late-1", 11, 12, lost_parent)
        b.span("late-2", 12, 14, lost_parent)
    text = render_trace(b.spans(), note="printed at exit: its local root had not ended")
    assert text.splitlines() == [
        "trace 4bf92f3577b34da6a3ce929d0e0e4736 | shop | 3 spans | 14.0 ms"
        " | printed at exit: its local root had not ended",
        "root       █████████████████████████████               10.0 ms",
        "? parent 00000000000003e7 (not in this output)",
        "├─ late-1                                 ███           1.0 ms",
        "└─ late-2                                    ██████     2.0 ms",
    ]


def test_ascii_glyphs_for_streams_that_cannot_encode_box_drawing() -> None:
    text = render_trace(demo_trace(), glyphs=Glyphs(unicode=False))
    assert text.isascii()
    assert text.splitlines()[2:5] == [
        "+- GET                           #################                           7.9 ms"
        "  client status=200",
        "|  `- GET /users/<int:user_id>      ###########                              5.1 ms"
        "  server route=/users/<int:user_id> status=200",
        "|     `- load_user                     #                                     400 us",
    ]
    assert "x ERROR: 500" in text


def test_colour_is_added_only_when_asked_and_errors_are_red() -> None:
    spans = demo_trace()
    assert "\x1b" not in render_trace(spans)
    coloured = render_trace(spans, color=True).splitlines()
    post = next(line for line in coloured if "POST" in line)
    assert "\x1b[31m█" in post and "\x1b[31m✗ ERROR" in post
    # with the escape sequences removed, the coloured text is the plain one
    import re

    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in coloured]
    assert plain == render_trace(spans).splitlines()


def test_names_attributes_and_descriptions_cannot_inject_terminal_sequences() -> None:
    with TraceBuilder() as b:
        b.span(
            "evil\x1b[2J\nname\x9b",
            0,
            1,
            attributes={"http.route": "/x\r\n\x1b]0;title\x07"},
            error="line1\nline2\x1b[31m",
        )
    text = render_trace(b.spans())
    assert "\x1b" not in text and "\r" not in text and "\x9b" not in text and "\x07" not in text
    assert len(text.splitlines()) == 2  # the header and one line for the span
    assert "evil\\x1b[2J\\nname\\x9b" in text
    assert "route=/x\\r\\n\\x1b]0;title\\x07" in text
    assert "ERROR: line1\\nline2\\x1b[31m" in text


def test_a_trace_of_500_spans_matches_its_golden_file() -> None:
    with TraceBuilder("catalog") as b:
        root = b.span(
            "GET /catalog",
            0,
            1000,
            remote(),
            SpanKind.SERVER,
            {"http.route": "/catalog", "http.response.status_code": 200},
        )
        parent = root
        for page in range(19):
            page_span = b.span(f"render page {page}", page * 50, page * 50 + 48, root)
            for item in range(25):
                start = page * 50 + item * 1.9
                b.span(
                    f"SELECT item {page}.{item}",
                    start,
                    start + 1.5,
                    page_span,
                    SpanKind.CLIENT,
                    {"db.operation.name": "SELECT"},
                    error="timeout" if (page, item) == (7, 3) else None,
                )
            parent = page_span
        for depth in range(5):  # a chain under the last page
            parent = b.span(f"step {depth}", 920 + depth, 947 - depth, parent)
    spans = b.spans()
    assert len(spans) == 500
    text = render_trace(spans)
    assert text == (GOLDEN / "waterfall_500.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 1 + 1 + 500  # header, the remote-parent marker, one line per span
    names = [span.name for span in spans]
    assert sorted(n for n in names if any(n in line for line in lines)) == sorted(names)


def test_a_deep_chain_is_drawn_iteratively_with_its_indentation_capped() -> None:
    with TraceBuilder() as b:
        parent = b.span("level 0", 0, 4000)
        for depth in range(1, 1500):  # deeper than the interpreter's recursion limit allows
            parent = b.span(f"level {depth}", depth, 4000 - depth, parent)
    lines = render_trace(b.spans()).splitlines()
    assert len(lines) == 1501
    assert lines[-1].lstrip("│ └─├…").startswith("level 1499")
    assert max(len(line) for line in lines) == max(len(lines[1]), len(lines[-1]))
    assert lines[-1].startswith("… ")  # the prefix keeps its last levels only


def test_a_cycle_of_parent_ids_still_prints_every_span_once() -> None:
    with TraceBuilder() as b:  # ids are 1, 2: each span names the other as its parent
        b.span("a", 0, 1, SpanContext(TRACE_ID, 2, is_remote=False, trace_flags=1))
        b.span("b", 0, 1, SpanContext(TRACE_ID, 1, is_remote=False, trace_flags=1))
    lines = render_trace(b.spans()).splitlines()
    assert len(lines) == 3
    assert sum(line.startswith("a ") for line in lines) == 1
    assert sum(line.startswith("b ") for line in lines) == 1


def test_an_error_without_a_description_shows_its_recorded_exception() -> None:
    with TraceBuilder() as b:
        span = b.span("POST /checkout", 0, 1, kind=SpanKind.SERVER)
        span.record_exception(RuntimeError("payment service unavailable"))
        span.set_status(StatusCode.ERROR)
    line = render_trace(b.spans()).splitlines()[1]
    assert line.endswith("server ✗ ERROR: RuntimeError: payment service unavailable")


def test_durations_read_in_one_unit() -> None:
    assert [format_duration(n) for n in (0, 850_000, 12_400_000, 3_210_000_000)] == [
        "0 µs",
        "850 µs",
        "12.4 ms",
        "3.21 s",
    ]
    assert format_duration(850_000, Glyphs(unicode=False)) == "850 us"
