"""MeterProvider and Meter: instruments per scope, validation, duplicates, callbacks, shutdown."""

from __future__ import annotations

import logging

import pytest

from telemetry_run.sdk import Diagnostics
from telemetry_run.sdk.metrics import (
    CallbackOptions,
    Counter,
    InMemoryMetricReader,
    MeterProvider,
    Observation,
    PeriodicExportingMetricReader,
)
from telemetry_run.sdk.metrics.data import Gauge, Histogram, Sum
from tests.unit.sdk.metrics_helpers import make_rig


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="telemetry_run")
    return caplog


def test_every_instrument_kind_reports_its_measurements(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics)
    meter = rig.provider.get_meter("shop", "1.2")
    meter.create_counter("orders", "{order}", "orders placed").add(3, {"tier": "gold"})
    meter.create_up_down_counter("carts.open").add(-2)
    meter.create_histogram("latency", "ms").record(12.0)
    meter.create_gauge("temperature", "Cel").set(21.5)
    meter.create_observable_counter("cpu", [lambda _: [Observation(7.0)]], "s")
    meter.create_observable_up_down_counter("memory", [lambda _: [Observation(100)]], "By")
    meter.create_observable_gauge("queue", [lambda _: [Observation(4, {"q": "a"})]])
    data = rig.collect()
    (resource_metrics,) = data.resource_metrics
    assert resource_metrics.resource.attributes["service.name"] == "test"
    (scope,) = resource_metrics.scope_metrics
    assert (scope.scope.name, scope.scope.version) == ("shop", "1.2")
    metrics = {m.name: m for m in scope.metrics}
    orders = metrics["orders"]
    assert (orders.unit, orders.description) == ("{order}", "orders placed")
    assert isinstance(orders.data, Sum) and orders.data.is_monotonic
    assert orders.data.data_points[0].value == 3
    assert orders.data.data_points[0].attributes == {"tier": "gold"}
    carts = metrics["carts.open"].data
    assert isinstance(carts, Sum) and not carts.is_monotonic
    assert carts.data_points[0].value == -2
    assert isinstance(metrics["latency"].data, Histogram)
    assert isinstance(metrics["temperature"].data, Gauge)
    assert metrics["temperature"].data.data_points[0].value == 21.5
    cpu = metrics["cpu"].data
    assert isinstance(cpu, Sum) and cpu.is_monotonic and cpu.data_points[0].value == 7.0
    memory = metrics["memory"].data
    assert isinstance(memory, Sum) and not memory.is_monotonic
    assert metrics["queue"].data.data_points[0].attributes == {"q": "a"}


def test_the_same_scope_is_the_same_meter(diagnostics: Diagnostics) -> None:
    provider = make_rig(diagnostics).provider
    assert provider.get_meter("a", "1") is provider.get_meter("a", "1")
    assert provider.get_meter("a", "1") is not provider.get_meter("a", "2")


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("", ""),
        ("1starts.with.digit", ""),
        ("has space", ""),
        ("x" * 256, ""),
        ("ok", "u" * 64),
        ("ok", "µs"),
    ],
)
def test_an_invalid_name_or_unit_gives_one_warning_and_an_instrument_that_records_nothing(
    diagnostics: Diagnostics, logs: pytest.LogCaptureFixture, name: str, unit: str
) -> None:
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter(name, unit)
    counter.add(1)
    counter.add(1)
    assert rig.collect().metrics() == []
    warnings = [r for r in logs.records if "is not created" in r.getMessage()]
    assert len(warnings) == 1


def test_names_up_to_255_characters_with_the_allowed_punctuation_are_valid(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics)
    name = "a" + "b_./-" * 50 + "c" * 4
    assert len(name) == 255
    rig.provider.get_meter("m").create_counter(name, "{request}").add(1)
    assert rig.metric(name).data.data_points[0].value == 1


def test_an_identical_registration_returns_the_same_instrument(diagnostics: Diagnostics) -> None:
    rig = make_rig(diagnostics)
    meter = rig.provider.get_meter("m")
    first = meter.create_counter("hits", "1", "d")
    second = meter.create_counter("HITS".lower(), "1", "d")
    assert first is second
    first.add(1)
    second.add(2)
    assert rig.metric("hits").data.data_points[0].value == 3


def test_a_conflicting_registration_warns_and_both_instruments_work(
    diagnostics: Diagnostics, logs: pytest.LogCaptureFixture
) -> None:
    rig = make_rig(diagnostics)
    meter = rig.provider.get_meter("m")
    counter = meter.create_counter("size", "By")
    histogram = meter.create_histogram("Size", "ms")
    assert isinstance(counter, Counter) and histogram is not counter
    counter.add(5)
    histogram.record(7)
    names = [m.name for m in rig.collect().metrics()]
    assert sorted(names) == ["Size", "size"]
    conflicts = [r for r in logs.records if "conflicts with" in r.getMessage()]
    assert len(conflicts) == 1


def test_negative_counter_increments_and_histogram_values_are_dropped_with_a_warning(
    diagnostics: Diagnostics, logs: pytest.LogCaptureFixture
) -> None:
    rig = make_rig(diagnostics)
    meter = rig.provider.get_meter("m")
    counter = meter.create_counter("c")
    counter.add(2)
    counter.add(-1)
    meter.create_histogram("h").record(-3)
    data = rig.collect()
    assert rig.metric("c", data).data.data_points[0].value == 2
    assert [m.name for m in data.metrics()] == ["c"]
    assert len([r for r in logs.records if "was dropped" in r.getMessage()]) == 2


def test_a_raising_callback_is_reported_once_and_the_others_are_collected(
    diagnostics: Diagnostics, logs: pytest.LogCaptureFixture
) -> None:
    rig = make_rig(diagnostics)

    def broken(options: CallbackOptions) -> list[Observation]:
        raise RuntimeError("sensor offline")

    meter = rig.provider.get_meter("m")
    meter.create_observable_gauge("temp", [broken, lambda _: [Observation(20, {"room": "a"})]])
    meter.create_observable_counter("ticks", [lambda _: [Observation(5)]])
    for _ in range(3):
        data = rig.collect()
        assert rig.metric("temp", data).data.data_points[0].value == 20
        assert rig.metric("ticks", data).data.data_points[0].value == 5
    reports = [r for r in logs.records if "sensor offline" in r.getMessage()]
    assert len(reports) == 1
    assert "broken" in reports[0].getMessage()


def test_a_callback_that_runs_past_the_deadline_is_skipped_and_later_ones_too(
    diagnostics: Diagnostics, logs: pytest.LogCaptureFixture
) -> None:
    rig = make_rig(diagnostics)
    seen: list[float] = []

    def slow(options: CallbackOptions) -> list[Observation]:
        seen.append(options.timeout_millis)
        rig.time.advance(60)  # the fake clock: the collection's 10 s are spent
        return [Observation(1, {"who": "slow"})]

    def after(options: CallbackOptions) -> list[Observation]:
        return [Observation(2, {"who": "after"})]

    meter = rig.provider.get_meter("m")
    meter.create_observable_gauge("g", [slow, after])
    meter.create_counter("c").add(1)
    data = rig.reader.collect(timeout=10.0)
    assert seen == [10_000.0]  # told how long it had
    assert [m.name for m in data.metrics()] == ["c"]  # the collection itself went on
    messages = [r.getMessage() for r in logs.records if "was skipped" in r.getMessage()]
    assert any("ran past the collection's deadline" in m for m in messages)
    assert any("deadline had passed" in m and "after" in m for m in messages)


def test_shutdown_is_idempotent_and_later_measurements_are_ignored(
    diagnostics: Diagnostics,
) -> None:
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("c")
    counter.add(1)
    assert rig.provider.shutdown(timeout=1.0)
    assert rig.provider.shutdown(timeout=1.0)
    counter.add(1)
    assert rig.collect().metrics() == []
    assert rig.provider.force_flush(timeout=1.0)


class _HangingExporter:
    """An exporter that takes as long as it is allowed: it returns at the deadline."""

    def __init__(self) -> None:
        self.deadlines: list[float] = []
        self.shutdowns = 0

    def export(self, metrics: object, *, deadline: float) -> object:
        from telemetry_run.sdk.exporters import ExportResult

        self.deadlines.append(deadline)
        return ExportResult(False, error="the receiver never answered", retryable=True)

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        self.shutdowns += 1


def test_shutdown_hands_its_deadline_to_the_exporter_and_counts_the_lost_points(
    diagnostics: Diagnostics,
) -> None:
    import time

    exporter = _HangingExporter()
    reader = PeriodicExportingMetricReader(exporter, interval=3600, diagnostics=diagnostics)  # type: ignore[arg-type]
    provider = MeterProvider([reader], diagnostics=diagnostics)
    provider.get_meter("m").create_counter("c").add(1, {"a": 1})
    before = time.monotonic()
    assert provider.shutdown(timeout=2.0) is False
    provider.shutdown(timeout=2.0)
    (deadline,) = exporter.deadlines
    assert before + 1.0 < deadline <= time.monotonic() + 2.0
    assert exporter.shutdowns == 1
    assert diagnostics.snapshot()["metric_points_dropped"] == 1


def test_a_reader_serves_one_provider(diagnostics: Diagnostics) -> None:
    reader = InMemoryMetricReader()
    MeterProvider([reader], diagnostics=diagnostics)
    with pytest.raises(ValueError, match="already registered"):
        MeterProvider([reader], diagnostics=diagnostics)


def test_a_value_that_is_not_a_number_is_dropped_with_a_warning_never_raised(
    diagnostics: Diagnostics, logs: pytest.LogCaptureFixture
) -> None:
    rig = make_rig(diagnostics)
    meter = rig.provider.get_meter("m")
    counter, histogram = meter.create_counter("c"), meter.create_histogram("h")
    gauge, up_down = meter.create_gauge("g"), meter.create_up_down_counter("u")
    counter.add("1")  # type: ignore[arg-type]
    histogram.record(None)  # type: ignore[arg-type]
    gauge.set("hot")  # type: ignore[arg-type]
    up_down.add([1])  # type: ignore[arg-type]
    counter.add(1)
    assert [m.name for m in rig.collect().metrics()] == ["c"]
    assert len([r for r in logs.records if "is not a number" in r.getMessage()]) == 4


@pytest.mark.internal_errors
def test_a_bug_of_ours_while_recording_is_reported_and_the_app_carries_on(
    diagnostics: Diagnostics, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry_run.sdk.metrics.stream import SyncStream

    reported: list[object] = []
    diagnostics.on_internal_error = reported.append
    rig = make_rig(diagnostics)
    counter = rig.provider.get_meter("m").create_counter("c")

    def broken(self: SyncStream, value: float, attributes: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(SyncStream, "record", broken)
    counter.add(1)
    counter.add(1)
    assert len(reported) == 2
    assert "Counter c" in reported[0].where  # type: ignore[attr-defined]


class _StuckExporter:
    """An export that hangs until the exporter is shut down, as a hung collector's does."""

    def __init__(self) -> None:
        import threading

        self.exporting = threading.Event()
        self.released = threading.Event()
        self.export_deadlines: list[float] = []

    def export(self, metrics: object, *, deadline: float) -> object:
        from telemetry_run.sdk.exporters import ExportResult

        self.export_deadlines.append(deadline)
        self.exporting.set()
        self.released.wait(60)
        return ExportResult(False, error="cancelled by shutdown")

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        self.released.set()


def test_shutdown_during_a_hung_periodic_export_ends_by_its_own_deadline(
    diagnostics: Diagnostics,
) -> None:
    import time

    exporter = _StuckExporter()
    reader = PeriodicExportingMetricReader(
        exporter,  # type: ignore[arg-type]
        interval=0.01,
        timeout=3600,  # the periodic export would wait an hour
        diagnostics=diagnostics,
    )
    provider = MeterProvider([reader], diagnostics=diagnostics)
    provider.get_meter("m").create_counter("c").add(1)
    assert exporter.exporting.wait(30)
    started = time.monotonic()
    assert provider.shutdown(timeout=0.2) is False  # the last collection could not be sent
    assert exporter.released.is_set()  # the exporter was told to stop, ending the hung export
    assert exporter.export_deadlines[0] > started + 60  # the thread's own, far away
    reader._thread.join(30)  # type: ignore[union-attr]
    assert diagnostics.snapshot()["metric_points_dropped"] == 1  # the hung batch, counted
