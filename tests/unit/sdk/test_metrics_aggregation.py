"""Aggregations and temporality: what each collection reports, with which start time."""

from __future__ import annotations

import itertools
import math

import pytest

from telemetry_run.sdk import Diagnostics
from telemetry_run.sdk.metrics import (
    DEFAULT_BOUNDARIES,
    AggregationTemporality,
    DropAggregation,
    ExponentialBucketHistogramAggregation,
    InMemoryMetricReader,
    Observation,
    View,
)
from telemetry_run.sdk.metrics.aggregation import exponential_index
from telemetry_run.sdk.metrics.data import ExponentialHistogram, Histogram, Sum
from tests.unit.sdk.metrics_helpers import by_attributes, make_rig

DELTA = AggregationTemporality.DELTA
CUMULATIVE = AggregationTemporality.CUMULATIVE


def test_the_default_histogram_has_the_specifications_boundaries_and_min_max_sum_count(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics)
    histogram = rig.provider.get_meter("m").create_histogram("d", "ms")
    for value in (0, 5, 5.5, 10, 9999, 10000, 10001):
        histogram.record(value)
    data = rig.metric("d").data
    assert isinstance(data, Histogram)
    (point,) = data.data_points
    assert tuple(point.explicit_bounds) == DEFAULT_BOUNDARIES == (
        0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000,
    )  # fmt: skip
    # Buckets are (previous, bound]: 0 is in the first, 5 in the second, 10001 in the overflow.
    assert list(point.bucket_counts) == [1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1]
    assert (point.count, point.sum, point.min, point.max) == (7, 30020.5, 0, 10001)


def test_advised_boundaries_are_used_and_a_view_wins_over_them(diagnostics: Diagnostics) -> None:
    from telemetry_run.sdk.metrics import ExplicitBucketHistogramAggregation

    rig = make_rig(
        diagnostics,
        views=[
            View(
                "viewed",
                aggregation=ExplicitBucketHistogramAggregation([1.0, 2.0]),
            )
        ],
    )
    meter = rig.provider.get_meter("m")
    advised = meter.create_histogram("advised", explicit_bucket_boundaries_advisory=[0.1, 1])
    viewed = meter.create_histogram("viewed", explicit_bucket_boundaries_advisory=[0.1, 1])
    advised.record(0.5)
    viewed.record(1.5)
    data = rig.collect()
    point = rig.metric("advised", data).data.data_points[0]
    assert (tuple(point.explicit_bounds), tuple(point.bucket_counts)) == ((0.1, 1.0), (0, 1, 0))
    point = rig.metric("viewed", data).data.data_points[0]
    assert (tuple(point.explicit_bounds), tuple(point.bucket_counts)) == ((1.0, 2.0), (0, 1, 0))


def test_a_sync_gauge_reports_the_last_value_per_attribute_set(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics)
    gauge = rig.provider.get_meter("m").create_gauge("g")
    gauge.set(1, {"k": "a"})
    gauge.set(5, {"k": "a"})
    gauge.set(-2, {"k": "b"})
    points = by_attributes(rig.metric("g"))
    assert {k: p.value for k, p in points.items()} == {(("k", "a"),): 5, (("k", "b"),): -2}


def test_the_drop_aggregation_makes_no_stream(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics, views=[View("noisy.*", aggregation=DropAggregation())])
    meter = rig.provider.get_meter("m")
    meter.create_counter("noisy.count").add(1)
    meter.create_counter("kept").add(1)
    assert [m.name for m in rig.collect().metrics()] == ["kept"]


@pytest.mark.parametrize(
    ("value", "scale", "index"),
    [
        (1.0, 0, -1),  # 1 closes bucket (0.5, 1]
        (1.5, 0, 0),
        (2.0, 0, 0),
        (2.5, 0, 1),
        (4.0, 1, 3),  # (2**1.5, 4]
        (1.0, 3, -1),
        (8.0, -1, 1),  # bucket 1 at scale -1 is (4, 16]
        (4.0, -1, 0),
        (1e-300, 0, -997),
    ],
)
def test_exponential_bucket_index(value: float, scale: int, index: int) -> None:
    assert exponential_index(value, scale) == index
    base = 2 ** (2**-scale)
    assert base**index < value * (1 + 1e-12) and value <= base ** (index + 1) * (1 + 1e-12)


def test_the_exponential_histogram_keeps_the_finest_scale_that_fits(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(
        diagnostics,
        views=[View("e", aggregation=ExponentialBucketHistogramAggregation(max_size=4))],
    )
    histogram = rig.provider.get_meter("m").create_histogram("e")
    for value in (1, 2, 4, 8, 16, 0):
        histogram.record(value)
    data = rig.metric("e").data
    assert isinstance(data, ExponentialHistogram)
    (point,) = data.data_points
    assert (point.count, point.sum, point.min, point.max, point.zero_count) == (6, 31, 0, 16, 1)
    # Five powers of two need five buckets at scale 0: at most 4 means scale -1, where bucket i
    # is (4**i, 4**(i+1)]: 1 in bucket -1, 2 and 4 in 0, 8 and 16 in 1.
    assert point.scale == -1
    assert (point.positive_offset, tuple(point.positive_bucket_counts)) == (-1, (1, 2, 2))
    assert sum(point.positive_bucket_counts) + point.zero_count == point.count


def test_the_exponential_histogram_starts_at_scale_20_and_counts_negative_values(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(
        diagnostics,
        views=[View("e", aggregation=ExponentialBucketHistogramAggregation())],
    )
    up_down = rig.provider.get_meter("m").create_up_down_counter("e")
    up_down.add(3.0)
    up_down.add(-3.0)
    (point,) = rig.metric("e").data.data_points
    assert point.scale == 20
    assert tuple(point.positive_bucket_counts) == (1,) == tuple(point.negative_bucket_counts)
    assert point.positive_offset == point.negative_offset == exponential_index(3.0, 20)


def test_the_default_histogram_can_be_the_exponential_one(diagnostics: Diagnostics) -> None:
    from telemetry_run.sdk.metrics import MeterProvider

    reader = InMemoryMetricReader(default_histogram="base2_exponential_bucket_histogram")
    provider = MeterProvider([reader], diagnostics=diagnostics)
    provider.get_meter("m").create_histogram("h").record(1.0)
    (metric,) = reader.collect().metrics()
    assert isinstance(metric.data, ExponentialHistogram)


# -- temporality ------------------------------------------------------------------------------


def test_cumulative_sums_grow_over_three_collections_from_one_start_time(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("c")
    start = rig.time.ns
    reported = []
    for increment in (1, 2, 4):
        rig.time.advance(10)
        counter.add(increment)
        rig.time.advance(10)
        data = rig.metric("c").data
        assert isinstance(data, Sum) and data.aggregation_temporality is CUMULATIVE
        (point,) = data.data_points
        reported.append((point.value, point.start_time_unix_nano, point.time_unix_nano))
    assert reported == [
        (1, start + 10 * 10**9, start + 20 * 10**9),
        (3, start + 10 * 10**9, start + 40 * 10**9),
        (7, start + 10 * 10**9, start + 60 * 10**9),
    ]


def test_delta_sums_report_each_interval_from_the_previous_collection(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics, temporality="delta")
    counter = rig.provider.get_meter("m").create_counter("c")
    start = rig.time.ns
    reported = []
    for increment in (1, 2, 4):
        rig.time.advance(10)
        counter.add(increment)
        counter.add(increment)
        rig.time.advance(10)
        data = rig.metric("c").data
        assert isinstance(data, Sum) and data.aggregation_temporality is DELTA
        (point,) = data.data_points
        reported.append((point.value, point.start_time_unix_nano, point.time_unix_nano))
    second = 10**9
    assert reported == [
        (2, start, start + 20 * second),
        (4, start + 20 * second, start + 40 * second),
        (8, start + 40 * second, start + 60 * second),
    ]


def test_delta_histograms_start_empty_each_interval(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics, temporality="delta")
    histogram = rig.provider.get_meter("m").create_histogram("h")
    histogram.record(3)
    histogram.record(300)
    first = rig.metric("h").data.data_points[0]
    histogram.record(7)
    second = rig.metric("h").data.data_points[0]
    assert (first.count, first.sum, first.min, first.max) == (2, 303, 3, 300)
    assert (second.count, second.sum, second.min, second.max) == (1, 7, 7, 7)
    assert second.start_time_unix_nano == first.time_unix_nano


def test_delta_series_that_go_quiet_are_not_reported_and_release_their_memory(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics, temporality="delta")
    counter = rig.provider.get_meter("m").create_counter("c")
    for n in range(100):
        counter.add(1, {"user": n})
    assert len(rig.metric("c").data.data_points) == 100
    counter.add(1, {"user": 0})
    assert len(rig.metric("c").data.data_points) == 1
    assert rig.collect().metrics() == []
    (stream,) = counter._streams
    assert stream.series_count() == 0


@pytest.mark.parametrize(
    ("preference", "expected"),
    [
        ("cumulative", {"c": CUMULATIVE, "u": CUMULATIVE, "h": CUMULATIVE, "oc": CUMULATIVE}),
        ("Delta", {"c": DELTA, "u": CUMULATIVE, "h": DELTA, "oc": DELTA, "ou": CUMULATIVE}),
        ("LOWMEMORY", {"c": DELTA, "u": CUMULATIVE, "h": DELTA, "oc": CUMULATIVE}),
    ],
)
def test_the_temporality_preference_maps_each_instrument_kind_as_the_specification_says(
    diagnostics: Diagnostics, preference: str, expected: dict[str, AggregationTemporality]
) -> None:
    rig = make_rig(diagnostics, temporality=preference)
    meter = rig.provider.get_meter("m")
    meter.create_counter("c").add(1)
    meter.create_up_down_counter("u").add(1)
    meter.create_histogram("h").record(1)
    meter.create_observable_counter("oc", [lambda _: [Observation(1)]])
    meter.create_observable_up_down_counter("ou", [lambda _: [Observation(1)]])
    data = rig.collect()
    got = {name: rig.metric(name, data).data.aggregation_temporality for name in expected}
    assert got == expected


def test_an_unknown_temporality_preference_is_refused() -> None:
    with pytest.raises(ValueError, match="temporality preference"):
        InMemoryMetricReader(temporality_preference="sometimes")


def _observed_counter(rig, values: list[float]):  # type: ignore[no-untyped-def]
    """An observable counter reporting the next of ``values`` at each collection."""
    pending = list(values)
    rig.provider.get_meter("m").create_observable_counter(
        "total", [lambda _: [Observation(pending.pop(0), {"k": 1})]]
    )


def test_an_observable_counter_cumulative_keeps_its_start_until_it_resets(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics)
    _observed_counter(rig, [10, 15, 4, 9])
    points = []
    for _ in range(4):
        rig.time.advance(10)
        points.append(rig.metric("total").data.data_points[0])
    first_start = points[0].start_time_unix_nano
    assert [p.value for p in points] == [10, 15, 4, 9]
    assert points[1].start_time_unix_nano == first_start
    # 15 then 4: the source restarted during the third interval, which begins a new series.
    assert points[2].start_time_unix_nano == points[1].time_unix_nano
    assert points[3].start_time_unix_nano == points[2].start_time_unix_nano


def test_an_observable_counter_delta_reports_differences_and_a_reset_as_its_new_value(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics, temporality="delta")
    _observed_counter(rig, [10, 15, 4, 9])
    points = []
    for _ in range(4):
        rig.time.advance(10)
        points.append(rig.metric("total").data.data_points[0])
    assert [p.value for p in points] == [10, 5, 4, 5]
    for before, after in itertools.pairwise(points):
        assert after.start_time_unix_nano == before.time_unix_nano


def test_an_observable_series_not_observed_is_not_reported(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics)
    rounds = [
        [Observation(1, {"q": "a"}), Observation(2, {"q": "b"})],
        [Observation(3, {"q": "b"})],
    ]
    rig.provider.get_meter("m").create_observable_gauge("g", [lambda _: rounds.pop(0)])
    assert len(rig.metric("g").data.data_points) == 2
    (point,) = rig.metric("g").data.data_points
    assert (point.attributes, point.value) == ({"q": "b"}, 3)


def test_nan_and_infinity_do_not_poison_an_exponential_histogram(diagnostics: Diagnostics) -> None:
    rig = make_rig(
        diagnostics, views=[View("e", aggregation=ExponentialBucketHistogramAggregation())]
    )
    histogram = rig.provider.get_meter("m").create_histogram("e")
    histogram.record(math.inf)
    histogram.record(2.0)
    (point,) = rig.metric("e").data.data_points
    assert (point.count, point.sum) == (1, 2.0)


def test_two_readers_each_get_every_measurement_in_their_own_temporality(
    diagnostics: Diagnostics,
) -> None:
    from telemetry_run.sdk.metrics import MeterProvider

    cumulative = InMemoryMetricReader()
    delta = InMemoryMetricReader(temporality_preference="delta")
    provider = MeterProvider([cumulative, delta], diagnostics=diagnostics)
    counter = provider.get_meter("m").create_counter("c")
    counter.add(2)
    assert delta.collect().metrics()[0].data.data_points[0].value == 2
    counter.add(3)
    assert delta.collect().metrics()[0].data.data_points[0].value == 3
    assert cumulative.collect().metrics()[0].data.data_points[0].value == 5
