"""Diagnostics: exact counters, rate-limited warnings, internal errors, the snapshot."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from types import SimpleNamespace

import pytest

from telemetry_run.sdk import diagnostics as diagnostics_module
from telemetry_run.sdk.diagnostics import (
    DROP_REASONS,
    Counter,
    Diagnostics,
    InternalError,
    get_diagnostics,
)


class Clock:
    """Stands in for ``time`` in the diagnostics module: the test moves monotonic time."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(diagnostics_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="telemetry_run")
    return caplog


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "telemetry_run"]


# -- Counter -----------------------------------------------------------------------------------


def test_counter_counts_incr_and_add_exactly() -> None:
    counter = Counter()
    assert counter.value == 0
    assert counter.value == 0  # reading never increments
    counter.incr()
    counter.incr()
    counter.add(5)
    counter.add(1)
    assert counter.value == 8
    counter.add(0)
    counter.add(-3)
    assert counter.value == 8
    counter.add(1_000_000)
    assert counter.value == 1_000_008


def test_counter_is_exact_under_concurrent_threads() -> None:
    counter = Counter()
    threads, incrs, adds = 8, 20_000, 2_000
    start = threading.Barrier(threads + 1)
    reads: list[int] = []

    def bump() -> None:
        start.wait()
        incr, add = counter.incr, counter.add
        for i in range(incrs):
            incr()
            if i % 10 == 0:
                add(3)

    def read() -> None:
        start.wait()
        reads.extend(counter.value for _ in range(2_000))

    workers = [threading.Thread(target=bump) for _ in range(threads)]
    workers.append(threading.Thread(target=read))
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert counter.value == threads * (incrs + 3 * adds)
    assert reads == sorted(reads)  # monotonic as seen by a reader, never beyond the total
    assert reads[-1] <= counter.value


# -- warn() ------------------------------------------------------------------------------------


def test_warn_logs_once_per_interval_and_reports_what_it_suppressed(
    clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    diag = Diagnostics(interval=10)
    diag.warn("k", "exporter failed: %s", "first")
    assert messages(logs) == ["exporter failed: first"]

    for second in range(1, 5):
        clock.now += 1
        diag.warn("k", "exporter failed: %s", f"again {second}")
    assert messages(logs) == ["exporter failed: first"]

    clock.now += 6  # 10 s after the line that was logged
    diag.warn("k", "exporter failed: %s", "later")
    assert messages(logs)[1:] == ["exporter failed: later (4 similar message(s) suppressed)"]

    clock.now += 9.5
    diag.warn("k", "exporter failed: %s", "x")
    clock.now += 0.5
    diag.warn("k", "exporter failed: %s", "y")
    assert messages(logs)[2:] == ["exporter failed: y (1 similar message(s) suppressed)"]

    clock.now += 10
    diag.warn("k", "exporter failed: %s", "quiet")  # nothing suppressed since: no suffix
    assert messages(logs)[3:] == ["exporter failed: quiet"]


def test_warn_limits_each_key_on_its_own_and_keeps_the_level(
    clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    diag = Diagnostics(interval=60)
    diag.warn("a", "from a")
    diag.warn("b", "from b", level=logging.ERROR)
    diag.warn("a", "from a")
    diag.warn("b", "from b")
    assert [(r.getMessage(), r.levelno) for r in logs.records] == [
        ("from a", logging.WARNING),
        ("from b", logging.ERROR),
    ]


def test_warn_uses_the_given_logger(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="elsewhere")
    Diagnostics(log=logging.getLogger("elsewhere")).warn("k", "hello %d", 1)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("elsewhere", "hello 1")]


# -- internal errors ---------------------------------------------------------------------------


def test_internal_error_calls_the_hook_every_time_and_logs_once(
    clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    diag = Diagnostics()
    seen: list[InternalError] = []
    diag.on_internal_error = seen.append
    first, second = KeyError("k"), KeyError("again")
    diag.internal_error("MyExporter.export", first)
    diag.internal_error("MyExporter.export", second)
    assert seen == [
        InternalError("MyExporter.export", first),
        InternalError("MyExporter.export", second),
    ]
    (record,) = [r for r in logs.records if r.name == "telemetry_run"]
    assert record.levelno == logging.ERROR
    assert "MyExporter.export" in record.getMessage()
    assert "KeyError" in record.getMessage()


def test_internal_error_without_a_hook_only_logs(
    clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    diag = Diagnostics()
    assert diag.on_internal_error is None
    diag.internal_error("somewhere", RuntimeError("x"))
    assert len(messages(logs)) == 1


# -- drops -------------------------------------------------------------------------------------


def test_the_first_drop_is_logged_at_once_and_later_ones_per_interval(
    clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    diag = Diagnostics(interval=60)
    diag.drop("queue_full")
    assert len(messages(logs)) == 1
    assert "1 span(s) (queue full)" in messages(logs)[0]

    for _ in range(99):
        diag.drop("queue_full")
    diag.drop("queue_full", 50)
    clock.now += 59
    diag.drop("queue_full")
    assert len(messages(logs)) == 1  # folded while the interval runs

    diag.drop("export_failed", 7)  # another reason has its own schedule
    assert "7 span(s) (export failed)" in messages(logs)[1]

    clock.now += 1
    diag.drop("queue_full")
    assert len(messages(logs)) == 3
    assert "151 span(s) (queue full) since the last report, 152 in all" in messages(logs)[2]
    assert diag.spans_dropped["queue_full"].value == 152


def test_snapshot_has_every_counter(clock: Clock) -> None:
    diag = Diagnostics()
    diag.spans_started.add(10)
    diag.spans_ended.add(9)
    diag.spans_queued.add(8)
    diag.spans_exported.add(4)
    diag.spans_retried.add(2)
    diag.attributes_dropped.incr()
    diag.over_limits["attributes"].add(5)
    diag.over_limits["links"].add(6)
    diag.metric_points_exported.add(7)
    diag.metric_points_dropped.add(3)
    for n, reason in enumerate(DROP_REASONS, start=1):
        diag.drop(reason, n)
    assert diag.snapshot() == {
        "started": 10,
        "ended": 9,
        "produced": 8,
        "exported": 4,
        "retried": 2,
        "attributes_dropped": 1,
        "queue_full": 1,
        "export_failed": 2,
        "rejected": 3,
        "shutdown": 4,
        "dropped": 10,
        "attributes_over_limit": 5,
        "events_over_limit": 0,
        "links_over_limit": 6,
        "metric_points_exported": 7,
        "metric_points_dropped": 3,
    }
    assert set(DROP_REASONS) == {"queue_full", "export_failed", "rejected", "shutdown"}


def test_fresh_diagnostics_are_isolated_from_the_process_wide_one() -> None:
    before = get_diagnostics().snapshot()
    diag = Diagnostics()
    diag.spans_queued.add(5)
    diag.drop("shutdown", 5)
    assert get_diagnostics().snapshot() == before
    assert get_diagnostics() is get_diagnostics()


# -- fork --------------------------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent(
    """
    import os, threading
    from telemetry_run.sdk.diagnostics import Diagnostics

    diag = Diagnostics()
    held, done = threading.Event(), threading.Event()

    def hold():
        # Another thread is inside warn()/drop() bookkeeping at the moment of the fork.
        with diag._lock:
            held.set()
            done.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(20)
    pid = os.fork()
    if pid == 0:
        try:
            diag.warn("k", "child warns")
            diag.drop("queue_full")
        finally:
            os._exit(0)
    done.set()
    holder.join()
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status))
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_lock_is_held_can_still_warn() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", FORK_SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # also a forked child left behind
    if timed_out:
        pytest.fail("the forked child deadlocked on the diagnostics lock")
    assert proc.returncode == 0, err
    assert out.split() == ["0"]
    assert "child warns" in err  # the child's warning reached stderr (logging's last resort)


def test_a_forked_child_counts_only_its_own_spans() -> None:
    import subprocess
    import sys

    script = """
import os, threading
from telemetry_run.sdk import BatchSpanProcessor, Diagnostics, ExportResult, TracerProvider

release = threading.Event()

class Blocked:
    def export(self, spans, *, deadline):
        release.wait(5)
        return ExportResult(True)
    def force_flush(self, *, deadline):
        return True
    def shutdown(self, *, deadline):
        pass

diag = Diagnostics()
provider = TracerProvider(diagnostics=diag, shutdown_on_exit=False)
provider.add_span_processor(
    BatchSpanProcessor(Blocked(), max_export_batch_size=1, diagnostics=diag)
)
tracer = provider.get_tracer("t")
for _ in range(5):
    tracer.start_span("parent").end()
pid = os.fork()
if pid == 0:
    release.set()
    for _ in range(3):
        tracer.start_span("child").end()
    provider.shutdown(5)
    snap = diag.snapshot()
    ok = snap["started"] == 3 and snap["produced"] == 3 and snap["exported"] == 3
    ok = ok and snap["dropped"] == 0
    os._exit(0 if ok else 1)
release.set()
provider.shutdown(5)
_, status = os.waitpid(pid, 0)
snap = diag.snapshot()
assert snap["produced"] == 5 and snap["exported"] == 5, snap
raise SystemExit(os.waitstatus_to_exitcode(status))
"""
    result = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    assert result.returncode == 0
