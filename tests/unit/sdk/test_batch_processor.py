"""BatchSpanProcessor: exact accounting, export triggers, bounded flush/shutdown, fork safety.

Every pipeline gets its own Diagnostics, so the counters a test reads are the test's own. Timing
appears only as generous upper bounds ("returns within its deadline plus a second"); anything the
test waits for is polled with a bound far above what it needs.
"""

from __future__ import annotations

import logging
import os
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.sdk import (
    BatchSpanProcessor,
    Decision,
    Diagnostics,
    ExportResult,
    ReadableSpan,
    Resource,
    Sampler,
    TracerProvider,
)
from telemetry_run.sdk.diagnostics import InternalError
from telemetry_run.sdk.processors import batch
from telemetry_run.sdk.trace import Tracer
from telemetry_run.sdk.trace.sampling import SamplingResult, StaticSampler
from tests.native_twins import require_native
from tests.unit.sdk.scripts import run_script


@pytest.fixture(autouse=True, params=["native", "python"])
def on_end_twin(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test with ``on_end`` native (``sdk/_speedups.c`` batch_on_end), then Python."""
    if request.param == "python":
        monkeypatch.setattr(BatchSpanProcessor, "on_end", batch._python_on_end)
    else:
        require_native()
        assert BatchSpanProcessor.on_end is batch._native_on_end
    return str(request.param)


# A deadline no test waits for: a call that waited for it would trip the test's timeout.
HOUR = 3600.0
WORKER_NAME = "telemetry-run BatchSpanProcessor"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


class RecordingExporter:
    """Records every batch and the deadline it came with; can hang inside export.

    The first ``block_calls`` exports wait on ``release`` (forever unless the test or the
    fixture's teardown sets it); ``entered`` is set as soon as any export starts.
    """

    def __init__(
        self,
        *,
        block_calls: int = 0,
        result: ExportResult | None = None,
        fail_first: BaseException | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[ReadableSpan]] = []
        self.calls: list[tuple[float, float]] = []  # (monotonic time of the call, deadline)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.block_calls = block_calls
        self.result = result if result is not None else ExportResult(True)
        self.fail_first = fail_first
        self.shutdown_calls = 0
        self.force_flush_calls = 0

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        with self.lock:
            call = len(self.calls)
            self.calls.append((time.monotonic(), deadline))
            self.batches.append(list(spans))
        self.entered.set()
        if call < self.block_calls:
            self.release.wait()
        if call == 0 and self.fail_first is not None:
            raise self.fail_first
        return self.result

    def force_flush(self, *, deadline: float) -> bool:
        self.force_flush_calls += 1
        return True

    def shutdown(self, *, deadline: float) -> None:
        self.shutdown_calls += 1

    @property
    def span_ids(self) -> list[int]:
        with self.lock:
            return [s.context.span_id for batch in self.batches for s in batch]

    @property
    def exported_count(self) -> int:
        with self.lock:
            return sum(len(b) for b in self.batches)


@dataclass
class Pipeline:
    provider: TracerProvider
    processor: BatchSpanProcessor
    tracer: Tracer
    exporter: RecordingExporter
    diagnostics: Diagnostics

    def end_spans(self, n: int, prefix: str = "span") -> list[int]:
        """End ``n`` spans; their span ids in end order."""
        ids = []
        for i in range(n):
            span = self.tracer.start_span(f"{prefix}-{i}")
            span.end()
            ids.append(span.get_span_context().span_id)
        return ids

    def counts(self) -> dict[str, int]:
        return self.diagnostics.snapshot()


def assert_accounted(counts: dict[str, int]) -> None:
    """Every span handed to the processor was exported or dropped for a reason, exactly once."""
    assert counts["produced"] == counts["exported"] + counts["dropped"], counts


MakePipeline = Callable[..., Pipeline]


@pytest.fixture
def make_pipeline(diagnostics: Diagnostics) -> Iterator[MakePipeline]:
    made: list[Pipeline] = []

    def make(
        exporter: RecordingExporter | None = None,
        *,
        sampler: Sampler | None = None,
        **kwargs: float,
    ) -> Pipeline:
        exporter = exporter if exporter is not None else RecordingExporter()
        provider = TracerProvider(
            Resource({"service.name": "bsp-test"}),
            sampler=sampler,
            diagnostics=diagnostics,
            shutdown_on_exit=False,
        )
        processor = BatchSpanProcessor(exporter, diagnostics=diagnostics, **kwargs)  # type: ignore[arg-type]
        provider.add_span_processor(processor)
        pipeline = Pipeline(provider, processor, provider.get_tracer("bsp"), exporter, diagnostics)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.exporter.release.set()
        pipeline.provider.shutdown(timeout=5)


def worker_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == WORKER_NAME}


# -- overflow and accounting -------------------------------------------------------------------


def test_overflow_drops_the_newest_spans_and_counts_them_exactly(
    make_pipeline: MakePipeline,
) -> None:
    batch, queue, extra = 4, 16, 7
    p = make_pipeline(
        RecordingExporter(block_calls=1),
        max_queue_size=queue,
        max_export_batch_size=batch,
        schedule_delay=1000,
    )
    in_flight = p.end_spans(batch, "in-flight")
    assert p.exporter.entered.wait(10), "a full batch must start an export"
    # The worker is now stuck in the exporter holding exactly one batch: nothing drains.
    queued = p.end_spans(queue, "queued")
    dropped = p.end_spans(extra, "dropped")

    counts = p.counts()
    assert counts["queue_full"] == extra
    assert counts["produced"] == batch + queue + extra
    assert p.processor.queue_length == queue

    p.exporter.release.set()
    p.provider.shutdown(timeout=10)

    counts = p.counts()
    assert counts["exported"] == batch + queue
    assert counts["queue_full"] == extra
    assert counts["dropped"] == extra
    assert_accounted(counts)
    assert p.exporter.span_ids == in_flight + queued  # in order, each once, none of the dropped
    assert not set(dropped) & set(p.exporter.span_ids)


def test_concurrent_producers_keep_exact_accounting(make_pipeline: MakePipeline) -> None:
    threads, per_thread = 8, 2000
    p = make_pipeline(max_queue_size=64, max_export_batch_size=8, schedule_delay=0.001)
    start = threading.Barrier(threads)
    ended: list[list[int]] = [[] for _ in range(threads)]

    def produce(i: int) -> None:
        start.wait()
        ended[i] = p.end_spans(per_thread, f"t{i}")

    workers = [threading.Thread(target=produce, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert not w.is_alive()
    p.provider.shutdown(timeout=30)

    counts = p.counts()
    all_ended = {span_id for ids in ended for span_id in ids}
    received = p.exporter.span_ids
    assert counts["produced"] == threads * per_thread == len(all_ended)
    assert len(received) == len(set(received)) == counts["exported"]  # nothing exported twice
    assert set(received) <= all_ended
    assert counts["exported"] + counts["queue_full"] == threads * per_thread
    assert counts["export_failed"] == counts["rejected"] == counts["shutdown"] == 0
    assert_accounted(counts)


# -- export triggers ---------------------------------------------------------------------------


def test_a_full_batch_is_exported_without_waiting_for_the_schedule_delay(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(max_export_batch_size=5, schedule_delay=1000)
    ids = p.end_spans(5)
    wait_until(lambda: p.exporter.exported_count == 5, "the full batch to be exported")
    assert [len(b) for b in p.exporter.batches] == [5]
    assert p.exporter.span_ids == ids
    assert p.exporter.force_flush_calls == 0


def test_the_schedule_delay_exports_a_partial_batch_without_a_flush(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(max_export_batch_size=512, schedule_delay=0.05)
    ids = p.end_spans(3)
    wait_until(lambda: p.exporter.exported_count == 3, "the timer to export the spans")
    assert p.exporter.span_ids == ids
    assert p.exporter.force_flush_calls == 0
    assert p.counts()["exported"] == 3


def test_batches_never_exceed_max_export_batch_size(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(max_queue_size=10_000, max_export_batch_size=7, schedule_delay=0.005)
    ids: list[int] = []
    for round_ in range(20):
        ids += p.end_spans(25, f"r{round_}")
        if round_ % 3 == 0:
            assert p.provider.force_flush(timeout=10)
    p.provider.shutdown(timeout=10)
    sizes = [len(b) for b in p.exporter.batches]
    assert sizes
    assert max(sizes) <= 7
    assert p.exporter.span_ids == ids
    assert_accounted(p.counts())


def test_max_export_batch_size_is_capped_by_the_queue_size(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(max_queue_size=3, max_export_batch_size=100, schedule_delay=1000)
    ids = p.end_spans(3)
    wait_until(lambda: p.exporter.exported_count == 3, "a full queue to be exported")
    assert p.exporter.span_ids == ids


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_queue_size": 0},
        {"max_export_batch_size": 0},
        {"schedule_delay": -1},
        {"export_timeout": -1},
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, float], diagnostics: Diagnostics) -> None:
    with pytest.raises(ValueError):
        BatchSpanProcessor(RecordingExporter(), diagnostics=diagnostics, **kwargs)  # type: ignore[arg-type]


# -- a hanging exporter ------------------------------------------------------------------------


def test_a_hanging_exporter_cannot_hold_flush_or_shutdown_past_their_deadline(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(
        RecordingExporter(block_calls=1_000_000),
        max_queue_size=100,
        max_export_batch_size=4,
        schedule_delay=1000,
    )
    p.end_spans(4, "hung")
    assert p.exporter.entered.wait(10)
    p.end_spans(10, "queued")

    assert p.provider.force_flush(timeout=0.3) is False
    p.provider.shutdown(timeout=0.3)
    assert not p.exporter.release.is_set()  # both gave up at their deadline, the export still hung

    counts = p.counts()
    assert counts["export_failed"] == 4  # the batch stuck in the exporter
    assert counts["shutdown"] == 10  # what was still queued
    assert counts["exported"] == 0
    assert_accounted(counts)
    assert p.exporter.shutdown_calls == 1

    # When the exporter finally returns, its late success is not counted a second time.
    workers = worker_threads()
    p.exporter.release.set()
    for worker in workers:
        worker.join(10)
    assert p.counts() == counts


def test_on_end_never_waits_for_a_hanging_exporter(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(
        RecordingExporter(block_calls=1_000_000),
        max_queue_size=100,
        max_export_batch_size=10,
        schedule_delay=1000,
    )
    p.end_spans(10, "hung")
    assert p.exporter.entered.wait(10)

    producer = threading.Thread(target=p.end_spans, args=(10_000,))
    producer.start()
    producer.join(60)  # the exporter hangs forever: finishing at all proves on_end never waits
    assert not producer.is_alive(), "on_end blocked behind the hanging exporter"
    assert len(p.exporter.calls) == 1
    assert not p.exporter.release.is_set()
    counts = p.counts()
    assert counts["queue_full"] == 10_000 - 100
    assert counts["produced"] == 10_010


@pytest.mark.parametrize(
    ("flush_in", "export_timeout"),
    [(2.0, 30.0), (100.0, 5.0)],
    ids=["flush-deadline-wins", "export-timeout-wins"],
)
def test_each_export_gets_the_earlier_of_export_timeout_and_flush_deadline(
    make_pipeline: MakePipeline, flush_in: float, export_timeout: float
) -> None:
    p = make_pipeline(max_export_batch_size=512, schedule_delay=1000, export_timeout=export_timeout)
    p.end_spans(3)
    flush_deadline = time.monotonic() + flush_in
    assert p.processor.force_flush(deadline=flush_deadline)
    ((called_at, deadline),) = p.exporter.calls
    assert deadline <= flush_deadline
    assert called_at < deadline <= called_at + export_timeout


def test_zero_export_timeout_means_no_limit_but_the_flush_deadline(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(schedule_delay=1000, export_timeout=0)
    p.end_spans(2)
    flush_deadline = time.monotonic() + 3
    assert p.processor.force_flush(deadline=flush_deadline)
    ((_, deadline),) = p.exporter.calls
    assert deadline == flush_deadline


@pytest.mark.parametrize("call", ["force_flush", "shutdown"])
def test_batches_exported_after_a_flush_or_shutdown_call_get_its_deadline(
    make_pipeline: MakePipeline, call: str
) -> None:
    # The worker is mid-way through exporting full batches (stuck in the first one) when the
    # caller asks for a flush/shutdown: the remaining batches must not get the full export
    # timeout, which would let a retrying exporter outlive the caller's deadline.
    p = make_pipeline(
        RecordingExporter(block_calls=1),
        max_queue_size=100,
        max_export_batch_size=1,
        schedule_delay=1000,
        export_timeout=300,
    )
    p.end_spans(1, "first")
    assert p.exporter.entered.wait(10)
    p.end_spans(5, "rest")
    caller_deadline = time.monotonic() + 20
    caller = threading.Thread(
        target=getattr(p.processor, call), kwargs={"deadline": caller_deadline}
    )
    caller.start()
    # Synchronise on the request being registered (private, but the only observable point).
    wait_until(lambda: bool(p.processor._flush_requests), "the request to be registered")
    p.exporter.release.set()
    caller.join(30)
    assert not caller.is_alive()

    later = p.exporter.calls[1:]
    assert len(later) == 5
    assert all(deadline <= caller_deadline for _, deadline in later), later
    counts = p.counts()
    assert counts["exported"] == 6
    assert_accounted(counts)


# -- failing exporters -------------------------------------------------------------------------


@pytest.mark.internal_errors
def test_an_exporter_that_raises_is_contained_counted_and_reported(
    make_pipeline: MakePipeline, diagnostics: Diagnostics
) -> None:
    errors: list[InternalError] = []
    diagnostics.on_internal_error = errors.append
    boom = RuntimeError("boom")
    p = make_pipeline(RecordingExporter(fail_first=boom), schedule_delay=1000)
    p.end_spans(3, "lost")
    p.provider.force_flush(timeout=10)

    counts = p.counts()
    assert counts["export_failed"] == 3
    assert counts["exported"] == 0
    assert [(e.where, e.exception) for e in errors] == [("RecordingExporter.export", boom)]

    # The worker survived: the next batch goes out.
    ids = p.end_spans(2, "kept")
    assert p.provider.force_flush(timeout=10)
    assert p.exporter.span_ids[-2:] == ids
    counts = p.counts()
    assert counts["exported"] == 2
    assert_accounted(counts)


def test_a_failed_export_result_is_counted_as_export_failed(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(
        RecordingExporter(result=ExportResult(False, error="collector said no")),
        schedule_delay=1000,
    )
    p.end_spans(4)
    p.provider.force_flush(timeout=10)
    counts = p.counts()
    assert counts["export_failed"] == 4
    assert counts["exported"] == 0
    assert_accounted(counts)


class FlakyExporter(RecordingExporter):
    """Fails its first ``failures`` exports with a retryable result (the collector is down)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.failed_calls = 0
        self.failed_spans = 0

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        with self.lock:
            failing = self.failures > 0
            self.failures -= 1
            self.failed_calls += failing
            self.failed_spans += len(spans) if failing else 0
        if failing:
            return ExportResult(False, error="UNAVAILABLE: collector down", retryable=True)
        return super().export(spans, deadline=deadline)


def test_an_outage_shorter_than_the_queue_loses_nothing(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(FlakyExporter(failures=3), schedule_delay=0.01, max_export_batch_size=4)
    ids = p.end_spans(10)
    wait_until(lambda: p.exporter.exported_count == 10, "the spans after the outage")
    assert sorted(p.exporter.span_ids) == sorted(ids)  # each exactly once
    counts = p.counts()
    assert counts["exported"] == 10 and counts["export_failed"] == 0
    exporter = p.exporter
    assert isinstance(exporter, FlakyExporter)
    assert counts["retried"] == exporter.failed_spans > 0  # each failed batch went back
    assert_accounted(counts)


def test_what_does_not_fit_back_in_the_queue_is_counted(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(
        FlakyExporter(failures=1), schedule_delay=3600, max_queue_size=4, max_export_batch_size=4
    )
    p.end_spans(4)  # a full batch: exported at once, and failing
    exporter = p.exporter
    assert isinstance(exporter, FlakyExporter)
    wait_until(lambda: exporter.failed_calls == 1 and p.processor.queue_length == 4, "requeued")
    p.end_spans(3)  # the queue is full again with the requeued batch: these are dropped
    p.provider.force_flush(timeout=10)
    counts = p.counts()
    assert counts["exported"] == 4 and counts["queue_full"] == 3
    assert_accounted(counts)


def test_a_flush_does_not_requeue_what_failed(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(FlakyExporter(failures=1), schedule_delay=3600)
    p.end_spans(4)
    p.provider.force_flush(timeout=10)  # the caller waits for an answer: failed is failed
    counts = p.counts()
    assert counts["export_failed"] == 4 and p.processor.queue_length == 0
    assert_accounted(counts)


class ScriptedExporter(RecordingExporter):
    """Answers each export from ``script`` (True: success, False: a retryable failure), then
    succeeds; records every batch it was given, failed or not."""

    def __init__(self, script: list[bool]) -> None:
        super().__init__()
        self.script = list(script)
        self.attempted: list[list[int]] = []

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        with self.lock:
            self.attempted.append([s.context.span_id for s in spans])
            ok = self.script.pop(0) if self.script else True
        if not ok:
            return ExportResult(False, error="UNAVAILABLE: collector down", retryable=True)
        return super().export(spans, deadline=deadline)


def test_during_an_outage_a_full_queue_keeps_the_newest_spans(make_pipeline: MakePipeline) -> None:
    exporter = ScriptedExporter([False])
    p = make_pipeline(exporter, schedule_delay=3600, max_queue_size=8, max_export_batch_size=4)
    first = p.end_spans(4, "first")  # a full batch: exported at once, and failing
    wait_until(lambda: len(exporter.attempted) == 1 and p.processor.queue_length == 4, "requeued")
    later = p.end_spans(10, "later")  # 14 spans for 8 places: the 6 oldest make room
    counts = p.counts()
    assert counts["queue_full"] == 6
    assert p.processor.queue_length == 8

    p.provider.force_flush(timeout=10)  # the collector is back
    kept = (first + later)[-8:]
    assert p.exporter.span_ids == kept  # the newest, in order, each once
    counts = p.counts()
    assert counts["exported"] == 8 and counts["queue_full"] == 6 and counts["export_failed"] == 0
    assert_accounted(counts)


def test_spans_made_after_a_recovery_are_exported_with_the_backlog_not_refused(
    make_pipeline: MakePipeline,
) -> None:
    # The queue is full of the outage's spans when the collector comes back: without room made
    # for them, every span made then would be dropped until the backlog is through.
    exporter = ScriptedExporter([False])
    p = make_pipeline(exporter, schedule_delay=3600, max_queue_size=8, max_export_batch_size=4)
    p.end_spans(4, "outage")
    wait_until(lambda: len(exporter.attempted) == 1, "the failed export")
    p.end_spans(8, "outage-more")
    fresh = p.end_spans(5, "fresh")  # made after the recovery, before the next export
    p.provider.force_flush(timeout=10)
    assert set(fresh) <= set(p.exporter.span_ids)
    assert_accounted(p.counts())


def test_producers_racing_the_worker_during_an_outage_keep_exact_accounting(
    make_pipeline: MakePipeline,
) -> None:
    # On a full queue during an outage, on_end pushes out the oldest span without the lock
    # while the worker takes batches and puts them back: no span lost without a count, none
    # exported twice.
    exporter = ScriptedExporter([False] * 200)
    p = make_pipeline(exporter, schedule_delay=0.001, max_queue_size=64, max_export_batch_size=16)
    p.end_spans(16)
    wait_until(lambda: len(exporter.attempted) >= 1, "the outage to start")
    threads = [threading.Thread(target=p.end_spans, args=(3000, f"t{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p.provider.shutdown(timeout=10)
    counts = p.counts()
    assert counts["produced"] == 16 + 4 * 3000
    assert counts["queue_full"] > 0
    assert len(set(p.exporter.span_ids)) == len(p.exporter.span_ids) == counts["exported"]
    assert_accounted(counts)


def test_probes_back_off_from_the_schedule_delay_and_reset_at_the_first_success(
    make_pipeline: MakePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from telemetry_run.sdk.processors import batch

    now = 1000.0  # a frozen clock: each wait is exactly the backoff the worker computed
    monkeypatch.setattr(batch, "_monotonic", lambda: now)
    monkeypatch.setattr(batch, "MAX_PROBE_INTERVAL", 0.08)
    monkeypatch.setattr(random, "random", lambda: 1.0)  # the jitter's upper end
    exporter = ScriptedExporter([False] * 5 + [True, False, True])
    p = make_pipeline(exporter, schedule_delay=0.01, max_export_batch_size=4)
    waits: list[float] = []
    schedule = p.processor._schedule_probe

    def recording() -> None:
        schedule()
        waits.append(round(p.processor._next_probe - now, 6))

    monkeypatch.setattr(p.processor, "_schedule_probe", recording)
    p.end_spans(1)
    wait_until(lambda: p.exporter.exported_count == 1, "the span once the collector is back")
    assert len(exporter.attempted) == 6  # one attempt per probe, not a drain
    assert waits == [0.01, 0.02, 0.04, 0.08, 0.08]  # doubling, capped
    p.end_spans(1)
    wait_until(lambda: p.exporter.exported_count == 2, "the second span")
    assert waits[5:] == [0.01]  # the success reset the backoff
    assert_accounted(p.counts())


def test_a_failing_collector_gets_one_batch_per_probe_never_the_whole_queue(
    make_pipeline: MakePipeline,
) -> None:
    exporter = ScriptedExporter([False] * 1000)
    p = make_pipeline(exporter, schedule_delay=0.01, max_queue_size=64, max_export_batch_size=4)
    p.end_spans(40)
    wait_until(lambda: len(exporter.attempted) >= 3, "three probes")
    with exporter.lock:
        attempted = list(exporter.attempted)
    # Every probe is the same oldest batch, put back at the head each time.
    assert all(batch == attempted[0] for batch in attempted)
    wait_until(lambda: p.processor.queue_length == 40, "the probe's batch back in the queue")
    counts = p.counts()
    assert counts["export_failed"] == 0 and counts["queue_full"] == 0


@pytest.mark.parametrize(
    ("batch", "rejected", "expect_rejected"),
    [(5, 3, 3), (5, 0, 0), (2, 10, 2), (2, -4, 0)],
    ids=["partial", "none", "more-than-sent", "negative"],
)
def test_rejected_spans_are_counted_and_clamped_to_the_batch(
    make_pipeline: MakePipeline, batch: int, rejected: int, expect_rejected: int
) -> None:
    # ``rejected`` comes from the receiver (OTLP partial success): a misbehaving collector must
    # not make the counters claim more spans than were sent.
    p = make_pipeline(
        RecordingExporter(result=ExportResult(True, rejected=rejected)), schedule_delay=1000
    )
    p.end_spans(batch)
    assert p.provider.force_flush(timeout=10)
    counts = p.counts()
    assert counts["rejected"] == expect_rejected
    assert counts["exported"] == batch - expect_rejected
    assert_accounted(counts)


# -- shutdown ----------------------------------------------------------------------------------


def test_shutdown_drains_everything_queued_and_is_idempotent(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(max_queue_size=10_000, max_export_batch_size=10, schedule_delay=1000)
    ids = p.end_spans(95)
    p.provider.shutdown(timeout=10)
    assert p.exporter.span_ids == ids
    counts = p.counts()
    assert counts["exported"] == 95
    assert_accounted(counts)
    assert p.exporter.shutdown_calls == 1

    p.processor.shutdown(deadline=time.monotonic() + HOUR)
    p.provider.shutdown(timeout=HOUR)
    assert p.exporter.shutdown_calls == 1
    assert p.counts() == counts


def test_spans_ended_after_shutdown_are_counted_and_not_exported(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(schedule_delay=1000)
    p.end_spans(2, "before")
    p.processor.shutdown(deadline=time.monotonic() + 10)  # the provider still makes spans
    p.end_spans(3, "after")
    assert [s.name for b in p.exporter.batches for s in b] == ["before-0", "before-1"]
    counts = p.counts()
    assert counts["shutdown"] == 3
    assert counts["exported"] == 2
    assert_accounted(counts)


def test_record_only_spans_are_not_exported(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(sampler=StaticSampler(Decision.RECORD_ONLY), schedule_delay=1000)
    span = p.tracer.start_span("record-only")
    assert span.is_recording()
    assert not span.get_span_context().trace_flags.sampled
    span.end()
    p.end_spans(5)
    p.provider.shutdown(timeout=10)
    assert p.exporter.batches == []
    counts = p.counts()
    assert counts["produced"] == counts["exported"] == counts["dropped"] == 0
    assert counts["ended"] == 6


class SampledByName(Sampler):
    """Samples the spans whose name starts with ``sampled``; records the others only."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str, *args: Any) -> Any:
        decision = (
            Decision.RECORD_AND_SAMPLE if name.startswith("sampled") else Decision.RECORD_ONLY
        )
        return SamplingResult(decision)

    def description(self) -> str:
        return "SampledByName"


def test_record_only_spans_between_sampled_ones_are_not_queued(make_pipeline: MakePipeline) -> None:
    p = make_pipeline(sampler=SampledByName(), schedule_delay=HOUR)
    sampled = p.end_spans(2, "sampled")  # the queue holds spans: no first-span checks
    p.end_spans(3, "recorded")
    sampled += p.end_spans(1, "sampled-again")
    assert p.processor.queue_length == 3
    p.provider.shutdown(timeout=10)
    assert p.exporter.span_ids == sampled
    counts = p.counts()
    assert counts["produced"] == counts["exported"] == 3 and counts["ended"] == 6


def test_spans_ended_while_the_processor_shuts_down_are_counted_not_queued(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(
        RecordingExporter(block_calls=1),
        max_queue_size=64,
        max_export_batch_size=4,
        schedule_delay=HOUR,
    )
    p.end_spans(4, "in-flight")
    assert p.exporter.entered.wait(10), "a full batch must start an export"
    p.end_spans(3, "queued")  # behind the export that hangs: the queue is not empty
    closing = threading.Thread(
        target=p.processor.shutdown, kwargs={"deadline": time.monotonic() + 10}
    )
    closing.start()
    try:
        wait_until(lambda: p.processor._shutdown, "the shutdown to begin")
        p.end_spans(2, "late")
    finally:
        p.exporter.release.set()
        closing.join(15)
    assert not closing.is_alive()
    names = [span.name for batch in p.exporter.batches for span in batch]
    assert not [name for name in names if name.startswith("late")]
    counts = p.counts()
    assert counts["shutdown"] == 2 and counts["produced"] == 9
    assert_accounted(counts)


def test_the_worker_is_a_daemon_thread_that_ends_at_shutdown(make_pipeline: MakePipeline) -> None:
    before = worker_threads()
    p = make_pipeline()
    (worker,) = worker_threads() - before
    assert worker.daemon
    p.provider.shutdown(timeout=10)
    worker.join(10)
    assert not worker.is_alive()


def test_force_flush_after_shutdown_returns_at_once_even_with_a_hung_exporter(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(
        RecordingExporter(block_calls=1_000_000), max_export_batch_size=2, schedule_delay=1000
    )
    p.end_spans(2)
    assert p.exporter.entered.wait(10)
    p.provider.shutdown(timeout=0.1)
    p.processor.force_flush(deadline=time.monotonic() + HOUR)
    p.provider.force_flush(timeout=HOUR)
    assert len(p.exporter.calls) == 1  # no second export behind the hung one


def test_the_first_drop_is_logged_at_once_and_repeats_are_folded(
    make_pipeline: MakePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="telemetry_run")
    p = make_pipeline(
        RecordingExporter(block_calls=1),
        max_queue_size=4,
        max_export_batch_size=4,
        schedule_delay=1000,
    )
    p.end_spans(4, "in-flight")
    assert p.exporter.entered.wait(10)
    p.end_spans(4, "queued")
    assert not [r for r in caplog.records if "dropped" in r.getMessage()]

    p.end_spans(1, "first-drop")
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1
    assert drops[0].name == "telemetry_run"
    assert drops[0].levelno == logging.WARNING
    assert "queue full" in drops[0].getMessage()

    p.end_spans(500, "more-drops")
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1
    assert p.counts()["queue_full"] == 501


# -- fork --------------------------------------------------------------------------------------

FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time
    from telemetry_run.sdk import (
        BatchSpanProcessor, Diagnostics, ExportResult, Resource, TracerProvider,
    )

    mode, out = sys.argv[1], sys.argv[2]
    entered, release = threading.Event(), threading.Event()
    state = {"blocked": False}

    def exported_lines():
        try:
            with open(out) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_for(predicate):
        end = time.monotonic() + 20
        while not predicate():
            if time.monotonic() > end:
                return False
            time.sleep(0.005)
        return True

    class FileExporter:
        def export(self, spans, *, deadline):
            if mode == "mid-export" and not state["blocked"]:
                state["blocked"] = True  # only the parent's first export hangs
                entered.set()
                release.wait()
            data = "".join(f"{os.getpid()} {s.name}\\n" for s in spans).encode()
            fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return ExportResult(True)

        def force_flush(self, *, deadline):
            return True

        def shutdown(self, *, deadline):
            pass

    diag = Diagnostics()
    provider = TracerProvider(
        Resource({"service.name": "fork"}), diagnostics=diag, shutdown_on_exit=False
    )
    bsp = BatchSpanProcessor(
        FileExporter(), max_export_batch_size=4, schedule_delay=1000, diagnostics=diag
    )
    provider.add_span_processor(bsp)
    tracer = provider.get_tracer("fork")

    def end(prefix, n):
        for i in range(n):
            tracer.start_span(f"{prefix}-{i}").end()

    if mode == "mid-export":
        end("parent-inflight", 4)  # a full batch: the worker takes it and hangs in export
        assert entered.wait(20)
    end("parent-queued", 3)  # fewer than a batch: still queued when the fork happens

    holder = None
    if mode == "lock-held":
        # Another thread of the parent holds the processor's lock across the fork.
        got, done = threading.Event(), threading.Event()
        def hold():
            with bsp._lock:
                got.set()
                done.wait()
        holder = threading.Thread(target=hold)
        holder.start()
        got.wait()

    pid = os.fork()
    if pid == 0:
        try:
            end("child-batch", 4)  # a full batch: the child's own worker must export it
            ok = wait_for(
                lambda: sum(l.endswith(tuple(f"child-batch-{i}" for i in range(4)))
                            for l in exported_lines()) == 4
            )
            end("child-tail", 2)
            provider.shutdown(10)
            snap = diag.snapshot()
            with open(out + ".child", "w") as f:
                f.write(f"{int(ok)} {snap['exported']} {snap['dropped']}\\n")
        finally:
            os._exit(0)

    if holder is not None:
        done.set()
        holder.join()
    release.set()
    end("parent-after", 2)
    provider.shutdown(10)
    _, status = os.waitpid(pid, 0)
    print(os.getpid(), pid, os.waitstatus_to_exitcode(status))
    """
)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("mode", ["idle", "mid-export", "lock-held"])
def test_fork_each_process_exports_exactly_the_spans_it_ended(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "exported.txt"
    # A deadlocked child (or the parent waiting for it) fails here instead of hanging the run.
    stdout, stderr, returncode = run_script(FORK_SCRIPT, mode, str(out), timeout=90)
    assert returncode == 0, stderr
    parent_pid, child_pid, child_exit = map(int, stdout.split())
    assert child_exit == 0, stderr

    lines = out.read_text().splitlines()
    by_name: dict[str, list[int]] = {}
    for line in lines:
        pid, name = line.split(" ", 1)
        by_name.setdefault(name, []).append(int(pid))

    parent_spans = _names("parent-queued", 3) + _names("parent-after", 2)
    if mode == "mid-export":
        parent_spans += _names("parent-inflight", 4)
    child_spans = _names("child-batch", 4) + _names("child-tail", 2)
    assert sorted(by_name) == sorted(parent_spans + child_spans)
    for name in parent_spans:
        assert by_name[name] == [parent_pid], (name, by_name[name])  # once, by the parent
    for name in child_spans:
        assert by_name[name] == [child_pid], (name, by_name[name])  # once, by the child

    worker_ran, child_exported, child_dropped = map(
        int, (tmp_path / "exported.txt.child").read_text().split()
    )
    assert worker_ran == 1, "the child's worker did not export a full batch on its own"
    assert child_exported == len(child_spans)
    assert child_dropped == 0


# -- memory of a backlog ----------------------------------------------------------------------


def _queue_behind_a_closed_exporter(tracer: Tracer, n: int) -> None:
    """``n`` spans as an instrumented request makes them: 4 attributes each, one open parent."""
    with tracer.start_as_current_span("parent", end_on_exit=False):
        for i in range(n):
            with tracer.start_as_current_span("child") as span:
                span.set_attribute("http.request.method", "GET")
                span.set_attribute("http.response.status_code", 200 + i % 3)
                span.set_attribute("server.address", "example.com")
                span.set_attribute("duration", 1.5)


def test_a_backlog_costs_the_same_per_span_at_any_size(make_pipeline: MakePipeline) -> None:
    """What a queued span holds stays small and flat: a collector outage fills the queue."""
    import gc
    import tracemalloc

    p = make_pipeline(schedule_delay=HOUR, max_queue_size=40_000, max_export_batch_size=40_000)
    _queue_behind_a_closed_exporter(p.tracer, 2_500)  # past the default queue's worth
    per_span = []
    tracemalloc.start()
    try:
        for n in (3_000, 15_000):
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            _queue_behind_a_closed_exporter(p.tracer, n)
            gc.collect()
            per_span.append((tracemalloc.get_traced_memory()[0] - before) / n)
    finally:
        tracemalloc.stop()
    assert p.exporter.exported_count == 0  # all of them still queued
    # About 332 bytes on CPython 3.11 (460 with a dict per span and three more slots).
    assert max(per_span) < 400, per_span
    assert abs(per_span[0] - per_span[1]) < 20, per_span


def test_spans_queued_in_a_backlog_export_the_attributes_they_were_given(
    make_pipeline: MakePipeline,
) -> None:
    p = make_pipeline(schedule_delay=HOUR, max_queue_size=4_000, max_export_batch_size=4_000)
    _queue_behind_a_closed_exporter(p.tracer, 3_000)
    assert p.provider.force_flush(timeout=10)
    spans = [span for batch in p.exporter.batches for span in batch]
    assert len(spans) == 3_000  # the parent stays open
    for i, span in enumerate(spans):  # the first ones as they were, the later ones compacted
        assert dict(span.attributes) == {
            "http.request.method": "GET",
            "http.response.status_code": 200 + i % 3,
            "server.address": "example.com",
            "duration": 1.5,
        }
