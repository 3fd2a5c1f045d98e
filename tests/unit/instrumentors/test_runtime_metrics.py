"""Runtime metrics (#18): each figure is what the OS and the interpreter say, under the names,
units and attributes of the semantic conventions; off by name and with metrics export off;
registered after start-up, never during it; a forked child reports its own process."""

from __future__ import annotations

import gc
import json
import logging
import os
import resource
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_run.config import Config
from telemetry_run.instrumentors import runtime_metrics
from telemetry_run.instrumentors.plugin import SPECS
from telemetry_run.instrumentors.runtime_metrics import METER_NAME, RuntimeMetricsInstrumentor
from telemetry_run.sdk import Diagnostics, TracerProvider
from telemetry_run.sdk.metrics.data import Metric, Sum
from tests.unit.sdk.metrics_helpers import MetricsRig, make_rig
from tests.unit.sdk.scripts import run_script

HAS_PROC = os.path.exists("/proc/self/statm")
needs_proc = pytest.mark.skipif(not HAS_PROC, reason="needs /proc (Linux) for the OS's figures")

SPEC = next(spec for spec in SPECS if spec.name == "runtime_metrics")


@pytest.fixture
def rig(diagnostics: Diagnostics) -> Iterator[MetricsRig]:
    """The runtime metrics registered on a provider with an in-memory reader; the start-up
    timer is left waiting (the tests register at once)."""
    rig = make_rig(diagnostics)
    instrumentor = RuntimeMetricsInstrumentor()
    instrumentor.start_delay = 3600.0
    assert instrumentor.instrument(TracerProvider(), Config.from_env({}))
    assert instrumentor.register(rig.provider)
    rig.instrumentor = instrumentor  # type: ignore[attr-defined]
    yield rig
    instrumentor.uninstrument()


def points(metric: Metric) -> dict[Any, float]:
    """Each point's value by its one attribute's value (None for a point without one)."""
    found: dict[Any, float] = {}
    for point in metric.data.data_points:
        (value,) = point.attributes.values() or (None,)
        found[value] = point.value  # type: ignore[attr-defined]
    return found


def test_the_metrics_have_the_conventions_names_units_kinds_and_scope(rig: MetricsRig) -> None:
    data = rig.collect()
    (scope,) = data.resource_metrics[0].scope_metrics
    assert scope.scope.name == METER_NAME
    kinds = {
        m.name: (m.unit, type(m.data), getattr(m.data, "is_monotonic", None)) for m in scope.metrics
    }
    expected = {
        "process.cpu.time": ("s", Sum, True),
        "process.thread.count": ("{thread}", Sum, False),
        "cpython.gc.collections": ("{collection}", Sum, True),
        "cpython.gc.collected_objects": ("{object}", Sum, True),
        "cpython.gc.uncollectable_objects": ("{object}", Sum, True),
    }
    if HAS_PROC:
        expected["process.memory.usage"] = ("By", Sum, False)
    assert kinds == expected
    assert set(points(rig.metric("process.cpu.time", data))) == {"user", "system"}
    for name in ("collections", "collected_objects", "uncollectable_objects"):
        generations = points(rig.metric(f"cpython.gc.{name}", data))
        assert set(generations) == set(range(len(gc.get_stats())))


def test_cpu_time_is_what_getrusage_says_and_grows_with_work(rig: MetricsRig) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF)
    first = points(rig.metric("process.cpu.time"))
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert before.ru_utime <= first["user"] <= after.ru_utime
    assert before.ru_stime <= first["system"] <= after.ru_stime
    spent = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    while resource.getrusage(resource.RUSAGE_SELF).ru_utime < spent + 0.05:
        sum(range(10_000))  # user CPU time, until the OS has counted some
    second = points(rig.metric("process.cpu.time"))
    assert second["user"] >= spent + 0.05 > first["user"]


@needs_proc
def test_memory_usage_is_the_resident_set_and_grows_when_memory_is_touched(
    rig: MetricsRig,
) -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    first = points(rig.metric("process.memory.usage"))[None]
    assert first > 0 and first % page == 0
    block = bytearray(b"\x01") * (64 * 1024 * 1024)  # every page written, so resident
    second = points(rig.metric("process.memory.usage"))[None]
    assert second - first >= 32 * 1024 * 1024
    del block


def test_thread_count_counts_the_threads_that_run(rig: MetricsRig) -> None:
    release = threading.Event()
    extra = [threading.Thread(target=release.wait) for _ in range(3)]
    for thread in extra:
        thread.start()
    try:
        during = points(rig.metric("process.thread.count"))[None]
    finally:
        release.set()
        for thread in extra:
            thread.join()
    # The main thread, the three, the waiting start-up timer and whatever else runs.
    assert during >= 5
    if HAS_PROC:
        listed = len(os.listdir("/proc/self/task"))
        now = points(rig.metric("process.thread.count"))[None]
        assert abs(now - listed) <= 1  # read a moment apart: a thread may come or go
        assert now <= during - 3 + 1


def test_gc_counts_grow_with_collections_and_collected_cycles(rig: MetricsRig) -> None:
    oldest = len(gc.get_stats()) - 1
    data = rig.collect()
    collections = points(rig.metric("cpython.gc.collections", data))[oldest]
    collected = points(rig.metric("cpython.gc.collected_objects", data))[oldest]
    for _ in range(100):
        cycle: list[Any] = []
        cycle.append(cycle)
    del cycle
    gc.collect()
    gc.collect()
    data = rig.collect()
    assert points(rig.metric("cpython.gc.collections", data))[oldest] >= collections + 2
    assert points(rig.metric("cpython.gc.collected_objects", data))[oldest] >= collected + 100
    before = gc.get_stats()[oldest]["collections"]
    reported = points(rig.metric("cpython.gc.collections"))[oldest]
    assert before <= reported <= gc.get_stats()[oldest]["collections"]  # what gc says


def test_a_callback_that_raises_is_reported_once_and_the_others_are_still_collected(
    rig: MetricsRig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> tuple[float, float]:
        raise OSError("getrusage failed")

    monkeypatch.setattr(runtime_metrics, "_cpu_times", broken)
    caplog.set_level(logging.WARNING, logger="telemetry_run")
    for _ in range(3):
        names = {m.name for m in rig.collect().metrics()}
        assert "process.cpu.time" not in names
        assert {"process.thread.count", "cpython.gc.collections"} <= names
    reports = [r.getMessage() for r in caplog.records if "getrusage failed" in r.getMessage()]
    assert len(reports) == 1, reports
    assert "process.cpu.time" in reports[0]


def test_without_proc_memory_is_not_reported_and_threads_are_pythons(
    rig: MetricsRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open, real_listdir = open, os.listdir

    def no_proc_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    def no_proc_listdir(path: Any = ".") -> list[str]:
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_listdir(path)

    monkeypatch.setattr("builtins.open", no_proc_open)
    monkeypatch.setattr(os, "listdir", no_proc_listdir)
    data = rig.collect()
    assert "process.memory.usage" not in {m.name for m in data.metrics()}  # none rather than wrong
    assert points(rig.metric("process.thread.count", data))[None] == threading.active_count()


def test_once_uninstrumented_the_callbacks_observe_nothing(rig: MetricsRig) -> None:
    assert list(rig.collect().metrics())
    rig.instrumentor.uninstrument()  # type: ignore[attr-defined]
    assert list(rig.collect().metrics()) == []


def test_registering_twice_adds_nothing(rig: MetricsRig) -> None:
    assert not rig.instrumentor.register(rig.provider)  # type: ignore[attr-defined]
    assert len(rig.metric("process.cpu.time").data.data_points) == 2


def test_with_metrics_export_off_it_starts_nothing() -> None:
    instrumentor = RuntimeMetricsInstrumentor()
    config = Config.from_env({"OTEL_METRICS_EXPORTER": "none"})
    try:
        assert instrumentor.instrument(TracerProvider(), config)
        assert not instrumentor.metrics_on
        assert instrumentor._timer is None
    finally:
        instrumentor.uninstrument()


def test_the_spec_is_a_standard_library_one_started_with_every_process() -> None:
    assert SPEC.modules == ("telemetry_run",)
    assert SPEC.requires == "" and SPEC.distribution is None
    assert SPEC.load_class() is RuntimeMetricsInstrumentor


# -- under the bootstrap, in a process of its own ---------------------------------------------

BOOT = """
import json, sys, threading
from telemetry_run.bootstrap import run_once
state = run_once()
(status,) = [s for s in state.instrumentors if s.name == "runtime_metrics"]
print(json.dumps({
    "state": status.state,
    "reason": status.reason,
    "sdk_imported": "telemetry_run.sdk.metrics.provider" in sys.modules,
    "timer": any(t.name == "telemetry-run-runtime-metrics" for t in threading.enumerate()),
}))
"""


def _boot(**env: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_RUN"))}
    done = subprocess.run(
        [sys.executable, "-c", BOOT],
        env=clean | env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stderr == ""
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_the_bootstrap_starts_it_without_importing_the_metrics_sdk() -> None:
    result = _boot(OTEL_METRICS_EXPORTER="otlp")
    assert result["state"] == "patched", result
    assert result["timer"]
    assert not result["sdk_imported"]  # built by the timer, after start-up


@pytest.mark.parametrize(("interval_ms", "delay"), [("300", 0.3), ("60000", 10.0)])
def test_the_timer_waits_one_export_interval_at_most_ten_seconds(
    interval_ms: str, delay: float
) -> None:
    """A command that ends sooner exports nothing (and, with no collector, prints nothing)."""
    instrumentor = RuntimeMetricsInstrumentor()
    config = Config.from_env({"OTEL_METRIC_EXPORT_INTERVAL": interval_ms})
    assert instrumentor.instrument(TracerProvider(), config)
    try:
        assert instrumentor._timer is not None
        assert instrumentor._timer.interval == pytest.approx(delay)
    finally:
        instrumentor.uninstrument()


def test_it_is_disabled_by_name() -> None:
    result = _boot(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="runtime_metrics")
    assert result["state"] == "disabled", result


def test_it_is_off_quietly_when_metrics_export_is_off() -> None:
    result = _boot(OTEL_METRICS_EXPORTER="none")  # _boot: nothing on stderr
    assert not result["timer"] and not result["sdk_imported"]


# -- fork --------------------------------------------------------------------------------------

# Each in a fresh interpreter: no other thread there when it forks.
FORK_REGISTERED = """
import gc, json, os
from telemetry_run.config import Config
from telemetry_run.instrumentors.runtime_metrics import RuntimeMetricsInstrumentor
from telemetry_run.sdk import Resource, TracerProvider
from telemetry_run.sdk.metrics import InMemoryMetricReader, MeterProvider

def figures(reader, provider):
    found = {"os_pid": os.getpid(), "resource_pid": provider.resource.attributes["process.pid"]}
    for metric in reader.collect().metrics():
        for point in metric.data.data_points:
            key = metric.name + "/" + ",".join(str(v) for v in point.attributes.values())
            found[key] = point.value
    return found

reader = InMemoryMetricReader()
provider = MeterProvider([reader], resource=Resource({"process.pid": os.getpid()}))
instrumentor = RuntimeMetricsInstrumentor()
instrumentor.start_delay = 3600.0
instrumentor.instrument(TracerProvider(), Config.from_env({}))
instrumentor._timer.cancel()  # registered below instead: no thread at the fork
instrumentor._timer.join()
instrumentor.register(provider)
for _ in range(5):
    gc.collect()
spent = os.times().user
while os.times().user < spent + 0.2:
    sum(range(10_000))
parent = figures(reader, provider)
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.write(write_end, json.dumps(figures(reader, provider)).encode())
    finally:
        os._exit(0)
os.close(write_end)
with os.fdopen(read_end) as pipe:
    child = json.loads(pipe.read())
os.waitpid(pid, 0)
print(json.dumps({"parent": parent, "child": child}))
"""


def test_a_child_forked_after_registration_reports_its_own_process() -> None:
    out, err, code = run_script(FORK_REGISTERED, timeout=60)
    assert code == 0, err
    result = json.loads(out)
    parent, child = result["parent"], result["child"]
    oldest = len(gc.get_stats()) - 1
    assert parent["resource_pid"] == parent["os_pid"] != child["os_pid"]
    assert child["resource_pid"] == child["os_pid"]  # its points say whose they are
    assert parent[f"cpython.gc.collections/{oldest}"] >= 5
    assert child[f"cpython.gc.collections/{oldest}"] == 0  # counted from the fork on
    assert parent["process.cpu.time/user"] >= 0.2
    assert child["process.cpu.time/user"] < parent["process.cpu.time/user"]


FORK_WAITING = """
import json, os, time
from telemetry_run.config import Config
from telemetry_run.instrumentors.runtime_metrics import RuntimeMetricsInstrumentor
from telemetry_run.sdk import TracerProvider
from telemetry_run.sdk.metrics import InMemoryMetricReader, MeterProvider, set_meter_provider

reader = InMemoryMetricReader()
set_meter_provider(MeterProvider([reader]))
instrumentor = RuntimeMetricsInstrumentor()
instrumentor.start_delay = 3600.0
instrumentor.instrument(TracerProvider(), Config.from_env({}))  # the parent's timer waits
instrumentor.start_delay = 0.0  # what a child's own timer will wait
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        names = []
        deadline = time.monotonic() + 30  # only catches a hang
        while "process.cpu.time" not in names and time.monotonic() < deadline:
            time.sleep(0.01)
            names = [m.name for m in reader.collect().metrics()]
        os.write(write_end, json.dumps(names).encode())
    finally:
        os._exit(0)
os.close(write_end)
with os.fdopen(read_end) as pipe:
    child = json.loads(pipe.read())
os.waitpid(pid, 0)
print(json.dumps({"parent": [m.name for m in reader.collect().metrics()], "child": child}))
"""


def test_a_child_forked_before_the_timer_fired_starts_its_own() -> None:
    out, err, code = run_script(FORK_WAITING, timeout=60)
    assert code == 0, err
    result = json.loads(out)
    assert "process.cpu.time" in result["child"]  # the child's own timer registered them
    assert result["parent"] == []  # the parent's is still waiting
