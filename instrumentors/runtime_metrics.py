"""Runtime metrics: the process's CPU time, memory, threads and garbage collections (#18).

Observable instruments named as the semantic conventions name them, read from the standard
library at each collection: ``process.cpu.time`` (s, ``cpu.mode`` user/system, from
``resource.getrusage``, else ``os.times``), ``process.memory.usage`` (By, the resident set
from ``/proc/self/statm``: no other stdlib source gives the current one, so without ``/proc``
it is not reported rather than reported wrong), ``process.thread.count`` (the OS threads in
``/proc/self/task``, else Python's ``threading.active_count()``), and ``cpython.gc.collections``,
``cpython.gc.collected_objects``, ``cpython.gc.uncollectable_objects`` (by
``cpython.gc.generation``, from ``gc.get_stats()``). A callback that raises is the SDK's to
report, once, and to skip; the other metrics are still collected.

When: only while metrics export is on (``OTEL_METRICS_EXPORTER`` names an exporter), and not
during start-up. The metrics SDK costs imports and a thread, and start-up is what every process
launched pays, the one-second command included; so ``instrument()`` (run by the bootstrap: the
spec's module is ``telemetry_run``) only starts a daemon timer, and one export interval
(``OTEL_METRIC_EXPORT_INTERVAL``) later, at most ``START_DELAY`` (10 s), the timer builds the
launcher's MeterProvider (the lazy factory of ``telemetry_run._metrics``) and registers the
instruments. A process that ends sooner never imports the metrics SDK: a command or a script
that runs for a few seconds reports no runtime metrics, and with no collector running does not
spend its exit flushing them to nowhere (a lead's decision: the README's demo and every short
command would otherwise print an export failure); a service reports them from its first export
on (the periodic reader's interval starts when the provider is built), at most 10 s later than
it would from start-up. The first span end or request would not do: an application that records
nothing must still get them. Metrics the application asked for earlier built the provider
already; the timer then only adds the instruments. Measured (2 shared cores): ``instrument()``
takes ~45 us at start-up, the timer's build ~18 ms off the start-up path, a collection of these
metrics ~0.5 ms per export. With metrics export off it starts nothing, quietly
(``NotApplicable`` would print a line in every such process).

Fork: a forked worker (gunicorn, multiprocessing) reports its own process. The timer does
not survive a fork, so a child forked before it fired starts its own; a child forked after
inherits the registered instruments, whose streams the SDK restarts. CPU time is the child's
own already (the OS resets it at fork); the garbage collector's counters are copied with the
parent's memory, so the child reports them from the fork on, never the parent's twice.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from telemetry_run.instrumentors.base import Instrumentor, guard

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.metrics.instruments import Callback, CallbackOptions, Observation
    from telemetry_run.sdk.metrics.provider import MeterProvider
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["METER_NAME", "START_DELAY", "RuntimeMetricsInstrumentor"]

#: The most seconds after start-up before the instruments are registered (the export interval
#: when shorter; see the module's docstring).
START_DELAY: Final = 10.0

#: The instrumentation scope of the runtime metrics.
METER_NAME: Final = "telemetry_run.instrumentors.runtime_metrics"

_USER: Final = {"cpu.mode": "user"}
_SYSTEM: Final = {"cpu.mode": "system"}
_GC_STATS: Final = ("collections", "collected", "uncollectable")


def _cpu_times() -> tuple[float, float]:
    """User and system CPU seconds of this process (its threads, not its children)."""
    try:
        import resource
    except ImportError:  # not on Windows: os.times has a coarser clock, but is everywhere
        times = os.times()
        return times.user, times.system
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _resident_bytes() -> int | None:
    """The resident set size in bytes, or None where ``/proc`` does not say."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            resident_pages = int(statm.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _thread_count() -> int:
    """The process's OS threads; Python's own threads where ``/proc`` does not list them."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _gc_counts() -> list[tuple[int, int, int]]:
    """Per generation: collections, objects collected, objects uncollectable."""
    import gc

    return [
        (stats["collections"], stats["collected"], stats["uncollectable"])
        for stats in gc.get_stats()
    ]


class RuntimeMetricsInstrumentor(Instrumentor):
    """Registers the runtime metrics' observable instruments shortly after start-up."""

    #: Seconds from ``instrument()`` (or a fork) to the instruments' registration; None: the
    #: export interval, at most ``START_DELAY``.
    start_delay: float | None = None

    def __init__(self) -> None:
        super().__init__()
        self._timer: threading.Timer | None = None
        #: Whether ``OTEL_METRICS_EXPORTER`` names an exporter (otherwise nothing is started).
        self.metrics_on = False
        self._registered = False
        self._lock = threading.Lock()
        # The garbage collector's counts when this process was forked (zeros in the first).
        self._gc_base: list[tuple[int, int, int]] = []

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        self.metrics_on = any(name != "none" for name in config.get("OTEL_METRICS_EXPORTER", ()))
        if not self.metrics_on:
            return  # quietly: see the module's docstring
        from telemetry_run.sdk import forking  # loaded with the trace SDK already

        if self.start_delay is None:
            self.start_delay = min(START_DELAY, float(config["OTEL_METRIC_EXPORT_INTERVAL"]))
        forking.register(self._after_fork_in_child)
        self._start_timer()

    def _uninstrument(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
        # Instruments cannot be removed from a provider: their callbacks now observe nothing.

    def _start_timer(self) -> None:
        delay = START_DELAY if self.start_delay is None else self.start_delay
        timer = threading.Timer(delay, self._register_with_the_launchers_provider)
        timer.daemon = True  # never keeps a process alive
        timer.name = "telemetry-run-runtime-metrics"
        self._timer = timer
        # The interpreter is finalizing: no thread can start, and there is nothing to report.
        try:
            timer.start()
        except RuntimeError:
            self._timer = None

    @guard("runtime metrics: registering the instruments")
    def _register_with_the_launchers_provider(self) -> None:
        # Not once the interpreter is exiting: the exit hook has flushed what there was.
        if not self.active or sys.is_finalizing():
            return
        from telemetry_run.sdk.metrics.global_provider import get_meter_provider

        self.register(get_meter_provider())

    def register(self, meter_provider: MeterProvider) -> bool:
        """Create the observable instruments on ``meter_provider``; False when they already
        were (once per instrumentor)."""
        with self._lock:
            if self._registered:
                return False
            self._registered = True
        from telemetry_run._version import __version__

        meter = meter_provider.get_meter(METER_NAME, __version__)
        meter.create_observable_counter(
            "process.cpu.time", [self._cpu_time], "s", "Total CPU seconds broken down by mode."
        )
        meter.create_observable_up_down_counter(
            "process.memory.usage",
            [self._memory_usage],
            "By",
            "The amount of physical memory in use.",
        )
        meter.create_observable_up_down_counter(
            "process.thread.count", [self._thread_count], "{thread}", "Process threads count."
        )
        meter.create_observable_counter(
            "cpython.gc.collections",
            [self._gc(0)],
            "{collection}",
            "The number of times a generation was collected since the process started.",
        )
        meter.create_observable_counter(
            "cpython.gc.collected_objects",
            [self._gc(1)],
            "{object}",
            "The total number of objects collected inside a generation since the process started.",
        )
        meter.create_observable_counter(
            "cpython.gc.uncollectable_objects",
            [self._gc(2)],
            "{object}",
            "The total number of objects found uncollectable inside a generation since the "
            "process started.",
        )
        return True

    # -- the callbacks: run by the SDK at each collection ------------------------------------

    def _cpu_time(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.active:
            return ()
        from telemetry_run.sdk.metrics.instruments import Observation

        user, system = _cpu_times()
        return (Observation(user, _USER), Observation(system, _SYSTEM))

    def _memory_usage(self, options: CallbackOptions) -> Iterable[Observation]:
        resident = _resident_bytes() if self.active else None
        if resident is None:
            return ()
        from telemetry_run.sdk.metrics.instruments import Observation

        return (Observation(resident),)

    def _thread_count(self, options: CallbackOptions) -> Iterable[Observation]:
        if not self.active:
            return ()
        from telemetry_run.sdk.metrics.instruments import Observation

        return (Observation(_thread_count()),)

    def _gc(self, field: int) -> Callback:
        """The callback of one of ``gc.get_stats()``'s counts, since this process began."""

        def observe(options: CallbackOptions) -> Iterable[Observation]:
            if not self.active:
                return ()
            from telemetry_run.sdk.metrics.instruments import Observation

            base = self._gc_base
            return [
                Observation(
                    counts[field] - (base[generation][field] if generation < len(base) else 0),
                    {"cpython.gc.generation": generation},
                )
                for generation, counts in enumerate(_gc_counts())
            ]

        observe.__qualname__ = f"RuntimeMetricsInstrumentor.gc_{_GC_STATS[field]}"
        return observe

    # -- fork -------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """The child's own figures: its own timer if the parent's had not fired, and the
        garbage collector's counts from now on (no logging, no waiting: see ``forking``)."""
        self._lock = threading.Lock()
        if not self.active:
            return
        if self._registered:
            self._gc_base = _gc_counts()
        else:
            self._start_timer()
