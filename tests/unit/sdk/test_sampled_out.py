"""The sampled-out path: a span the sampler drops without being asked still carries its trace.

Under always_off, and below an unsampled parent with a parent-based sampler, the tracer makes
the non-recording span itself (no sampler call, no SpanContext until one is asked for). What
the application and the next service see must be what the full path gives: the parent's trace
id, a span id of its own, flags 00 plus the random-trace-id bit as the trace has it, children
dropped too, and nothing at all once instrumentation is suppressed or the provider shut down.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from telemetry_run.sdk import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    Diagnostics,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
    TracerProvider,
)
from telemetry_run.sdk.context import Context, attach, detach, get_current, suppress_instrumentation
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.sdk.trace import Tracer
from telemetry_run.sdk.trace.api import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    TraceFlags,
)
from telemetry_run.sdk.trace.current import get_current_span, set_span_in_context
from telemetry_run.sdk.trace.sampling import StaticSampler, fixed_drops
from tests.native_twins import twins
from tests.unit.sdk.conftest import make_recorder

#: Every test with the native span start (sdk/_speedups.c SpanStarter) and the Python one.
starter_twins = twins("telemetry_run.sdk.trace.provider", "_native_starter")

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
PROPAGATOR = TraceContextTextMapPropagator()


def _remote_parent(flags: int) -> Context:
    return set_span_in_context(NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, True, flags)))


@contextmanager
def _attached(context: Context) -> Iterator[None]:
    token = attach(context)
    try:
        yield
    finally:
        detach(token)


def _traceparent() -> str:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier)
    return carrier["traceparent"]


def _with_block(tracer: Tracer, name: str) -> tuple[Span, str, Span]:
    """The span a ``with`` block sees, the traceparent injected in it, and the current span
    after it."""
    with tracer.start_as_current_span(name) as span:
        header = _traceparent()
    return span, header, get_current_span()


def _with_arguments(tracer: Tracer, name: str) -> tuple[Span, str, Span]:
    """The same through the path that hands arguments to start_span."""
    with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes={"a": 1}) as span:
        header = _traceparent()
    return span, header, get_current_span()


def _decorated(tracer: Tracer, name: str) -> tuple[Span, str, Span]:
    @tracer.start_as_current_span(name)
    def work() -> tuple[Span, str]:
        return get_current_span(), _traceparent()

    span, header = work()
    return span, header, get_current_span()


def _started(tracer: Tracer, name: str) -> tuple[Span, str, Span]:
    span = tracer.start_span(name)
    with _attached(set_span_in_context(span)):
        header = _traceparent()
    return span, header, get_current_span()


ENTRIES: list[Callable[[Tracer, str], tuple[Span, str, Span]]] = [
    _with_block,
    _with_arguments,
    _decorated,
    _started,
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("flags", "expected"), [(0x00, 0x00), (0x02, 0x02), (0xFE, 0x02)], ids=["00", "02", "fe"]
)
def test_below_an_unsampled_remote_parent_the_trace_goes_on_unrecorded(
    diagnostics: Diagnostics,
    entry: Callable[[Tracer, str], tuple[Span, str, Span]],
    flags: int,
    expected: int,
) -> None:
    rec = make_recorder(diagnostics)  # ParentBased(ALWAYS_ON), the default
    parent = _remote_parent(flags)
    with _attached(parent):
        span, header, after = entry(rec.tracer, "child")
        assert after is get_current_span(parent)  # the block restored the parent
    assert isinstance(span, NonRecordingSpan)
    assert not span.is_recording()
    ctx = span.get_span_context()
    assert ctx is span.get_span_context()  # one context per span, however often asked
    assert ctx.is_valid and not ctx.is_remote
    assert ctx.trace_id == TRACE_ID
    assert ctx.span_id not in (0, SPAN_ID)
    # Never sampled; random-trace-id describes the trace id, so it is kept as it came; bits
    # Level 2 does not define are not passed on.
    assert ctx.trace_flags == expected and type(ctx.trace_flags) is TraceFlags
    assert header == f"00-{TRACE_ID:032x}-{ctx.span_id:016x}-{expected:02x}"
    rec.provider.force_flush()
    assert rec.spans == ()


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: f.__name__)
def test_children_of_a_dropped_span_are_dropped_in_the_same_trace(
    diagnostics: Diagnostics, entry: Callable[[Tracer, str], tuple[Span, str, Span]]
) -> None:
    rec = make_recorder(diagnostics)
    with _attached(_remote_parent(0x02)), rec.tracer.start_as_current_span("middle") as middle:
        child, header, after = entry(rec.tracer, "leaf")
        with rec.tracer.start_as_current_span("leaf-2") as sibling:
            pass
        assert after is middle
    ids = {SPAN_ID}
    for span in (middle, child, sibling):
        ctx = span.get_span_context()
        assert not span.is_recording()
        assert (ctx.trace_id, ctx.trace_flags, ctx.is_remote) == (TRACE_ID, 0x02, False)
        assert ctx.span_id not in ids
        ids.add(ctx.span_id)
    assert header == f"00-{TRACE_ID:032x}-{child.get_span_context().span_id:016x}-02"
    assert rec.spans == ()


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ParentBased(ALWAYS_OFF)], ids=str)
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: f.__name__)
def test_a_dropped_root_starts_a_trace_of_its_own(
    diagnostics: Diagnostics,
    sampler: Sampler,
    entry: Callable[[Tracer, str], tuple[Span, str, Span]],
) -> None:
    rec = make_recorder(diagnostics, sampler=sampler)
    first, header, after = entry(rec.tracer, "root")
    second, _, _ = entry(rec.tracer, "root")
    assert after is get_current_span(Context())  # nothing current after the block
    ctx = first.get_span_context()
    assert not first.is_recording() and ctx.is_valid
    assert ctx.trace_id != second.get_span_context().trace_id
    # Our random trace ids are flagged as such (W3C Level 2): 02, not sampled.
    assert ctx.trace_flags == 0x02
    assert header == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-02"
    with (
        rec.tracer.start_as_current_span("root") as root,
        rec.tracer.start_as_current_span("child") as child,
    ):
        pass
    assert child.get_span_context().trace_id == root.get_span_context().trace_id
    assert rec.spans == ()


def test_a_plugin_id_generator_trace_is_not_flagged_random(diagnostics: Diagnostics) -> None:
    class Sequential:
        def __init__(self) -> None:
            self.n = 0

        def generate_span_id(self) -> int:
            self.n += 1
            return self.n

        def generate_trace_id(self) -> int:
            self.n += 1
            return self.n << 64

    provider = TracerProvider(
        sampler=ALWAYS_OFF,
        id_generator=Sequential(),
        diagnostics=diagnostics,
        shutdown_on_exit=False,
    )
    with provider.get_tracer("t").start_as_current_span("root") as root:
        header = _traceparent()
    ctx = root.get_span_context()
    assert (ctx.trace_id, ctx.span_id, ctx.trace_flags) == (1 << 64, 2, 0x00)
    assert header == f"00-{1 << 64:032x}-{2:016x}-00"


def test_suppressed_spans_carry_the_parents_context(diagnostics: Diagnostics) -> None:
    rec = make_recorder(diagnostics)
    parent = _remote_parent(0x00)
    with _attached(parent), suppress_instrumentation():
        with rec.tracer.start_as_current_span("quiet") as quiet:
            pass
        started = rec.tracer.start_span("quiet")
    for span in (quiet, started):
        assert not span.is_recording()
        assert span.get_span_context() is get_current_span(parent).get_span_context()


def test_after_shutdown_spans_carry_the_parents_context(diagnostics: Diagnostics) -> None:
    rec = make_recorder(diagnostics, sampler=ALWAYS_OFF)
    rec.provider.shutdown()
    parent = _remote_parent(0x00)
    with _attached(parent), rec.tracer.start_as_current_span("late") as late:
        pass
    assert late.get_span_context() is get_current_span(parent).get_span_context()
    with rec.tracer.start_as_current_span("late-root") as root:
        pass
    assert not root.get_span_context().is_valid


def test_an_exception_leaves_a_dropped_span_unchanged_and_the_context_restored(
    diagnostics: Diagnostics,
) -> None:
    rec = make_recorder(diagnostics, sampler=ALWAYS_OFF)
    before = get_current()
    with pytest.raises(KeyError, match="boom"), rec.tracer.start_as_current_span("x") as span:
        raise KeyError("boom")
    assert not span.is_recording()
    assert get_current() == before
    assert diagnostics.snapshot()["dropped"] == 0


class _Counting(StaticSampler):
    """A subclass of a built-in sampler: its own should_sample must run for every span."""

    def __init__(self) -> None:
        super().__init__(Decision.DROP)
        self.calls = 0

    def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return SamplingResult(Decision.RECORD_AND_SAMPLE)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: f.__name__)
def test_a_subclass_of_a_builtin_sampler_is_still_asked(
    diagnostics: Diagnostics, entry: Callable[[Tracer, str], tuple[Span, str, Span]]
) -> None:
    sampler = _Counting()
    rec = make_recorder(diagnostics, sampler=ParentBased(sampler, local_parent_not_sampled=sampler))
    span, _, _ = entry(rec.tracer, "asked")
    assert sampler.calls == 1
    assert span.get_span_context().trace_flags.sampled  # its answer, not the base class's


ROOT, PARENTS = 4, [(False, False), (False, True), (True, False), (True, True)]


@pytest.mark.parametrize(
    "sampler",
    [
        ALWAYS_ON,
        ALWAYS_OFF,
        ParentBased(ALWAYS_ON),
        ParentBased(ALWAYS_OFF),
        ParentBased(ParentBased(ALWAYS_OFF)),
        ParentBased(TraceIdRatioBased(0.0)),
        ParentBasedTraceIdRatio(0.5),
        TraceIdRatioBased(0.0),
        StaticSampler(Decision.RECORD_ONLY),
        ParentBased(
            ALWAYS_OFF,
            remote_parent_sampled=ALWAYS_OFF,
            remote_parent_not_sampled=ALWAYS_ON,
            local_parent_sampled=TraceIdRatioBased(0.0),
            local_parent_not_sampled=StaticSampler(Decision.RECORD_ONLY),
        ),
    ],
    ids=lambda s: s.description()[:70],
)
def test_fixed_drops_only_where_should_sample_always_drops(sampler: Sampler) -> None:
    """Where the table says "dropped anyway", the sampler drops whatever the trace id."""
    drops = fixed_drops(sampler)
    rng = random.Random(13)
    cases: list[tuple[int, Context | None]] = [(ROOT, None)]
    for remote, sampled in PARENTS:
        span = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, remote, TraceFlags(int(sampled))))
        cases.append(((2 if remote else 0) + sampled, set_span_in_context(span)))
    for index, context in cases:
        decisions = {
            sampler.should_sample(context, rng.getrandbits(128), "x").decision for _ in range(50)
        }
        if drops[index]:
            assert decisions == {Decision.DROP}, index


def test_fixed_drops_of_the_usual_samplers() -> None:
    assert fixed_drops(ALWAYS_OFF) == (True,) * 5
    assert fixed_drops(ALWAYS_ON) == (False,) * 5
    # Index 2 * remote + sampled, then the root: unsampled parents are dropped anyway.
    assert fixed_drops(ParentBased(ALWAYS_ON)) == (True, False, True, False, False)
    assert fixed_drops(ParentBased(ALWAYS_OFF)) == (True, False, True, False, True)
    assert fixed_drops(ParentBasedTraceIdRatio(0.1)) == (True, False, True, False, False)
    assert fixed_drops(TraceIdRatioBased(0.0)) == (False,) * 5  # asked: cheap, and exact
    assert fixed_drops(_Counting()) == (False,) * 5


def test_threads_asking_at_once_see_one_trace_id_and_one_span_id(diagnostics: Diagnostics) -> None:
    """A dropped root's trace id and each span's span id are drawn on first request: threads
    asking at the same moment (an inject on each) must all get the same ones."""
    rec = make_recorder(diagnostics, sampler=ALWAYS_OFF)
    with rec.tracer.start_as_current_span("root") as root:
        children = []
        for _ in range(8):
            with rec.tracer.start_as_current_span("child") as child:
                children.append(child)
    barrier = threading.Barrier(16)
    seen: list[tuple[int, int, int]] = []

    def ask(index: int, span: Span) -> None:
        barrier.wait(30)
        ctx = span.get_span_context()
        seen.append((index, ctx.trace_id, ctx.span_id))

    threads = [
        threading.Thread(target=ask, args=(i, span))
        for i, span in enumerate(children + children)  # each span asked by two threads
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(seen) == 16
    assert {trace_id for _, trace_id, _ in seen} == {root.get_span_context().trace_id}
    by_span: dict[int, set[int]] = {i: set() for i in range(8)}
    for index, _, span_id in seen:
        by_span[index % 8].add(span_id)
    assert all(len(ids) == 1 for ids in by_span.values())
    assert len({ids.pop() for ids in by_span.values()}) == 8


def test_a_recording_child_of_a_dropped_root_joins_its_trace(diagnostics: Diagnostics) -> None:
    sampler = ParentBased(ALWAYS_OFF, local_parent_not_sampled=ALWAYS_ON)
    rec = make_recorder(diagnostics, sampler=sampler)
    with rec.tracer.start_as_current_span("root") as root, rec.tracer.start_as_current_span("r"):
        pass
    (recorded,) = rec.spans  # its start asked the root for its context: the ids were drawn
    ctx = root.get_span_context()
    assert not root.is_recording() and not ctx.trace_flags.sampled
    assert recorded.context.trace_id == ctx.trace_id
    assert recorded.parent is not None and recorded.parent.span_id == ctx.span_id
