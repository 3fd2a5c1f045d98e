"""The native span start (``sdk/_speedups.c`` SpanStarter) against ``Tracer.start_span``.

Each scenario starts a span twice, on two tracers that differ only in who starts it: the
native starter or the Python method. Ids come from a counting generator, so both draw the same
ids when they draw in the same order, and every field of the two spans must be equal. A
scenario the native code does not take must reach the Python method with the arguments as
given, before anything is drawn or counted (the ``handed_over`` tests).
"""

from __future__ import annotations

from collections.abc import Iterator
from types import MethodType
from typing import Any

import pytest

from telemetry_run.sdk import TracerProvider
from telemetry_run.sdk.context import (
    SPAN_KEY,
    SUPPRESS_INSTRUMENTATION_KEY,
    Context,
    set_value,
    suppress_instrumentation,
)
from telemetry_run.sdk.diagnostics import Diagnostics
from telemetry_run.sdk.trace import provider as provider_module
from telemetry_run.sdk.trace.api import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from telemetry_run.sdk.trace.current import set_span_in_context, use_span
from telemetry_run.sdk.trace.limits import SpanLimits
from telemetry_run.sdk.trace.provider import Tracer
from telemetry_run.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    StaticSampler,
    TraceIdRatioBased,
)
from tests.native_twins import require_native

REMOTE = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True, TraceFlags(1))
STATE = TraceState([("vendor", "v")])


class Counting:
    """Ids 1, 2, 3...: two tracers with one each draw the same ids in the same order."""

    def __init__(self) -> None:
        self.drawn = 0

    def generate_span_id(self) -> int:
        self.drawn += 1
        return self.drawn

    def generate_trace_id(self) -> int:
        self.drawn += 1
        return 0x1000 + self.drawn


class WithState(Sampler):
    """Samples every span and gives it a trace state (and attributes) of its own."""

    def __init__(self, attributes: dict[str, Any] | None = None) -> None:
        self.attributes = attributes

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_AND_SAMPLE, self.attributes, STATE)

    def description(self) -> str:
        return "WithState"


@pytest.fixture(autouse=True)
def _native() -> None:
    require_native()


def tracers(**options: Any) -> tuple[Tracer, Tracer, Counting, Counting]:
    """A tracer whose start_span is native and one whose is the Python method, alike."""
    made = []
    for native in (True, False):
        ids = Counting()
        provider = TracerProvider(
            id_generator=ids, diagnostics=Diagnostics(), shutdown_on_exit=False, **options
        )
        tracer = provider.get_tracer("starter")
        assert type(tracer.start_span).__name__ == "SpanStarter"
        if not native:
            vars(tracer)["start_span"] = MethodType(Tracer.start_span, tracer)
        made.append((tracer, ids))
    (native_tracer, native_ids), (python_tracer, python_ids) = made
    return native_tracer, python_tracer, native_ids, python_ids


def fields(span: Any) -> dict[str, Any]:
    """What a span is, its times aside."""
    parent = getattr(span, "parent", None)
    return {
        "type": type(span).__name__,
        "recording": span.is_recording(),
        "name": getattr(span, "name", None),
        "context": span.get_span_context(),
        "parent": (parent.trace_id, parent.span_id, parent.is_remote) if parent else None,
        "kind": getattr(span, "kind", None),
        "attributes": dict(getattr(span, "attributes", None) or {}),
        "trace_state": span.get_span_context().trace_state,
        "dropped_attributes": getattr(span, "dropped_attributes", None),
        "status": getattr(span, "status", None) and span.status.status_code,
    }


def parents(tracer: Tracer) -> Iterator[tuple[str, Context | None]]:
    """The contexts a span starts in: each kind of parent start_span reads."""
    yield "no context (current: none)", None
    yield "empty context", Context()
    yield "remote parent", set_span_in_context(NonRecordingSpan(REMOTE))
    state = SpanContext(REMOTE.trace_id, REMOTE.span_id, True, TraceFlags(3), STATE)
    yield "remote parent, random bit and state", set_span_in_context(NonRecordingSpan(state))
    unsampled = SpanContext(REMOTE.trace_id, REMOTE.span_id, True, TraceFlags(0))
    yield "remote parent not sampled", set_span_in_context(NonRecordingSpan(unsampled))
    invalid = SpanContext(0, 0, True, TraceFlags(1))
    yield "invalid remote parent", set_span_in_context(NonRecordingSpan(invalid))
    local = tracer.start_span("local parent")
    yield "local recording parent", set_span_in_context(local)
    yield "local recording parent, context built", set_span_in_context(local)
    yield "suppressed", set_value(SUPPRESS_INSTRUMENTATION_KEY, True, Context())


def start_both(
    native: Tracer,
    python: Tracer,
    args: tuple[Any, ...],
    python_args: tuple[Any, ...] | None = None,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """The span each tracer starts from ``args`` (the Python one's own ``python_args``)."""
    return native.start_span(*args, **kwargs), python.start_span(
        *(args if python_args is None else python_args), **kwargs
    )


SAMPLERS = {
    "default": None,
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "parent_based_off": ParentBased(ALWAYS_OFF),
    "record_only": ParentBased(
        StaticSampler(Decision.RECORD_ONLY),
        remote_parent_not_sampled=StaticSampler(Decision.RECORD_ONLY),
        local_parent_sampled=StaticSampler(Decision.RECORD_ONLY),
    ),
    "ratio": TraceIdRatioBased(0.5),
    "own trace state": WithState(),
    "own attributes": WithState({"sampler": "yes"}),
}
ATTRIBUTES = {
    "none": None,
    "empty": {},
    "plain": {"http.request.method": "GET", "server.port": 8080, "ok": True, "ratio": 0.5},
    "to clean": {"list": [1, 2], "bad": object(), "": "empty key"},
    "huge int": {"big": 2**70},
}


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=list(SAMPLERS))
@pytest.mark.parametrize("attributes", ATTRIBUTES.values(), ids=list(ATTRIBUTES))
def test_the_native_start_makes_the_spans_the_python_one_makes(
    sampler: Sampler | None, attributes: dict[str, Any] | None
) -> None:
    native, python, native_ids, python_ids = tracers(sampler=sampler)
    native_parents = list(parents(native))
    python_parents = list(parents(python))
    for (label, native_context), (_, python_context) in zip(
        native_parents, python_parents, strict=True
    ):
        if label == "local recording parent, context built":
            for context in (native_context, python_context):
                assert context is not None
                context[SPAN_KEY].get_span_context()  # type: ignore[attr-defined]
        start_time = 1_000 if label == "empty context" else None
        args = ("GET /items", native_context, SpanKind.SERVER, attributes, None, start_time)
        first, second = start_both(native, python, args, (*args[:1], python_context, *args[2:]))
        assert fields(first) == fields(second), label
        assert native_ids.drawn == python_ids.drawn, label
        if label == "empty context" and first.is_recording():
            assert first.start_time == second.start_time == 1_000
    native_diagnostics = native.provider.diagnostics
    python_diagnostics = python.provider.diagnostics
    assert native_diagnostics.spans_started.value == python_diagnostics.spans_started.value


@pytest.mark.parametrize(
    "decided",
    [
        SamplingResult(Decision.RECORD_AND_SAMPLE, None, STATE),
        SamplingResult(Decision.RECORD_AND_SAMPLE, {"by": "sampler"}),
        SamplingResult(Decision.RECORD_ONLY),
    ],
    ids=["a trace state of its own", "attributes of its own", "record only"],
)
def test_a_known_decision_with_more_than_a_decision_is_followed_alike(
    decided: SamplingResult,
) -> None:
    """A tracer's tables could hold a result that adds a trace state or attributes (the
    built-in samplers' do not): the native start hands those over, and the spans agree."""
    native, python, _, _ = tracers()
    for tracer in (native, python):
        tracer._root_result = decided
        tracer._parent_table = (decided,) * 4
    for context in (None, set_span_in_context(NonRecordingSpan(REMOTE))):
        first, second = start_both(native, python, ("x", context, SpanKind.CLIENT))
        assert fields(first) == fields(second)
        assert first.get_span_context().trace_flags == (
            decided.decision is not Decision.RECORD_ONLY
        )


def test_the_current_context_is_read_when_none_is_given() -> None:
    native, python, native_ids, python_ids = tracers()
    for tracer in (native, python):
        outer = tracer.start_span("outer")
        with use_span(outer):
            inner = tracer.start_span("inner")
            assert inner.parent == outer.get_span_context()
            with suppress_instrumentation():
                assert not tracer.start_span("suppressed").is_recording()
    assert native_ids.drawn == python_ids.drawn


def test_limits_and_links_are_applied_as_the_python_start_applies_them() -> None:
    limits = SpanLimits(max_attributes=2, max_attribute_length=3)
    native, python, _, _ = tracers(span_limits=limits)
    attributes = {"a": "long text", "b": 1, "c": 2}
    link = Link(REMOTE, {"why": "batch"})
    first, second = start_both(native, python, ("x", None, SpanKind.CLIENT))
    assert fields(first) == fields(second)
    first, second = start_both(native, python, ("x",), attributes=attributes, links=[link])
    assert fields(first) == fields(second)
    assert first.attributes == {"a": "lon", "b": 1}
    assert [each.context for each in first.links] == [REMOTE]
    first, second = start_both(
        native, python, ("x", None, SpanKind.CLIENT, None, None, None, False)
    )
    assert fields(first) == fields(second)


def test_a_shut_down_provider_makes_the_same_non_recording_spans() -> None:
    native, python, _, _ = tracers()
    native.provider.shutdown()
    python.provider.shutdown()
    first, second = start_both(native, python, ("after",))
    assert fields(first) == fields(second)
    assert not first.is_recording()


def test_a_processor_added_later_sees_the_spans_the_native_start_makes() -> None:
    native, _, _, _ = tracers()
    started: list[str] = []

    class Watching:
        has_on_start = True

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            started.append(span.name)

        def on_end(self, span: Any) -> None:
            return None

        def shutdown(self, *, deadline: float) -> None:
            return None

        def force_flush(self, *, deadline: float) -> bool:
            return True

    native.provider.add_span_processor(Watching())  # type: ignore[arg-type]
    native.start_span("seen").end()
    assert started == ["seen"]


# -- what the native start hands over --------------------------------------------------------


class Handed:
    """A fallback that records what it was given and starts nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        return "handed over"


def starter(**options: Any) -> tuple[Any, Handed, Counting, Tracer]:
    ids = Counting()
    provider = TracerProvider(id_generator=ids, shutdown_on_exit=False, **options)
    tracer = provider.get_tracer("starter")
    handed = Handed()
    native = provider_module._native_starter
    assert native is not None
    return native(tracer, handed), handed, ids, tracer


@pytest.mark.parametrize(
    ("case", "options", "args", "kwargs"),
    [
        ("a keyword argument", {}, ("x",), {"kind": SpanKind.CLIENT}),
        ("links", {}, ("x", None, SpanKind.CLIENT, None, [Link(REMOTE)]), {}),
        ("record_exception given", {}, ("x", None, SpanKind.CLIENT, None, None, None, True), {}),
        ("a sampler to ask", {"sampler": TraceIdRatioBased(0.5)}, ("x",), {}),
        ("a dropped span", {"sampler": ALWAYS_OFF}, ("x",), {}),
        ("the sampler's trace state", {"sampler": WithState()}, ("x",), {}),
        ("attributes to clean", {}, ("x", None, SpanKind.CLIENT, {"l": [1]}), {}),
        (
            "a length limit",
            {"span_limits": SpanLimits(max_attribute_length=8)},
            ("x", None, SpanKind.CLIENT, {"a": "b"}),
            {},
        ),
        (
            "more attributes than allowed",
            {"span_limits": SpanLimits(max_attributes=1)},
            ("x", None, SpanKind.CLIENT, {"a": "b", "c": "d"}),
            {},
        ),
        ("a mapping that is not a dict", {}, ("x", None, SpanKind.CLIENT, Context(a="b")), {}),
        ("a context that is not a dict", {}, ("x", ["not", "a", "context"]), {}),
        ("a parent of another SDK", {}, ("x", Context({SPAN_KEY: object()})), {}),
        ("suppressed", {}, ("x", set_value(SUPPRESS_INSTRUMENTATION_KEY, True, Context())), {}),
    ],
)
def test_what_the_native_start_does_not_take_is_handed_over_before_any_side_effect(
    case: str, options: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    start, handed, ids, tracer = starter(**options)
    started = tracer.provider.diagnostics.spans_started.value
    assert start(*args, **kwargs) == "handed over"
    assert handed.calls == [(args, kwargs)]
    assert ids.drawn == 0
    assert tracer.provider.diagnostics.spans_started.value == started


def test_the_usual_case_is_not_handed_over() -> None:
    start, handed, ids, _ = starter()
    span = start("GET", set_span_in_context(NonRecordingSpan(REMOTE)), SpanKind.CLIENT, {"a": 1})
    assert handed.calls == []
    assert span.is_recording()
    assert span.parent == REMOTE
    assert span.get_span_context().trace_id == REMOTE.trace_id
    assert span.get_span_context().span_id == 1
    assert span.attributes == {"a": 1}
    assert ids.drawn == 1
    root = start("root")
    assert root.get_span_context().trace_id == 0x1002  # the trace id drawn first, then the span's
    assert root.get_span_context().span_id == 3
    assert handed.calls == []


def test_the_native_type_checks_its_arguments() -> None:
    native = provider_module._native_starter
    assert native is not None
    with pytest.raises(TypeError):
        native(object())  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        native(object(), "not callable")
    with pytest.raises(TypeError):
        native(object(), print, extra=1)  # type: ignore[call-arg]
