"""Recording is exact from many threads, and a repeated attribute set is not rebuilt."""

from __future__ import annotations

import threading

import pytest

from telemetry_run.sdk import Diagnostics
from telemetry_run.sdk.metrics import AttributeSet
from telemetry_run.sdk.metrics import stream as stream_module
from tests.unit.sdk.metrics_helpers import by_attributes, make_rig

THREADS = 8
CALLS = 5000


@pytest.mark.parametrize("temporality", ["cumulative", "delta"])
def test_counters_and_histograms_are_exact_from_many_threads(
    diagnostics: Diagnostics, temporality: str
) -> None:
    rig = make_rig(diagnostics, temporality=temporality)
    meter = rig.provider.get_meter("m")
    counter, histogram = meter.create_counter("c"), meter.create_histogram("h")
    shared = {"route": "/a"}
    start = threading.Barrier(THREADS)
    totals: list[float] = []

    def work(n: int) -> None:
        own = {"thread": n}
        start.wait()
        for _ in range(CALLS):
            counter.add(1, shared)
            counter.add(2, own)
            histogram.record(1.0, shared)

    def collect_meanwhile() -> None:
        # Collections during recording must lose nothing, whatever the temporality.
        for _ in range(20):
            for metric in rig.collect().metrics():
                if metric.name == "c":
                    totals.extend(p.value for p in metric.data.data_points)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    collector = threading.Thread(target=collect_meanwhile)
    for thread in threads:
        thread.start()
    collector.start()
    for thread in [*threads, collector]:
        thread.join(timeout=60)
    data = rig.collect()
    final = rig.metric("c", data).data.data_points
    if temporality == "delta":
        assert sum(totals) + sum(p.value for p in final) == THREADS * CALLS * 3
    else:
        points = by_attributes(rig.metric("c", data))
        assert points[(("route", "/a"),)].value == THREADS * CALLS
        for n in range(THREADS):
            assert points[(("thread", n),)].value == 2 * CALLS
        (histogram_point,) = rig.metric("h", data).data.data_points
        assert histogram_point.count == THREADS * CALLS
        assert sum(histogram_point.bucket_counts) == THREADS * CALLS


def test_a_repeated_dict_is_keyed_once_and_an_attribute_set_never(
    diagnostics: Diagnostics, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed: list[object] = []
    real_freeze = stream_module.freeze

    def counting_freeze(attributes):  # type: ignore[no-untyped-def]
        keyed.append(attributes)
        return real_freeze(attributes)

    monkeypatch.setattr(stream_module, "freeze", counting_freeze)
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("c")
    attributes = {"method": "GET", "route": "/a", "status": 200}
    for _ in range(1000):
        counter.add(1, attributes)
    assert len(keyed) == 1
    prebuilt = AttributeSet({"method": "POST"})
    for _ in range(1000):
        counter.add(1, prebuilt)
    assert len(keyed) == 1
    points = by_attributes(rig.metric("c"))
    assert [p.value for p in points.values()] == [1000, 1000]


def test_a_delta_collection_forgets_cached_attribute_sets_with_their_series(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics, temporality="delta")
    counter = rig.provider.get_meter("m").create_counter("c")
    attributes = {"route": "/a"}
    counter.add(1, attributes)
    assert rig.metric("c").data.data_points[0].value == 1
    counter.add(5, attributes)  # after the hand-over: a fresh series, not the reported one
    assert rig.metric("c").data.data_points[0].value == 5
