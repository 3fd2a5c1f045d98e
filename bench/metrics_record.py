"""Recording a measurement: Counter.add and Histogram.record, ours vs opentelemetry-sdk.

Both SDKs run in this one process, each with a manual (in-memory) reader, the default
(trace-based) exemplar filter and no span current, recording with the same 3-attribute dict
over and over (the common case: the same route, method and status on every request). Rows:
nanoseconds per call on one thread, and per call with 4 threads recording at once (total
wall time over total calls: the GIL serialises them, so this shows what contention adds), then
memory per metric stream at 2,000 attribute sets (tracemalloc, the attribute dicts themselves
excluded). Rounds alternate the order of the contenders; the figure is the median of the
rounds. Ratios below 1.00x mean ours takes less.

    python bench/metrics_record.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

ATTRIBUTES = {"http.request.method": "GET", "http.route": "/users/{id}", "status": 200}
STREAMS = 2000


def _ours() -> tuple[Any, Any]:
    from telemetry_run.sdk import Resource
    from telemetry_run.sdk.metrics import InMemoryMetricReader, MeterProvider

    provider = MeterProvider([InMemoryMetricReader()], resource=Resource({}))
    meter = provider.get_meter("bench")
    return meter.create_counter("requests"), meter.create_histogram("duration", "s")


def _otel() -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    provider = MeterProvider([InMemoryMetricReader()], resource=Resource({}))
    meter = provider.get_meter("bench")
    return meter.create_counter("requests"), meter.create_histogram("duration", "s")


CONTENDERS: dict[str, Callable[[], tuple[Any, Any]]] = {"ours": _ours, "otel": _otel}


def _per_call_ns(call: Callable[[float, Any], None], calls: int, threads: int) -> float:
    attributes = dict(ATTRIBUTES)

    def work() -> None:
        for _ in range(calls):
            call(0.25, attributes)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    gc.collect()
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - started) * 1e9 / (calls * threads)


def _bytes_per_stream(make: Callable[[], tuple[Any, Any]]) -> float:
    counter, _ = make()
    # One short of the limit: the 2,000th attribute set would be the overflow series.
    attribute_sets = [{**ATTRIBUTES, "user": n} for n in range(STREAMS - 1)]
    counter.add(1, attribute_sets[0])  # the first stream's fixed costs are not per stream
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for attributes in attribute_sets[1:]:
        counter.add(1, attributes)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / (len(attribute_sets) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    args = parser.parse_args()
    calls, rounds = (20_000, 3) if args.quick else (200_000, 7)
    instruments = {name: make() for name, make in CONTENDERS.items()}
    rows: dict[str, dict[str, list[float]]] = {}
    order = list(CONTENDERS)
    for round_number in range(rounds):
        for name in order if round_number % 2 == 0 else reversed(order):
            counter, histogram = instruments[name]
            for label, call in (
                ("Counter.add", counter.add),
                ("Histogram.record", histogram.record),
            ):
                for threads in (1, 4):
                    row = rows.setdefault(f"{label}, {threads} thread(s)", {})
                    row.setdefault(name, []).append(_per_call_ns(call, calls // threads, threads))
    print(f"{calls} calls per row per round, {rounds} rounds, median ns per call")
    print(f"{'':34} {'ours':>9} {'otel':>9} {'ratio':>7}")
    for label, figures in rows.items():
        ours, otel = statistics.median(figures["ours"]), statistics.median(figures["otel"])
        print(f"{label:34} {ours:9.0f} {otel:9.0f} {ours / otel:6.2f}x")
    memory = {name: _bytes_per_stream(make) for name, make in CONTENDERS.items()}
    print(
        f"{'bytes per stream at 2,000 streams':34} {memory['ours']:9.0f} {memory['otel']:9.0f} "
        f"{memory['ours'] / memory['otel']:6.2f}x"
    )


if __name__ == "__main__":
    main()
