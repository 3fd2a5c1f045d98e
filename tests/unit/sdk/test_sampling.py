"""Samplers: decisions at start, the five parent cases, and agreement with the peer's ratio rule."""

from __future__ import annotations

import math
import random

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
)
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.trace.api import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from telemetry_run.sdk.trace.current import set_span_in_context
from telemetry_run.sdk.trace.sampling import StaticSampler, compile_sampler
from tests.native_twins import twins
from tests.unit.sdk.conftest import make_recorder

#: Every test with the native span start (sdk/_speedups.c SpanStarter) and the Python one.
starter_twins = twins("telemetry_run.sdk.trace.provider", "_native_starter")


def _parent(remote: bool, sampled: bool) -> Context:
    return set_span_in_context(
        NonRecordingSpan(SpanContext(0xAB, 0xCD, remote, TraceFlags(int(sampled))))
    )


def test_static_samplers() -> None:
    assert ALWAYS_ON.should_sample(None, 1, "x").decision is Decision.RECORD_AND_SAMPLE
    assert ALWAYS_OFF.should_sample(None, 1, "x").decision is Decision.DROP
    assert ALWAYS_ON.description() == "AlwaysOnSampler"
    assert ALWAYS_OFF.get_description() == "AlwaysOffSampler"


def test_ratio_rule_is_the_low_64_bits_below_the_bound() -> None:
    sampler = TraceIdRatioBased(0.5)
    assert sampler.bound == 1 << 63
    low_below = (0xFFFF << 64) | ((1 << 63) - 1)
    low_at = (0x1 << 64) | (1 << 63)
    assert sampler.should_sample(None, low_below, "x").decision is Decision.RECORD_AND_SAMPLE
    assert sampler.should_sample(None, low_at, "x").decision is Decision.DROP
    assert TraceIdRatioBased(0.0).should_sample(None, 1, "x").decision is Decision.DROP
    full = TraceIdRatioBased(1.0)
    assert full.should_sample(None, (1 << 128) - 1, "x").decision is Decision.RECORD_AND_SAMPLE
    assert sampler.description() == "TraceIdRatioBased{0.5}"
    with pytest.raises(ValueError):
        TraceIdRatioBased(1.5)


@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.25, 0.5, 0.9])
def test_ratio_observed_fraction_is_within_binomial_bounds(ratio: float) -> None:
    rng = random.Random(ratio)
    n = 20_000
    sampler = TraceIdRatioBased(ratio)
    kept = sum(
        sampler.should_sample(None, rng.getrandbits(128), "x").decision.is_sampled()
        for _ in range(n)
    )
    sigma = math.sqrt(n * ratio * (1 - ratio))
    assert abs(kept - n * ratio) < 5 * sigma


def test_ratio_decisions_match_opentelemetry_sdk_on_10000_trace_ids() -> None:
    from opentelemetry.sdk.trace import sampling as peer

    rng = random.Random(7)
    ids = [rng.getrandbits(128) for _ in range(10_000)]
    for ratio in (0.001, 0.1, 1 / 3, 0.5, 0.75):
        ours = TraceIdRatioBased(ratio)
        theirs = peer.TraceIdRatioBased(ratio)
        assert ours.bound == theirs.bound
        for trace_id in ids:
            assert ours.should_sample(None, trace_id, "x").decision.is_sampled() == (
                theirs.should_sample(None, trace_id, "x").decision.is_sampled()
            ), (ratio, hex(trace_id))


# The five cases: (parent context or None, which delegate must decide)
_CASES = [
    (None, "root"),
    (_parent(remote=True, sampled=True), "remote_sampled"),
    (_parent(remote=True, sampled=False), "remote_not_sampled"),
    (_parent(remote=False, sampled=True), "local_sampled"),
    (_parent(remote=False, sampled=False), "local_not_sampled"),
]


class _Named(Sampler):
    """Records which delegate was asked."""

    def __init__(self, name: str, asked: list[str]):
        self.name = name
        self.asked = asked

    def should_sample(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.asked.append(self.name)
        return SamplingResult(Decision.RECORD_AND_SAMPLE)

    def description(self) -> str:
        return self.name


def _parent_based(asked: list[str]) -> ParentBased:
    return ParentBased(
        root=_Named("root", asked),
        remote_parent_sampled=_Named("remote_sampled", asked),
        remote_parent_not_sampled=_Named("remote_not_sampled", asked),
        local_parent_sampled=_Named("local_sampled", asked),
        local_parent_not_sampled=_Named("local_not_sampled", asked),
    )


@pytest.mark.parametrize(("parent", "expected"), _CASES, ids=[c[1] for c in _CASES])
def test_parent_based_asks_the_right_delegate(parent: Context | None, expected: str) -> None:
    asked: list[str] = []
    _parent_based(asked).should_sample(parent, 0xAB, "x")
    assert asked == [expected]


@pytest.mark.parametrize(("parent", "expected"), _CASES, ids=[c[1] for c in _CASES])
def test_compiled_parent_based_asks_the_same_delegate(
    parent: Context | None, expected: str
) -> None:
    from telemetry_run.sdk.trace.current import get_current_span

    asked: list[str] = []
    fn = compile_sampler(_parent_based(asked))
    span_ctx = get_current_span(parent).get_span_context() if parent is not None else None
    fn(span_ctx, parent, 0xAB, "x", None, None, None)  # type: ignore[arg-type]
    assert asked == [expected]


@pytest.mark.parametrize(
    "sampler",
    [ALWAYS_ON, ALWAYS_OFF, ParentBased(ALWAYS_ON), ParentBased(ALWAYS_OFF)]
    + [ParentBasedTraceIdRatio(r) for r in (0.0, 0.3, 1.0)]
    + [TraceIdRatioBased(r) for r in (0.0, 0.3, 1.0)],
    ids=lambda s: s.description()[:40],
)
def test_compiled_builtins_decide_like_should_sample(sampler: Sampler) -> None:
    from telemetry_run.sdk.trace.current import get_current_span

    rng = random.Random(3)
    fn = compile_sampler(sampler)
    for parent, _ in _CASES:
        span_ctx = get_current_span(parent).get_span_context() if parent is not None else None
        for _ in range(200):
            trace_id = rng.getrandbits(128)
            expected = sampler.should_sample(parent, trace_id, "x").decision
            assert fn(span_ctx, parent, trace_id, "x", None, None, None).decision is expected  # type: ignore[arg-type]


def test_parent_based_default_delegates_follow_the_parent_flag() -> None:
    sampler = ParentBased(ALWAYS_OFF)
    decisions = [sampler.should_sample(p, 0xAB, "x").decision for p, _ in _CASES]
    assert decisions == [
        Decision.DROP,
        Decision.RECORD_AND_SAMPLE,
        Decision.DROP,
        Decision.RECORD_AND_SAMPLE,
        Decision.DROP,
    ]
    assert sampler.description() == (
        "ParentBased{root:AlwaysOffSampler,remoteParentSampled:AlwaysOnSampler,"
        "remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,"
        "localParentNotSampled:AlwaysOffSampler}"
    )


def test_sampler_sees_start_attributes_and_can_add_attributes_and_trace_state(
    diagnostics: Diagnostics,
) -> None:
    seen: dict[str, object] = {}

    class Route(Sampler):
        def should_sample(  # type: ignore[no-untyped-def]
            self, parent_context, trace_id, name, kind=None, attributes=None, links=None, ts=None
        ):
            seen.update(attributes or {})
            if str((attributes or {}).get("url.path", "")).startswith("/health"):
                return SamplingResult(Decision.DROP)
            return SamplingResult(
                Decision.RECORD_AND_SAMPLE,
                {"sampler.rule": "default"},
                TraceState([("route", "yes")]),
            )

        def description(self) -> str:
            return "Route"

    rec = make_recorder(diagnostics, sampler=Route())
    assert not rec.tracer.start_span("h", attributes={"url.path": "/healthz"}).is_recording()
    span = rec.tracer.start_span("u", attributes={"url.path": "/users"})
    span.end()
    assert seen["url.path"] == "/users"
    (done,) = rec.spans
    assert done.attributes["sampler.rule"] == "default"
    assert done.context.trace_state == TraceState([("route", "yes")])


def test_record_only_spans_record_but_are_not_sampled(diagnostics: Diagnostics) -> None:
    rec = make_recorder(diagnostics, sampler=StaticSampler(Decision.RECORD_ONLY))
    span = rec.tracer.start_span("s")
    assert span.is_recording()
    assert not span.get_span_context().trace_flags.sampled
    span.end()
    assert rec.spans == ()  # processors export sampled spans only


@pytest.mark.parametrize(
    "sampler",
    [
        ParentBased(ALWAYS_ON),
        ParentBased(ALWAYS_OFF),
        ParentBasedTraceIdRatio(0.5),
        ParentBased(
            ALWAYS_ON,
            remote_parent_sampled=ALWAYS_OFF,
            remote_parent_not_sampled=ALWAYS_ON,
            local_parent_sampled=ALWAYS_OFF,
            local_parent_not_sampled=ALWAYS_ON,
        ),
    ],
    ids=lambda s: s.description()[:60],
)
def test_parent_decision_table_agrees_with_should_sample(sampler: Sampler) -> None:
    from telemetry_run.sdk.trace.current import get_current_span
    from telemetry_run.sdk.trace.sampling import parent_decision_table

    table = parent_decision_table(sampler)
    assert table is not None
    for parent, _ in _CASES[1:]:
        ctx = get_current_span(parent).get_span_context()
        index = (2 if ctx.is_remote else 0) + (ctx.trace_flags & 1)
        assert table[index].decision is sampler.should_sample(parent, 0xAB, "x").decision


def test_parent_decision_table_only_for_fixed_delegates() -> None:
    from telemetry_run.sdk.trace.sampling import parent_decision_table

    assert parent_decision_table(ALWAYS_ON) is None
    assert (
        parent_decision_table(ParentBased(ALWAYS_ON, local_parent_sampled=TraceIdRatioBased(0.5)))
        is None
    )
