"""``inject_started``: a client's new span into its request, the headers the propagators write.

With the default propagators it writes ``traceparent``, ``tracestate`` and ``baggage`` from
the span's own fields; every test compares its headers with what the global propagator's
``inject`` writes for the same context, so the shortcut can never send something else. Any
other propagator set, and a span that is not recording, take the general path.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from telemetry_run.sdk import baggage
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.propagation import (
    CompositePropagator,
    DefaultSetter,
    Setter,
    _textmap,
    default_setter,
    get_global_textmap,
    inject,
    set_global_textmap,
)
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
from telemetry_run.sdk.propagation.tracecontext import (
    TraceContextTextMapPropagator,
    inject_started,
)
from telemetry_run.sdk.trace.api import NonRecordingSpan, Span, SpanContext, TraceFlags, TraceState
from telemetry_run.sdk.trace.current import set_span_in_context
from telemetry_run.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from telemetry_run.testing import SpanRecorder
from tests.native_twins import twins

twin = twins("telemetry_run.sdk.propagation.tracecontext", "_native_format")

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
STATES = {
    "no state": TraceState(),
    "a state": TraceState([("vendor", "opaque"), ("other", "x=1")]),
}
BAGGAGES = {
    "no baggage": {},
    "baggage": {"user": "alice", "tier": "gold plan"},
    "baggage nothing of which is sent": {"not a token": "x"},
}


@pytest.fixture(autouse=True)
def default_propagators() -> None:
    """The global propagator in place, as the distro's bootstrap leaves it."""
    set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )


class ListSetter:
    """A carrier that is not a dict: (name, value) pairs, as a header list is."""

    def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key, value))


def started(
    recorder: SpanRecorder, state: TraceState, entries: dict[str, str], *, flags: int = 0x01
) -> tuple[Span, Context]:
    """A span started under a remote parent with ``state`` and ``flags`` (sampled; 0x02: the
    trace id is random), in a context with ``entries``."""
    parent = SpanContext(TRACE_ID, 0x00F067AA0BA902B7, True, TraceFlags(flags), state)
    context = set_span_in_context(NonRecordingSpan(parent), Context())
    for name, value in entries.items():
        context = baggage.set_baggage(name, value, context)
    span = recorder.tracer.start_span("GET", context)
    return span, set_span_in_context(span, context)


def both_ways(span: Span, context: Context, setter: Setter[Any], carrier: Any) -> tuple[Any, Any]:
    """What ``inject_started`` wrote into a copy of ``carrier``, and what ``inject`` did."""
    fast, slow = carrier.copy(), carrier.copy()
    inject_started(fast, span, context, setter)
    inject(slow, context, setter)
    return fast, slow


@pytest.mark.parametrize("state", STATES.values(), ids=list(STATES))
@pytest.mark.parametrize("entries", BAGGAGES.values(), ids=list(BAGGAGES))
@pytest.mark.parametrize("carrier", ["dict", "list"])
@pytest.mark.parametrize("flags", [0x01, 0x03])
def test_the_headers_are_the_propagators_own(
    state: TraceState, entries: dict[str, str], carrier: str, flags: int
) -> None:
    recorder = SpanRecorder()
    span, context = started(recorder, state, entries, flags=flags)
    setter: Setter[Any] = default_setter if carrier == "dict" else ListSetter()
    fast, slow = both_ways(span, context, setter, {} if carrier == "dict" else [])
    assert fast == slow
    headers = dict(fast)
    span_id = span.get_span_context().span_id
    assert headers["traceparent"] == f"00-{TRACE_ID:032x}-{span_id:016x}-{flags:02x}"
    assert ("tracestate" in headers) is bool(state)
    assert ("baggage" in headers) is (entries == BAGGAGES["baggage"])


def test_a_subclass_of_dict_and_a_setter_of_its_own_are_served_like_inject() -> None:
    class Headers(dict[str, str]):
        pass

    class Upper(DefaultSetter):
        def set(self, carrier: Any, key: str, value: str) -> None:
            carrier[key.upper()] = value

    recorder = SpanRecorder()
    span, context = started(recorder, STATES["a state"], BAGGAGES["baggage"])
    for carrier, setter in ((Headers(), default_setter), ({}, Upper())):
        fast, slow = both_ways(span, context, setter, carrier)
        assert fast == slow
        assert len(fast) == 3


def test_a_sampled_out_span_sends_its_context_through_the_propagators() -> None:
    recorder = SpanRecorder(sampler=ParentBased(ALWAYS_OFF))
    span, context = started(recorder, STATES["a state"], BAGGAGES["baggage"], flags=0x00)
    assert not span.is_recording()
    fast, slow = both_ways(span, context, default_setter, {})
    assert fast == slow
    assert fast["traceparent"].endswith("-00")


def test_other_propagators_are_used_as_they_are_set() -> None:
    recorder = SpanRecorder()
    span, context = started(recorder, STATES["a state"], BAGGAGES["baggage"])
    _textmap._global = CompositePropagator([W3CBaggagePropagator()])  # not through the setter
    carrier: dict[str, str] = {}
    inject_started(carrier, span, context)
    assert list(carrier) == ["baggage"]
    set_global_textmap(CompositePropagator([TraceContextTextMapPropagator()]))
    carrier = {}
    inject_started(carrier, span, context)
    assert set(carrier) == {"traceparent", "tracestate"}
    set_global_textmap(
        CompositePropagator([W3CBaggagePropagator(), TraceContextTextMapPropagator()])
    )
    carrier = {}
    inject_started(carrier, span, context)
    assert list(carrier) == ["baggage", "traceparent", "tracestate"]


def test_the_default_pair_set_again_is_recognised() -> None:
    recorder = SpanRecorder()
    span, context = started(recorder, STATES["no state"], BAGGAGES["baggage"])
    set_global_textmap(CompositePropagator([W3CBaggagePropagator()]))
    set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )
    assert _textmap._default is not None
    assert _textmap._default[0] is get_global_textmap()
    fast, slow = both_ways(span, context, default_setter, {})
    assert fast == slow
    assert list(fast) == ["traceparent", "baggage"]


class FailsOn:
    """A setter that raises for one header name, as a carrier that refuses it would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def set(self, carrier: dict[str, str], key: str, value: str) -> None:
        if key == self.name:
            raise ValueError(f"no {key} here")
        carrier[key] = value


@pytest.mark.parametrize("failing", ["traceparent", "baggage"])
def test_one_propagators_failure_is_reported_once_and_the_other_still_writes(
    failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    _textmap._reported.clear()
    recorder = SpanRecorder()
    span, context = started(recorder, STATES["no state"], BAGGAGES["baggage"])
    for _ in range(3):
        carrier: dict[str, str] = {}
        with caplog.at_level(logging.WARNING, logger="telemetry_run"):
            inject_started(carrier, span, context, FailsOn(failing))
        assert set(carrier) == {"traceparent", "baggage"} - {failing}
    failing_class = "TraceContextTextMapPropagator" if failing == "traceparent" else "W3CBaggage"
    reports = [record for record in caplog.records if failing_class in record.getMessage()]
    assert len(reports) == 1
    assert "inject" in reports[0].getMessage()
    _textmap._reported.clear()


def test_with_the_default_propagators_the_span_context_is_not_built() -> None:
    """What the comparisons above cover is the shortcut: it reads the span's fields, where the
    general path builds (and keeps) the span's SpanContext to read it."""
    recorder = SpanRecorder()
    span, context = started(recorder, STATES["a state"], BAGGAGES["baggage"])
    inject_started({}, span, context)
    assert span._context is None  # type: ignore[attr-defined]
    inject({}, context)
    assert span._context is not None  # type: ignore[attr-defined]
