"""BatchSpanProcessor: a bounded queue between the application and the exporter.

``on_end`` is a length check and a ``deque.append`` on the application's thread: it never
blocks and never raises. A span that queues behind 2048 others (a backlog in a queue made larger
than the default) has its attributes compacted first: about 100 bytes less a span. A full queue
drops the new span and counts it. One daemon worker exports when a batch fills or the schedule
delay passes; every export gets a deadline (the export timeout, cut to the caller's flush or
shutdown deadline). An exporter that hangs past its deadline stalls only the worker: flush and
shutdown return at their deadline, and the spans they could not deliver are counted, never lost
silently.

After an outage, the spans made once the collector is back come first in what matters: they
arrive within seconds, while the outage's backlog goes beside them or is dropped and counted.
Four parts make it so:

- While exports fail, a full queue keeps the *newest* spans: each new span pushes the oldest one
  out (counted ``queue_full``). Otherwise the queue, full of the outage's spans, would refuse
  every span made after the recovery until the backlog is through, and the spans an operator
  looks at first (what is happening now) would be the ones missing. While exports succeed, a
  full queue drops the new span, as the specification says (that is overload, not an outage).
- A retryable failure puts the batch back at the head of the queue (room permitting; the rest
  is counted ``export_failed``), and nothing more is sent until the next probe: one batch, after
  a wait that starts at the schedule delay and doubles with each failure up to
  ``max(schedule_delay, MAX_PROBE_INTERVAL)`` (with jitter, so a fleet does not probe in step).
- The OTLP exporters spend their retries (within ``OTEL_EXPORTER_OTLP_TIMEOUT``) on the first
  failing export only; while the outage lasts, each export is a single attempt
  (``exporters/otlp/_retry.py``, ``Outage``). The worker is thus never asleep in a backoff when
  the collector comes back, and a flush or a shutdown during an outage tries each batch once
  instead of waiting through retries.
- The first success resets both backoffs, and the same export cycle goes on with the whole
  queue, oldest first: at most ``max_queue_size`` spans, the newest ones.

Recovery is noticed within one probe interval (1 s at most unless the schedule delay is longer)
plus one attempt; memory stays bounded by ``max_queue_size`` (plus the batch in flight)
throughout. The price of keeping the newest: an outage longer than the queue loses about as
many spans as before, but the oldest ones, and the spans made while the recovery is being
noticed push out backlog instead of being refused.

Fork-safe: the child of ``os.fork`` gets an empty queue, fresh locks and its own worker, so no
span of the parent is exported twice and no lock held by the parent's threads is inherited. A
fork that skips Python's hooks (uWSGI forks in C) is repaired by uWSGI's post-fork hook; failing
that, by this processor itself: at the child's first span (the queue's empty-to-non-empty moment,
one ``getpid`` per export cycle, not per span) and before any flush or shutdown, which would
otherwise wait for a worker thread the fork did not copy.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk import forking
from telemetry_run.sdk._native import speedups
from telemetry_run.sdk.context import SUPPRESS_INSTRUMENTATION_KEY, attach, set_value
from telemetry_run.sdk.diagnostics import Diagnostics, get_diagnostics
from telemetry_run.sdk.exporters import ExportResult, SpanExporter
from telemetry_run.sdk.processors import SpanProcessor
from telemetry_run.sdk.processors.simple import (
    call_export,
    count_export_result,
    warn_export_failed,
)
from telemetry_run.sdk.trace.provider import _native_starter
from telemetry_run.sdk.trace.span import compact_attributes

if TYPE_CHECKING:
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = ["MAX_PROBE_INTERVAL", "BatchSpanProcessor"]

_monotonic = time.monotonic
_getpid = os.getpid

#: Seconds: the longest wait between two probes of a collector that keeps failing, unless the
#: schedule delay is longer. A recovery is noticed this soon; a fleet sends a dead collector at
#: most one batch per process per interval.
MAX_PROBE_INTERVAL = 1.0

# A span queued behind this many (the default queue size) is part of a backlog only a larger
# queue holds (an outage, OTEL_BSP_MAX_QUEUE_SIZE raised for it): its attributes are compacted
# (trace/span.py), about 100 bytes less a span. A queue of the default size never pays the
# compaction (a few hundred ns on the application's thread; a tight loop of spans keeps that
# queue full, since the worker only runs when it gets the GIL), and holds 2048 dicts at most.
_COMPACT_BEYOND = 2048


class _Batch:
    """One batch handed to the exporter; settled exactly once, by the worker or by shutdown."""

    __slots__ = ("count", "settled")

    def __init__(self, count: int):
        self.count = count
        self.settled = False


class _FlushRequest:
    __slots__ = ("deadline", "done")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.done = threading.Event()


class BatchSpanProcessor(SpanProcessor):
    """Queues ended spans and exports them in batches from one background thread.

    Times are in seconds; ``export_timeout=0`` means no limit, as the specification says for
    ``OTEL_BSP_EXPORT_TIMEOUT``.
    """

    #: The worker's name (the logs processor reuses this class under its own name).
    _worker_name = "telemetry-run BatchSpanProcessor"

    def __init__(
        self,
        exporter: SpanExporter,
        max_queue_size: int = 2048,
        schedule_delay: float = 5.0,
        max_export_batch_size: int = 512,
        export_timeout: float = 30.0,
        *,
        diagnostics: Diagnostics | None = None,
    ):
        if max_queue_size <= 0:
            raise ValueError(f"max_queue_size must be > 0, got {max_queue_size}")
        if max_export_batch_size <= 0:
            raise ValueError(f"max_export_batch_size must be > 0, got {max_export_batch_size}")
        if schedule_delay < 0 or export_timeout < 0:
            raise ValueError("schedule_delay and export_timeout must be >= 0")
        self._exporter = exporter
        self._max_queue_size = max_queue_size
        self._batch_size = min(max_export_batch_size, max_queue_size)
        self._schedule_delay = schedule_delay
        self._export_timeout = export_timeout if export_timeout > 0 else float("inf")
        self._diagnostics = diagnostics or get_diagnostics()
        self._count_queued = self._diagnostics.spans_queued.incr
        self._shutdown = False
        self._init_state()
        forking.register(functools.partial(_reinit_after_fork, weakref.ref(self)))

    def _init_state(self) -> None:
        """Everything a forked child must not share with its parent."""
        self._queue: collections.deque[ReadableSpan] = collections.deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # guards taking a batch, settling it, flush requests
        self._flush_requests: list[_FlushRequest] = []
        self._inflight: _Batch | None = None
        self._stopping = False
        self._abandoned = False
        # The last export failed: the queue waits for the next timed export instead of being
        # drained into batches that would fail too (a collector that is down costs one batch
        # per schedule delay, and what waits in the queue is delivered when it is back).
        self._failing = False
        self._failures = 0  # retryable failures in a row: the probe backoff (reset by a success)
        self._next_probe = 0.0
        self._exporter_shut = False
        self._worker = threading.Thread(target=self._run, name=self._worker_name, daemon=True)
        # RuntimeError: the interpreter is finalizing (Python 3.12+ starts no thread in atexit);
        # only a forked child first repaired by its exit flush gets there: shutdown exports.
        with contextlib.suppress(RuntimeError):
            self._worker.start()

    # -- application thread ----------------------------------------------------------------

    def on_end(self, span: ReadableSpan) -> None:
        if not span.trace_flags & 1:
            return  # record-only spans are not exported
        queue = self._queue
        # At the rare moments (the first span after an export, a full queue) check that this
        # is still the process the worker thread runs in: a fork that skipped Python's hooks
        # (uWSGI's C fork without its post-fork hook) is repaired here, not left silent.
        if (not queue or len(queue) >= self._max_queue_size) and _getpid() != forking.repaired_in():
            forking.after_fork_in_child()  # before counting: the repair restarts the counters
            queue = self._queue
        self._count_queued()
        if self._shutdown:
            self._diagnostics.drop("shutdown")
            return
        if len(queue) >= self._max_queue_size:
            if self._failing:  # an outage: the oldest span makes room (module docstring)
                queue.append(span)  # first: the worker never finds fewer than it counted
                with contextlib.suppress(IndexError):  # the worker took them all meanwhile
                    queue.popleft()
                    self._diagnostics.drop("queue_full")
                return
            self._diagnostics.drop("queue_full")
            return
        if len(queue) >= _COMPACT_BEYOND:  # it waits for an export at least: hold it compact
            compact_attributes(span)
        queue.append(span)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def force_flush(self, *, deadline: float) -> bool:
        """Export every span queued before this call, unless ``deadline`` passes first."""
        if self._shutdown:
            return True
        forking.after_fork_in_child()  # no worker to wait for in an unrepaired forked child
        request = _FlushRequest(deadline)
        with self._lock:
            self._flush_requests.append(request)
        self._wake.set()
        flushed = request.done.wait(max(0.0, deadline - _monotonic()))
        if not flushed:
            with self._lock:
                if request in self._flush_requests:
                    self._flush_requests.remove(request)
        try:
            return self._exporter.force_flush(deadline=deadline) and flushed
        except Exception as exc:  # noqa: BLE001
            self._diagnostics.internal_error(f"{type(self._exporter).__name__}.force_flush", exc)
            return False

    def shutdown(self, *, deadline: float) -> None:
        """Drain the queue before ``deadline``, stop the worker, shut the exporter down.

        Whatever could not be delivered by then is counted: queued spans as ``shutdown``,
        the batch stuck in the exporter as ``export_failed``.
        """
        forking.after_fork_in_child()  # never join a worker thread the fork did not copy
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            self._stopping = True
            self._flush_requests.append(_FlushRequest(deadline))
        self._wake.set()
        if self._worker.ident is None:  # no worker could start (see _init_state)
            self._export_queued(len(self._queue), deadline)
        else:
            self._worker.join(max(0.0, deadline - _monotonic()))
        stuck = self._worker.is_alive()
        self._abandon()
        if not stuck:
            if not self._exporter_shut:  # the worker shuts it down as its last act
                self._shutdown_exporter(deadline)
            return
        # The worker is stuck in export: the exporter's shutdown should interrupt it (retry
        # backoff, an open call), so it gets a moment on a thread of its own. At interpreter
        # exit no thread can start any more; the process is ending, the call is skipped.
        exporter_deadline = _monotonic() + 0.05
        with contextlib.suppress(RuntimeError):
            _call_bounded(
                functools.partial(self._shutdown_exporter, exporter_deadline), exporter_deadline
            )

    # -- worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        # The exporter's own traffic (HTTP, gRPC) must never be traced by instrumentors.
        attach(set_value(SUPPRESS_INSTRUMENTATION_KEY, True))
        next_timed_export = _monotonic() + self._schedule_delay
        while True:
            timed_out = not self._wake.wait(max(0.0, next_timed_export - _monotonic()))
            self._wake.clear()
            with self._lock:
                requests, self._flush_requests = self._flush_requests, []
                stopping = self._stopping
            try:
                if timed_out or requests or stopping:
                    deadline = min((r.deadline for r in requests), default=float("inf"))
                    self._export_queued(len(self._queue), deadline)
                    next_timed_export = _monotonic() + self._schedule_delay
                    if self._failing:
                        next_timed_export = max(next_timed_export, self._next_probe)
                else:
                    # A flush or shutdown asked meanwhile goes first, so that the batches
                    # exported after the call carry its deadline (not the bare export timeout).
                    while (
                        len(self._queue) >= self._batch_size
                        and not self._abandoned
                        and not self._flush_requests
                        and not self._failing
                    ):
                        self._export_queued(self._batch_size, float("inf"))
            except Exception as exc:  # noqa: BLE001  # the worker must survive its own bugs
                self._diagnostics.internal_error("BatchSpanProcessor worker", exc)
            if stopping and not self._abandoned:
                # Shutting the exporter down here, on the thread that already exists: at
                # interpreter exit (atexit) Python 3.12+ refuses to start a new one.
                self._shutdown_exporter(min((r.deadline for r in requests), default=_monotonic()))
            for request in requests:
                request.done.set()
            if stopping or self._abandoned:
                return

    def _export_queued(self, count: int, deadline: float) -> None:
        """Export ``count`` spans from the head of the queue, a batch at a time."""
        while count > 0 and not self._abandoned and _monotonic() < deadline:
            with self._lock:
                queue = self._queue
                n = min(count, self._batch_size, len(queue))
                if n == 0:
                    return
                spans = _take(queue, n)
                n = len(spans)
                if n == 0:
                    return
                batch = self._inflight = _Batch(n)
            count -= n
            export_deadline = min(_monotonic() + self._export_timeout, deadline)
            result = call_export(self._exporter, spans, export_deadline, self._diagnostics)
            timed = deadline == float("inf")  # not a flush, not the shutdown
            # The collector is down or slow: the batch goes back to the head of the queue (as
            # much of it as fits) for the next timed export, so an outage shorter than the
            # queue's capacity loses nothing; only what does not fit is dropped. Settling,
            # requeueing and counting happen under the lock that shutdown's _abandon takes:
            # the exit line it prints then never misses a batch that was just settled here.
            requeue = not result.success and result.retryable and timed
            with self._lock:
                self._inflight = None
                if batch.settled:
                    continue  # shutdown gave up on this batch and counted it as failed
                batch.settled = True
                if requeue and not self._abandoned:
                    n = self._requeue_locked(spans)
                    if n:
                        result = ExportResult(False, error=result.error)
                        count_export_result(self._diagnostics, n, result)
                else:
                    requeue = False
                    count_export_result(self._diagnostics, n, result)
            self._failing = not result.success
            if result.success:
                self._failures = 0
            elif result.retryable:
                self._schedule_probe()
            if n:
                warn_export_failed(self._diagnostics, self._exporter, n, result)
            if requeue:
                return  # the rest waits in the queue for the next timed export
            if self._failing and timed:
                return  # the rest waits in the queue for the next timed export

    def _schedule_probe(self) -> None:
        """One more failure in a row: the next export waits longer (module docstring)."""
        import random

        ceiling = max(self._schedule_delay, MAX_PROBE_INTERVAL)
        wait = min(ceiling, max(self._schedule_delay, 0.01) * 2 ** min(self._failures, 32))
        self._failures += 1
        self._next_probe = _monotonic() + wait * (0.5 + random.random() / 2)

    def _requeue_locked(self, spans: list[ReadableSpan]) -> int:
        """Put ``spans`` back at the head of the queue, room permitting; how many did not fit.

        The caller holds ``self._lock``."""
        room = max(0, self._max_queue_size - len(self._queue))
        kept = spans[:room]
        self._queue.extendleft(reversed(kept))
        self._diagnostics.spans_retried.add(len(kept))
        return len(spans) - len(kept)

    # -- shutdown helpers ------------------------------------------------------------------

    def _abandon(self) -> None:
        """Shutdown's deadline passed with the worker still busy: count what is left."""
        with self._lock:
            self._abandoned = True
            stuck = self._inflight
            if stuck is not None and not stuck.settled:
                stuck.settled = True
                failed = stuck.count
            else:
                failed = 0
            left = len(self._queue)
            self._queue.clear()
        if failed:
            self._diagnostics.drop("export_failed", failed)
        if left:
            self._diagnostics.drop("shutdown", left)

    def _shutdown_exporter(self, deadline: float) -> None:
        self._exporter_shut = True
        try:
            self._exporter.shutdown(deadline=deadline)
        except Exception as exc:  # noqa: BLE001
            self._diagnostics.internal_error(f"{type(self._exporter).__name__}.shutdown", exc)

    # -- fork ------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """Start over in the child: the parent's queue stays the parent's to export."""
        if self._shutdown:
            return
        self._init_state()

    @property
    def queue_length(self) -> int:
        return len(self._queue)


def _reinit_after_fork(ref: weakref.ref[BatchSpanProcessor]) -> None:
    processor = ref()
    if processor is not None:
        processor._after_fork_in_child()


def _take(queue: collections.deque[ReadableSpan], n: int) -> list[ReadableSpan]:
    """Up to ``n`` spans from the head of ``queue``.

    Fewer only when ``on_end`` pushed out an oldest span meanwhile (a full queue during an
    outage); it does so without the lock, so the queue may be shorter than the count read.
    """
    spans: list[ReadableSpan] = []
    popleft, append = queue.popleft, spans.append
    with contextlib.suppress(IndexError):
        for _ in range(n):
            append(popleft())
    return spans


def _call_bounded(fn: Callable[[], None], deadline: float) -> None:
    """Run ``fn`` on a daemon thread and wait for it until ``deadline`` at most."""
    thread = threading.Thread(target=fn, name="telemetry-run exporter shutdown", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - _monotonic()))


#: ``BatchSpanProcessor.on_end`` as written above: the twin of ``sdk/_speedups.c``'s
#: ``batch_on_end``, which replaces it on the class where the native module is built. The
#: native one queues a sampled span of this SDK's into a queue neither empty nor full nor at
#: the compaction size, of a processor not shut down; it hands anything else to this one (the
#: processor's tests run both).
_python_on_end: Final = BatchSpanProcessor.on_end
_native_on_end: Any = None
if _native_starter is not None and speedups is not None:
    _native_on_end = speedups.batch_on_end_for(
        (BatchSpanProcessor, _python_on_end, _COMPACT_BEYOND)
    )
    BatchSpanProcessor.on_end = _native_on_end  # type: ignore[method-assign]
