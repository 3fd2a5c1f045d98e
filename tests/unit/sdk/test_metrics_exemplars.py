"""Exemplars link a measurement to the sampled span it was recorded in."""

from __future__ import annotations

import pytest

from telemetry_run.sdk import ALWAYS_OFF, Diagnostics
from telemetry_run.sdk.metrics import MeterProvider, View
from tests.unit.sdk.conftest import make_recorder
from tests.unit.sdk.metrics_helpers import make_rig


def test_a_histogram_point_carries_the_trace_of_a_sampled_current_span(
    diagnostics: Diagnostics,
) -> None:
    spans = make_recorder(diagnostics)
    rig = make_rig(diagnostics)
    histogram = rig.provider.get_meter("m").create_histogram("latency", "ms")
    with spans.tracer.start_as_current_span("GET /checkout") as span:
        histogram.record(420.0, {"route": "/checkout"})
    histogram.record(3.0, {"route": "/checkout"})  # outside any span: no exemplar
    (point,) = rig.metric("latency").data.data_points
    (exemplar,) = point.exemplars
    context = span.get_span_context()
    assert (exemplar.trace_id, exemplar.span_id) == (context.trace_id, context.span_id)
    assert exemplar.value == 420.0
    assert exemplar.time_unix_nano == rig.time.ns


def test_histogram_exemplars_are_kept_one_per_bucket(diagnostics: Diagnostics) -> None:
    spans = make_recorder(diagnostics)
    rig = make_rig(diagnostics)
    histogram = rig.provider.get_meter("m").create_histogram("latency")
    with spans.tracer.start_as_current_span("a"):
        for value in (1, 2, 3, 700, 9000):
            histogram.record(value)
    (point,) = rig.metric("latency").data.data_points
    # 1, 2 and 3 share the (0, 5] bucket: its last one is kept.
    assert sorted(e.value for e in point.exemplars) == [3, 700, 9000]


def test_a_sum_point_carries_an_exemplar_and_the_attributes_a_view_dropped(
    diagnostics: Diagnostics,
) -> None:
    spans = make_recorder(diagnostics)
    rig = make_rig(diagnostics, views=[View("hits", attribute_keys=["route"])])
    counter = rig.provider.get_meter("m").create_counter("hits")
    with spans.tracer.start_as_current_span("a") as span:
        counter.add(1, {"route": "/a", "user.id": "u-7"})
    (point,) = rig.metric("hits").data.data_points
    assert point.attributes == {"route": "/a"}
    (exemplar,) = point.exemplars
    assert exemplar.filtered_attributes == {"user.id": "u-7"}
    assert exemplar.trace_id == span.get_span_context().trace_id


def test_a_sampled_out_span_gives_no_exemplar_under_trace_based(
    diagnostics: Diagnostics,
) -> None:
    spans = make_recorder(diagnostics, sampler=ALWAYS_OFF)
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("hits")
    with spans.tracer.start_as_current_span("a"):
        counter.add(1)
    (point,) = rig.metric("hits").data.data_points
    assert point.exemplars == ()


@pytest.mark.parametrize(("exemplar_filter", "expected"), [("always_on", 1), ("always_off", 0)])
def test_the_exemplar_filter_always_on_and_always_off(
    diagnostics: Diagnostics, exemplar_filter: str, expected: int
) -> None:
    rig = make_rig(diagnostics, exemplar_filter=exemplar_filter)
    rig.provider.get_meter("m").create_counter("hits").add(1)  # no span at all
    (point,) = rig.metric("hits").data.data_points
    assert len(point.exemplars) == expected
    if expected:
        assert (point.exemplars[0].trace_id, point.exemplars[0].span_id) == (0, 0)


def test_exemplars_are_reported_once(diagnostics: Diagnostics) -> None:
    spans = make_recorder(diagnostics)
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("hits")
    with spans.tracer.start_as_current_span("a"):
        counter.add(1)
    assert len(rig.metric("hits").data.data_points[0].exemplars) == 1
    assert rig.metric("hits").data.data_points[0].exemplars == ()


def test_an_unknown_exemplar_filter_is_refused(diagnostics: Diagnostics) -> None:
    with pytest.raises(ValueError, match="exemplar_filter"):
        MeterProvider(exemplar_filter="sometimes", diagnostics=diagnostics)
