"""Logs export cost on the application's thread: one exported ``logging`` record, us vs
opentelemetry-sdk's ``LoggingHandler`` + ``BatchLogRecordProcessor``.

Each side ships ``log.warning("order %d paid", n)`` made inside one of its own spans (so the
record carries trace and span ids) to an exporter that discards the batch: what is measured is
the capture and the hand-off to the batch queue, not a transport (bench/otlp_export.py measures
encoding and sending). The queues are large enough that nothing is dropped, and each side's
worker drains its queue meanwhile, as in a service. The root logger has a ``NullHandler`` in
every round, so the figure is what exporting adds to a record the application logs anyway:
microseconds per record, minus the same loop with export off, the median of interleaved rounds.
"emit" is the loop on the application's thread; "emit + flush" adds the time until the worker
has exported everything (the whole cost of a record, on a machine with a spare core or not).

    python bench/logs_export.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import versions

Setup = Callable[[], tuple[Callable[[int], None], Callable[[], None], Callable[[], None]]]


def _ours(records: int) -> Setup:
    def setup() -> tuple[Callable[[int], None], Callable[[], None], Callable[[], None]]:
        from telemetry_run.sdk import Resource
        from telemetry_run.sdk.exporters import SUCCESS
        from telemetry_run.sdk.logs import bridge
        from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor
        from telemetry_run.sdk.logs.provider import LoggerProvider
        from telemetry_run.sdk.trace.provider import TracerProvider

        class Discard:
            def export(self, batch: Any, *, deadline: float) -> Any:
                return SUCCESS

            def force_flush(self, *, deadline: float) -> bool:
                return True

            def shutdown(self, *, deadline: float) -> None:
                pass

        logs = LoggerProvider(Resource({"service.name": "bench"}))
        logs.add_log_record_processor(
            BatchLogRecordProcessor(
                Discard(), max_queue_size=records + 1, diagnostics=logs.diagnostics
            )
        )
        bridge.attach(logging, logs)
        tracer = TracerProvider(shutdown_on_exit=False).get_tracer("bench")
        log = logging.getLogger("bench.orders")

        def run(n: int) -> None:
            with tracer.start_as_current_span("request"):
                for i in range(n):
                    log.warning("order %d paid", i)

        def flush() -> None:
            logs.force_flush(60.0)

        def teardown() -> None:
            bridge.detach(logging)
            logs.shutdown(10.0)
            counts = logs.diagnostics.snapshot()
            assert counts["dropped"] == 0, counts
            assert counts["exported"] == counts["produced"], counts

        return run, flush, teardown

    return setup


def _theirs(records: int) -> Setup:
    def setup() -> tuple[Callable[[int], None], Callable[[], None], Callable[[], None]]:
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import (
            BatchLogRecordProcessor,
            LogRecordExporter,
            LogRecordExportResult,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        class Discard(LogRecordExporter):
            def export(self, batch: Any) -> Any:
                return LogRecordExportResult.SUCCESS

            def force_flush(self, timeout_millis: int = 30000) -> bool:
                return True

            def shutdown(self) -> None:
                pass

        provider = LoggerProvider(resource=Resource({"service.name": "bench"}))
        provider.add_log_record_processor(
            BatchLogRecordProcessor(Discard(), max_queue_size=records + 1)
        )
        handler = LoggingHandler(logger_provider=provider)
        logging.getLogger().addHandler(handler)
        tracer = TracerProvider().get_tracer("bench")
        log = logging.getLogger("bench.orders")

        def run(n: int) -> None:
            with tracer.start_as_current_span("request"):
                for i in range(n):
                    log.warning("order %d paid", i)

        def flush() -> None:
            provider.force_flush(60_000)

        def teardown() -> None:
            logging.getLogger().removeHandler(handler)
            provider.shutdown()

        return run, flush, teardown

    return setup


def _baseline() -> tuple[Callable[[int], None], Callable[[], None], Callable[[], None]]:
    log = logging.getLogger("bench.orders")

    def run(n: int) -> None:
        for i in range(n):
            log.warning("order %d paid", i)

    return run, lambda: None, lambda: None


def _round(setup: Setup, records: int) -> tuple[float, float]:
    """(emit, emit + flush) in µs per record."""
    run, flush, teardown = setup()
    try:
        run(100)  # warm-up: first-use imports, caches
        flush()
        started = time.perf_counter()
        run(records)
        emitted = time.perf_counter()
        flush()
        flushed = time.perf_counter()
    finally:
        teardown()
    return (emitted - started) / records * 1e6, (flushed - started) / records * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5000 records")
    quick = parser.parse_args().quick
    rounds, records = (3, 5000) if quick else (9, 20000)
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger().setLevel(logging.WARNING)
    contenders: dict[str, Setup] = {
        "export off (baseline)": _baseline,
        "telemetry-run": _ours(records),
        "opentelemetry-sdk": _theirs(records),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(rounds):  # interleaved: a noisy neighbour hits every contender alike
        for name, setup in contenders.items():
            results[name].append(_round(setup, records))
    print(f"{versions('opentelemetry-sdk')}; {records} records per round, {rounds} rounds")
    base_emit = statistics.median(r[0] for r in results["export off (baseline)"])
    base_all = statistics.median(r[1] for r in results["export off (baseline)"])
    print(f"  {'logging alone (NullHandler)':<22} {base_emit:7.2f} µs/record")
    added = {}
    for name in ("telemetry-run", "opentelemetry-sdk"):
        emit = statistics.median(r[0] for r in results[name]) - base_emit
        total = statistics.median(r[1] for r in results[name]) - base_all
        added[name] = (emit, total)
    peer_emit, peer_total = added["opentelemetry-sdk"]
    print(f"  {'added by export':<22} {'emit':>8} {'':>6}  {'emit + flush':>12}")
    for name, (emit, total) in added.items():
        print(
            f"  {name:<22} {emit:7.2f} µs {emit / peer_emit:5.2f}x  "
            f"{total:8.2f} µs {total / peer_total:5.2f}x"
        )


if __name__ == "__main__":
    main()
