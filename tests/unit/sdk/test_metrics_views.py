"""Views select instruments and reshape their streams; the cardinality limit bounds a stream."""

from __future__ import annotations

import logging

import pytest

from telemetry_run.sdk import Diagnostics
from telemetry_run.sdk.metrics import (
    AttributeSet,
    Counter,
    ExplicitBucketHistogramAggregation,
    Histogram,
    LastValueAggregation,
    View,
)
from telemetry_run.sdk.metrics.data import Gauge
from telemetry_run.sdk.metrics.data import Histogram as HistogramData
from tests.unit.sdk.metrics_helpers import by_attributes, make_rig

OVERFLOW = {"otel.metric.overflow": True}


def test_a_wildcard_name_selects_every_matching_instrument_case_insensitively(
    diagnostics: Diagnostics,
) -> None:
    view = View("http.*.dur?tion", description="selected")
    rig = make_rig(diagnostics, views=[view])
    meter = rig.provider.get_meter("m")
    meter.create_histogram("HTTP.server.duration").record(1)
    meter.create_histogram("http.client.duration").record(1)
    meter.create_histogram("rpc.server.duration").record(1)
    descriptions = {m.name: m.description for m in rig.collect().metrics()}
    assert descriptions == {
        "HTTP.server.duration": "selected",
        "http.client.duration": "selected",
        "rpc.server.duration": "",
    }


@pytest.mark.parametrize(
    ("view", "selected"),
    [
        (View(instrument_type=Counter), {"c"}),
        (View(instrument_type=Histogram), {"h"}),
        (View(instrument_unit="ms"), {"h"}),
        (View(meter_name="lib"), {"c", "h"}),
        (View(meter_name="lib", meter_version="2"), set()),
        (View(meter_name="lib", meter_version="1"), {"c", "h"}),
        (View(meter_schema_url="https://schema/1"), {"c", "h"}),
        (View("c", instrument_type=Histogram), set()),
    ],
)
def test_a_view_selects_by_every_criterion_it_has(
    diagnostics: Diagnostics, view: View, selected: set[str]
) -> None:
    view.description = "selected"
    rig = make_rig(diagnostics, views=[view])
    meter = rig.provider.get_meter("lib", "1", "https://schema/1")
    meter.create_counter("c", "1").add(1)
    meter.create_histogram("h", "ms").record(1)
    got = {m.name for m in rig.collect().metrics() if m.description == "selected"}
    assert got == selected


def test_a_view_renames_describes_and_changes_the_aggregation(diagnostics: Diagnostics) -> None:
    view = View(
        "queue.size",
        name="queue.depth",
        description="items waiting",
        aggregation=LastValueAggregation(),
    )
    rig = make_rig(diagnostics, views=[view])
    counter = rig.provider.get_meter("m").create_up_down_counter("queue.size", "{item}")
    counter.add(5)
    counter.add(3)
    metric = rig.metric("queue.depth")
    assert (metric.description, metric.unit) == ("items waiting", "{item}")
    assert isinstance(metric.data, Gauge)
    assert metric.data.data_points[0].value == 3


def test_two_matching_views_give_two_streams(diagnostics: Diagnostics) -> None:
    views = [
        View("latency", name="latency.coarse", aggregation=ExplicitBucketHistogramAggregation([1])),
        View("latency", name="latency.fine"),
    ]
    rig = make_rig(diagnostics, views=views)
    rig.provider.get_meter("m").create_histogram("latency").record(0.5)
    data = rig.collect()
    coarse = rig.metric("latency.coarse", data).data
    fine = rig.metric("latency.fine", data).data
    assert isinstance(coarse, HistogramData) and isinstance(fine, HistogramData)
    assert tuple(coarse.data_points[0].bucket_counts) == (1, 0)
    assert len(fine.data_points[0].bucket_counts) == 16


def test_an_attribute_allow_list_merges_the_series_that_differ_only_in_dropped_keys(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics, views=[View("requests", attribute_keys=["method", "status"])])
    counter = rig.provider.get_meter("m").create_counter("requests")
    for user in range(50):
        counter.add(1, {"method": "GET", "status": 200, "user.id": user, "url": f"/u/{user}"})
    counter.add(1, {"method": "POST", "status": 201, "user.id": 1})
    points = by_attributes(rig.metric("requests"))
    assert {k: p.value for k, p in points.items()} == {
        (("method", "GET"), ("status", 200)): 50,
        (("method", "POST"), ("status", 201)): 1,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one instrument selection criterion"),
        ({"instrument_name": "http.*", "name": "renamed"}, "exact name"),
        ({"instrument_type": Counter, "name": "renamed"}, "exact name"),
        ({"instrument_name": "x", "cardinality_limit": 0}, "cardinality_limit"),
    ],
)
def test_a_view_that_cannot_work_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        View(**kwargs)  # type: ignore[arg-type]


def test_the_default_cardinality_limit_is_2000_with_one_overflow_series(
    diagnostics: Diagnostics, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="telemetry_run")
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("c")
    for n in range(2500):
        counter.add(1, {"id": n})
    counter.add(1, {"id": 0})  # a series that exists keeps counting in its own series
    points = rig.metric("c").data.data_points
    assert len(points) == 2000
    overflow = [p for p in points if p.attributes == OVERFLOW]
    assert len(overflow) == 1 and overflow[0].value == 2500 - 1999
    assert next(p for p in points if p.attributes == {"id": 0}).value == 2
    assert sum(p.value for p in points) == 2501  # nothing lost
    assert len([r for r in caplog.records if "cardinality limit" in r.getMessage()]) == 1


def test_the_cardinality_limit_is_configurable_per_provider_and_per_view(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics, cardinality_limit=10, views=[View("narrow", cardinality_limit=3)])
    meter = rig.provider.get_meter("m")
    wide, narrow = meter.create_counter("wide"), meter.create_counter("narrow")
    for n in range(20):
        wide.add(1, {"id": n})
        narrow.add(1, {"id": n})
    data = rig.collect()
    assert len(rig.metric("wide", data).data.data_points) == 10
    narrow_points = rig.metric("narrow", data).data.data_points
    assert len(narrow_points) == 3
    assert sum(p.value for p in narrow_points) == 20


def test_delta_streams_admit_new_series_after_a_collection(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics, temporality="delta", cardinality_limit=3)
    counter = rig.provider.get_meter("m").create_counter("c")
    for n in range(5):
        counter.add(1, {"id": n})
    assert OVERFLOW in [p.attributes for p in rig.metric("c").data.data_points]
    counter.add(1, {"id": 9})
    assert [p.attributes for p in rig.metric("c").data.data_points] == [{"id": 9}]


def test_an_attribute_set_and_an_equal_dict_are_the_same_series(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("c")
    prebuilt = AttributeSet({"route": "/a", "method": "GET"})
    counter.add(1, prebuilt)
    counter.add(1, {"method": "GET", "route": "/a"})
    counter.add(1, prebuilt)
    (point,) = rig.metric("c").data.data_points
    assert (point.attributes, point.value) == ({"method": "GET", "route": "/a"}, 3)


def test_a_dict_changed_in_place_after_recording_is_a_new_series(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("c")
    attributes: dict[str, object] = {"status": 200}
    counter.add(1, attributes)  # type: ignore[arg-type]
    attributes["status"] = 500
    counter.add(1, attributes)  # type: ignore[arg-type]
    counter.add(1, {"status": 500})
    points = by_attributes(rig.metric("c"))
    assert {k: p.value for k, p in points.items()} == {(("status", 200),): 1, (("status", 500),): 2}


def test_an_observable_instruments_series_are_capped_too(diagnostics: Diagnostics) -> None:
    from telemetry_run.sdk.metrics import Observation

    rig = make_rig(diagnostics, cardinality_limit=5)
    rig.provider.get_meter("m").create_observable_counter(
        "open.files", [lambda _: [Observation(1, {"fd": n}) for n in range(10)]]
    )
    points = rig.metric("open.files").data.data_points
    assert len(points) == 5
    overflow = [p for p in points if p.attributes == OVERFLOW]
    assert overflow[0].value == 6  # the ten observations are all counted
    assert sum(p.value for p in points) == 10
