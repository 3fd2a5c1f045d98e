"""Console exporter cost: our waterfall and flat forms vs opentelemetry-sdk's console exporter.

One trace of 495 spans (a SERVER root, 19 INTERNAL children, 25 CLIENT database spans under
each), exported in one call into an in-memory stream, as the batch processor's thread does at
the end of a request. Microseconds per span, the median of the rounds (each round a fresh
exporter, so the waterfall's per-trace holding and drawing are in every figure). This runs on
the exporter thread, not on the application's; it says how much a busy service printing its
traces pays, and that the waterfall is not the slow part of a demo.

    python bench/console_export.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import versions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.unit.sdk.waterfall_traces


def _ours() -> Sequence[Any]:
    from telemetry_run.sdk.trace.api import SpanKind
    from tests.unit.sdk.waterfall_traces import TraceBuilder, remote

    with TraceBuilder("catalog") as b:
        root = b.span("GET /catalog", 0, 1000, remote(), SpanKind.SERVER, {"http.route": "/c"})
        for page in range(19):
            parent = b.span(f"render page {page}", page * 50, page * 50 + 48, root)
            for item in range(25):
                start = page * 50 + item * 1.9
                b.span(
                    f"SELECT {page}.{item}",
                    start,
                    start + 1.5,
                    parent,
                    SpanKind.CLIENT,
                    {"db.operation.name": "SELECT"},
                )
    return b.spans()


def _theirs() -> Sequence[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    with tracer.start_as_current_span("GET /catalog", kind=SpanKind.SERVER):
        for page in range(19):
            with tracer.start_as_current_span(f"render page {page}"):
                for item in range(25):
                    tracer.start_span(
                        f"SELECT {page}.{item}",
                        kind=SpanKind.CLIENT,
                        attributes={"db.operation.name": "SELECT"},
                    ).end()
    return memory.get_finished_spans()


def _round(
    make: Callable[[io.StringIO], Callable[[Sequence[Any]], object]], spans: Sequence[Any]
) -> float:
    out = io.StringIO()
    export = make(out)
    started = time.perf_counter()
    export(spans)
    took = time.perf_counter() - started
    assert out.getvalue(), "the exporter printed nothing"
    return took / len(spans) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 30")
    rounds = 5 if parser.parse_args().quick else 30
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter as TheirConsole

    from telemetry_run.sdk import ConsoleSpanExporter

    ours, theirs = _ours(), _theirs()
    contenders: dict[
        str, tuple[Callable[[io.StringIO], Callable[[Sequence[Any]], object]], Sequence[Any]]
    ] = {
        "telemetry-run waterfall": (
            lambda out: lambda s: ConsoleSpanExporter(out, waterfall=True).export(s, deadline=1e12),
            ours,
        ),
        "telemetry-run spans (flat)": (
            lambda out: lambda s: ConsoleSpanExporter(out).export(s, deadline=1e12),
            ours,
        ),
        "opentelemetry-sdk console": (lambda out: TheirConsole(out=out).export, theirs),
    }
    print(f"{versions('opentelemetry-sdk')}; {len(ours)} spans per trace, {rounds} rounds")
    medians = {}
    for name, (make, spans) in contenders.items():
        _round(make, spans)  # warm-up: the first waterfall imports its module
        medians[name] = statistics.median(_round(make, spans) for _ in range(rounds))
    base = medians["opentelemetry-sdk console"]
    for name, median in medians.items():
        print(f"  {name:<28} {median:8.1f} µs/span  {median / base:5.2f}x")


if __name__ == "__main__":
    main()
