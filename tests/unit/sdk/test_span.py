"""Spans as application code sees them: start, attributes, events, links, status, end."""

from __future__ import annotations

import asyncio
import enum
import logging

import pytest

from telemetry_run.sdk import ALWAYS_OFF, Diagnostics, SpanLimits
from telemetry_run.sdk.context import get_current
from telemetry_run.sdk.trace.api import (
    INVALID_SPAN,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from telemetry_run.sdk.trace.current import get_current_span, set_span_in_context, use_span
from tests.native_twins import twins
from tests.unit.sdk.conftest import Recorder, make_recorder

attribute_twins = twins("telemetry_run.sdk.trace.span", "_native_plain")


def test_nested_spans_share_the_trace_and_link_to_their_parent(recorder: Recorder) -> None:
    tracer = recorder.tracer
    with tracer.start_as_current_span("parent") as parent:
        with tracer.start_as_current_span("child") as child:
            assert get_current_span() is child
        assert get_current_span() is parent
    assert get_current_span() is INVALID_SPAN

    p, c = recorder.by_name("parent"), recorder.by_name("child")
    assert c.context.trace_id == p.context.trace_id
    assert c.parent == p.context
    assert p.parent is None
    assert c.context.span_id != p.context.span_id
    assert c.context.trace_flags.sampled
    assert [s.name for s in recorder.spans] == ["child", "parent"]


def test_ids_are_128_and_64_bit_and_non_zero(recorder: Recorder) -> None:
    spans = [recorder.tracer.start_span(f"s{i}") for i in range(200)]
    for span in spans:
        ctx = span.get_span_context()
        assert 0 < ctx.trace_id < 1 << 128
        assert 0 < ctx.span_id < 1 << 64
        assert ctx.is_valid and not ctx.is_remote
    assert len({s.get_span_context().trace_id for s in spans}) == 200
    # Some ids use the high bits: they really are 128-bit.
    assert any(s.get_span_context().trace_id >= 1 << 64 for s in spans)


def test_explicit_parent_context_kind_links_and_start_time(recorder: Recorder) -> None:
    remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(1), TraceState([("k", "v")]))
    ctx = set_span_in_context(NonRecordingSpan(remote))
    other = SpanContext(0x123, 0x456, False, TraceFlags(1))
    span = recorder.tracer.start_span(
        "s",
        context=ctx,
        kind=SpanKind.SERVER,
        links=[Link(other, {"why": "batch"})],
        start_time=1_000,
    )
    span.end(end_time=5_000)
    (done,) = recorder.spans
    assert done.context.trace_id == 0xABC
    assert done.parent == remote
    assert done.context.trace_state == TraceState([("k", "v")])
    assert done.kind is SpanKind.SERVER
    assert done.start_time == 1_000 and done.end_time == 5_000
    assert done.links[0].context == other
    assert dict(done.links[0].attributes) == {"why": "batch"}


def test_empty_context_starts_a_new_trace(recorder: Recorder) -> None:
    with recorder.tracer.start_as_current_span("outer") as outer:
        from telemetry_run.sdk.context import Context

        root = recorder.tracer.start_span("root", context=Context())
        assert root.get_span_context().trace_id != outer.get_span_context().trace_id
        root.end()
    assert recorder.by_name("root").parent is None


def test_attribute_types_and_invalid_values(recorder: Recorder) -> None:
    class Color(enum.IntEnum):
        RED = 1

    class Bad:
        def __str__(self) -> str:
            raise RuntimeError("no")

    span = recorder.tracer.start_span("s", attributes={"start": "yes", "": "empty key"})
    span.set_attribute("str", "v")
    span.set_attribute("bool", True)
    span.set_attribute("int", 7)
    span.set_attribute("float", 1.5)
    span.set_attribute("enum", Color.RED)
    span.set_attribute("list", [1, 2, 3])
    span.set_attribute("strs", ("a", None, "b"))
    span.set_attribute("mixed", [1, "a"])  # invalid: not homogeneous
    span.set_attribute("obj", Bad())  # invalid type, and its __str__ raises
    span.set_attribute("dict", {"a": 1})  # invalid type
    span.set_attribute("huge", 1 << 70)  # does not fit int64
    span.set_attribute("bytes", b"x")  # invalid type
    span.set_attribute(3, "x")  # type: ignore[arg-type]  # non-string key
    span.end()
    attributes = dict(recorder.spans[0].attributes)
    assert attributes == {
        "start": "yes",
        "str": "v",
        "bool": True,
        "int": 7,
        "float": 1.5,
        "enum": 1,
        "list": (1, 2, 3),
        "strs": ("a", None, "b"),
    }
    assert type(attributes["enum"]) is int
    assert recorder.diagnostics.attributes_dropped.value == 7


def test_invalid_attribute_is_reported_through_logging(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        recorder.tracer.start_span("s").set_attribute("x", object())  # type: ignore[arg-type]
    assert "invalid span attribute" in caplog.text


def test_a_list_attribute_cannot_change_after_it_is_set(recorder: Recorder) -> None:
    values = [1, 2]
    span = recorder.tracer.start_span("s")
    span.set_attribute("v", values)
    values.append(3)
    span.end()
    assert recorder.spans[0].attributes["v"] == (1, 2)


def test_limits_drop_and_count(diagnostics: Diagnostics) -> None:
    limits = SpanLimits(
        max_attributes=2,
        max_attribute_length=3,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
    )
    rec = make_recorder(diagnostics, limits=limits)
    link_ctx = SpanContext(1, 2, False)
    span = rec.tracer.start_span("s", links=[Link(link_ctx, {"a": 1, "b": 2}), Link(link_ctx)])
    span.set_attribute("a", "abcdef")
    span.set_attribute("b", ["xyzw", "k"])
    span.set_attribute("c", 1)
    span.set_attribute("a", "replaced")  # an existing key is updated even at the limit
    span.add_event("e1", {"x": 1, "y": 2})
    span.add_event("e2")
    span.end()
    (done,) = rec.spans
    assert dict(done.attributes) == {"a": "rep", "b": ("xyz", "k")}
    assert done.dropped_attributes == 1
    assert [e.name for e in done.events] == ["e1"]
    assert done.events[0].dropped_attributes == 1
    assert done.dropped_events == 1
    assert len(done.links) == 1 and done.dropped_links == 1
    assert done.links[0].dropped_attributes == 1
    snap = diagnostics.snapshot()  # what the exit line reports
    assert (snap["attributes_over_limit"], snap["events_over_limit"]) == (1, 1)
    assert snap["links_over_limit"] == 1


def test_events_and_record_exception(recorder: Recorder) -> None:
    span = recorder.tracer.start_span("s")
    span.add_event("cache.miss", {"key": "k"}, timestamp=123)
    try:
        raise KeyError("missing")
    except KeyError as exc:
        span.record_exception(exc, {"extra": 1})
    span.end()
    (done,) = recorder.spans
    first, exc_event = done.events
    assert (first.name, dict(first.attributes), first.timestamp) == (
        "cache.miss",
        {"key": "k"},
        123,
    )
    assert exc_event.name == "exception"
    assert exc_event.attributes["exception.type"] == "KeyError"
    assert exc_event.attributes["exception.message"] == "'missing'"
    assert "raise KeyError" in str(exc_event.attributes["exception.stacktrace"])
    assert exc_event.attributes["extra"] == 1


def test_exception_escaping_start_as_current_span_sets_error(recorder: Recorder) -> None:
    class AppError(Exception):
        pass

    with pytest.raises(AppError), recorder.tracer.start_as_current_span("s"):
        raise AppError("boom")
    (done,) = recorder.spans
    assert done.status.status_code is StatusCode.ERROR
    assert done.status.description == "AppError: boom"
    assert done.events[0].attributes["exception.type"].endswith("AppError")


SECRET_URL = "https://bob:hunter2@api.example/v1?api_key=s3cr3t&page=2"


def test_exception_text_is_scrubbed_in_message_stacktrace_and_status(recorder: Recorder) -> None:
    """A library's message holds the URL it failed on: nothing of its secrets is recorded."""
    with pytest.raises(ConnectionError), recorder.tracer.start_as_current_span("s"):
        url = SECRET_URL  # a frame's source line and the last line both carry the URL
        raise ConnectionError(f"Max retries exceeded with url: {url}")
    (done,) = recorder.spans
    event = done.events[0]
    recorded = [
        str(event.attributes["exception.message"]),
        str(event.attributes["exception.stacktrace"]),
        str(done.status.description),
    ]
    for text in recorded:
        assert "hunter2" not in text and "s3cr3t" not in text, text
    assert recorded[0] == (
        "Max retries exceeded with url: "
        "https://REDACTED:REDACTED@api.example/v1?api_key=REDACTED&page=2"
    )
    assert recorded[1].endswith(f"ConnectionError: {recorded[0]}\n")
    assert recorded[2] == f"ConnectionError: {recorded[0]}"
    # A description an instrumentor or the app sets itself is scrubbed the same way.
    other = recorder.tracer.start_span("t")
    other.set_status(StatusCode.ERROR, f"gave up on {SECRET_URL}")
    other.end()
    assert recorder.spans[1].status.description == "gave up on " + recorded[0].rsplit(" ")[-1]


def test_a_status_description_that_is_not_text_is_kept_as_given(recorder: Recorder) -> None:
    span = recorder.tracer.start_span("s")
    span.set_status(StatusCode.ERROR, 42)  # type: ignore[arg-type]  # app code passes anything
    span.end()
    assert recorder.spans[0].status.status_code is StatusCode.ERROR


def test_exception_options_can_turn_recording_off(recorder: Recorder) -> None:
    with (
        pytest.raises(ValueError),
        recorder.tracer.start_as_current_span(
            "s", record_exception=False, set_status_on_exception=False
        ),
    ):
        raise ValueError("x")
    (done,) = recorder.spans
    assert done.status.is_unset and not done.events


def test_status_rules(recorder: Recorder) -> None:
    span = recorder.tracer.start_span("s")
    span.set_status(StatusCode.ERROR, "bad")
    assert span.status == Status(StatusCode.ERROR, "bad")  # type: ignore[attr-defined]
    span.set_status(Status(StatusCode.UNSET))  # ignored
    assert span.status.status_code is StatusCode.ERROR  # type: ignore[attr-defined]
    span.set_status(Status(StatusCode.OK, "ignored description"))
    span.set_status(StatusCode.ERROR)  # OK is final
    span.end()
    assert recorder.spans[0].status == Status(StatusCode.OK)
    assert recorder.spans[0].status.description is None


def test_update_name_and_end_once(recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    span = recorder.tracer.start_span("before")
    span.update_name("after")
    assert span.is_recording()
    span.end()
    assert not span.is_recording()
    with caplog.at_level(logging.DEBUG, logger="telemetry_run"):
        span.end()
        span.end()
    span.set_attribute("late", 1)
    span.update_name("too late")
    assert len(recorder.spans) == 1
    assert recorder.spans[0].name == "after"
    assert "late" not in recorder.spans[0].attributes
    assert caplog.text.count("ended more than once") == 1


def test_span_as_context_manager_ends_it_without_making_it_current(recorder: Recorder) -> None:
    with recorder.tracer.start_span("s") as span:
        assert get_current_span() is not span
    assert recorder.spans[0].name == "s"


def test_use_span(recorder: Recorder) -> None:
    span = recorder.tracer.start_span("s")
    with pytest.raises(RuntimeError), use_span(span, end_on_exit=True):
        assert get_current_span() is span
        raise RuntimeError("x")
    assert get_current_span() is INVALID_SPAN
    assert recorder.spans[0].status.status_code is StatusCode.ERROR


def test_decorator_makes_a_fresh_span_per_call(recorder: Recorder) -> None:
    @recorder.tracer.start_as_current_span("work", attributes={"a": 1})
    def work(x: int) -> int:
        assert get_current_span().is_recording()
        return x * 2

    assert work(2) == 4 and work(3) == 6
    assert work.__name__ == "work"
    first, second = recorder.spans
    assert first.context.span_id != second.context.span_id
    assert first.attributes["a"] == 1


def test_async_decorator_and_tasks_keep_their_own_current_span(recorder: Recorder) -> None:
    tracer = recorder.tracer

    @tracer.start_as_current_span("handler")
    async def handler(name: str) -> int:
        span = get_current_span()
        await asyncio.sleep(0.01)
        with tracer.start_as_current_span(name):
            await asyncio.sleep(0.01)
        assert get_current_span() is span
        return span.get_span_context().span_id

    async def main() -> list[int]:
        return list(await asyncio.gather(handler("a"), handler("b")))

    ids = asyncio.run(main())
    a, b = recorder.by_name("a"), recorder.by_name("b")
    assert a.parent is not None and b.parent is not None
    assert sorted([a.parent.span_id, b.parent.span_id]) == sorted(ids)


def test_sampled_out_span_is_non_recording_and_propagates_the_trace(
    diagnostics: Diagnostics,
) -> None:
    rec = make_recorder(diagnostics, sampler=ALWAYS_OFF)
    with rec.tracer.start_as_current_span("s", attributes={"a": 1}) as span:
        span.set_attribute("b", 2)
        span.add_event("e")
        assert not span.is_recording()
        ctx = span.get_span_context()
        assert ctx.is_valid and not ctx.trace_flags.sampled
        with rec.tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == ctx.trace_id
    assert rec.spans == ()
    assert diagnostics.spans_started.value == 0


def test_after_shutdown_new_spans_do_not_record(recorder: Recorder) -> None:
    recorder.provider.shutdown()
    recorder.provider.shutdown()  # idempotent
    span = recorder.tracer.start_span("late")
    assert not span.is_recording()
    span.end()
    assert recorder.spans == ()


def test_suppressed_context_records_nothing(recorder: Recorder) -> None:
    from telemetry_run.sdk.context import suppress_instrumentation

    with suppress_instrumentation():
        span = recorder.tracer.start_span("export traffic")
        assert not span.is_recording()
    assert recorder.tracer.start_span("normal").is_recording()


def test_counters(recorder: Recorder) -> None:
    for _ in range(3):
        with recorder.tracer.start_as_current_span("s"):
            pass
    recorder.tracer.start_span("open")
    snap = recorder.diagnostics.snapshot()
    assert snap["started"] == 4 and snap["ended"] == 3 and snap["exported"] == 3


def test_a_failing_sampler_drops_only_that_span(diagnostics: Diagnostics) -> None:
    from telemetry_run.sdk import Sampler

    class Broken(Sampler):
        def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("plugin bug")

        def description(self) -> str:
            return "Broken"

    reported: list[object] = []
    diagnostics.on_internal_error = reported.append
    rec = make_recorder(diagnostics, sampler=Broken())
    span = rec.tracer.start_span("s")
    assert not span.is_recording()
    assert len(reported) == 1


def test_a_failing_processor_never_reaches_the_app(diagnostics: Diagnostics) -> None:
    from telemetry_run.sdk import SpanProcessor

    class Broken(SpanProcessor):
        def on_start(self, span, parent_context):  # type: ignore[no-untyped-def]
            raise RuntimeError("start bug")

        def on_end(self, span):  # type: ignore[no-untyped-def]
            raise RuntimeError("end bug")

    reported: list[object] = []
    diagnostics.on_internal_error = reported.append
    rec = make_recorder(diagnostics)
    rec.provider.add_span_processor(Broken())
    with rec.tracer.start_as_current_span("s"):
        pass
    assert [s.name for s in rec.spans] == ["s"]  # the other processor still got it
    assert len(reported) == 2


def test_current_context_holds_the_span(recorder: Recorder) -> None:
    from telemetry_run.sdk.context import SPAN_KEY

    with recorder.tracer.start_as_current_span("s") as span:
        assert get_current()[SPAN_KEY] is span
        assert get_current_span(get_current()) is span
    assert SPAN_KEY not in get_current()
