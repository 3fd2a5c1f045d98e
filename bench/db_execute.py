"""Cost per psycopg ``execute``: bare vs telemetry-run vs opentelemetry-instrumentation-psycopg.

A throwaway PostgreSQL (``initdb`` in a temporary folder, the one the tests use) on 127.0.0.1;
each contender runs in a worker process of its own, one after the other, for a few rounds:

  bare    psycopg (3) uninstrumented
  us      our PsycopgInstrumentor, spans into a batch processor whose exporter discards
  otel    opentelemetry-instrumentation-psycopg on opentelemetry-sdk, the same discarding setup

The statement is ``cursor.execute("SELECT 1")`` then ``fetchone()`` on one connection over
TCP. Before anything is timed each traced contender must show exactly one CLIENT span per
execute reached its exporter; one that does not is FAILED. The peer is in the ``bench`` extra;
another interpreter may be named instead: ``--peer-python /path/to/python`` or
``TELEMETRY_RUN_BENCH_PEER_PYTHON`` (opentelemetry-sdk, opentelemetry-instrumentation-psycopg
and psycopg installed there); without them the otel row says what is missing.

Figures are median microseconds of the client process's CPU time per execute (the server's
time and the wait for it are not ours to count, and on a loaded machine they are mostly
noise; the batch processor's thread is in the process, so its work counts). A traced
contender's worker alternates blocks without and with its instrumentation on one connection
(uninstrumented, then instrumented again), as ``redis_get.py`` does: ``added`` is the median of
those paired differences, which cancel the drift between processes and over time that a
difference of two workers' medians kept (it moved our row from 0.15x to 0.47x between runs).
``us/otel`` is our added time over theirs (below 1.00x we add less); the bare row is a worker
without any instrumentor, for scale.

    python bench/db_execute.py [--quick] [--peer-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import run_worker

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STATEMENT = "SELECT 1"


class _Discarding:
    """Counts the spans it is handed: kind, for the check."""

    def __init__(self) -> None:
        self.kinds: list[str] = []


def _setup_us(sink: _Discarding) -> Any:
    from telemetry_run.instrumentors import plugin
    from telemetry_run.instrumentors.psycopg import PsycopgInstrumentor
    from telemetry_run.sdk import BatchSpanProcessor, ExportResult, TracerProvider
    from telemetry_run.testing import config_for

    class DiscardingExporter:
        def export(self, spans: Any, *, deadline: float) -> Any:
            sink.kinds.extend(span.kind.name for span in spans)
            return ExportResult(True)

        def force_flush(self, *, deadline: float) -> bool:
            return True

        def shutdown(self, *, deadline: float) -> None:
            return None

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    instrumentor = PsycopgInstrumentor()
    config = config_for(plugin, {})
    return provider.force_flush, (
        lambda: instrumentor.instrument(provider, config),
        instrumentor.uninstrument,
    )


def _setup_otel(sink: _Discarding) -> Any:
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardingExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            sink.kinds.extend(span.kind.name for span in spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    instrumentor = PsycopgInstrumentor()
    return provider.force_flush, (
        lambda: instrumentor.instrument(tracer_provider=provider),
        instrumentor.uninstrument,
    )


def worker(contender: str, dsn: str, batches: int, size: int) -> dict[str, Any]:
    sink = _Discarding()
    setup = {"us": _setup_us, "otel": _setup_otel}.get(contender)
    toggles = None
    if setup is not None:
        try:
            flush, toggles = setup(sink)
        except ImportError as exc:
            return {"missing": str(exc)}
    import psycopg

    def run(n: int) -> float:
        """CPU microseconds per execute, on a connection opened for the block (an
        instrumentation wraps the connections opened while it is on, and only those)."""
        with psycopg.connect(dsn) as conn:
            cursor = conn.cursor()
            cursor.execute(STATEMENT)  # the connection's first round trip, not timed
            cursor.fetchone()
            start = time.process_time()
            for _ in range(n):
                cursor.execute(STATEMENT)
                cursor.fetchone()
            return (time.process_time() - start) / n * 1e6

    if toggles is None:
        run(size)  # warm up
        return {"median": statistics.median(run(size) for _ in range(batches))}
    instrument, uninstrument = toggles
    instrument()
    run(size)  # warm up
    flush()  # the check: one CLIENT span per execute reached the exporter
    sink.kinds.clear()
    run(100)
    flush()
    if sink.kinds != ["CLIENT"] * 101:  # with the connection's first execute
        return {"failed": f"{len(sink.kinds)} spans for 101 executes: {sink.kinds[:3]}"}
    bare, traced = [], []
    for _ in range(batches):
        uninstrument()
        bare.append(run(size))
        instrument()
        traced.append(run(size))
        flush()  # the export happens between batches, as the processor would
    sink.kinds.clear()
    uninstrument()
    run(10)
    flush()
    if sink.kinds:  # the bare blocks must be bare: no span once uninstrumented
        return {"failed": f"{len(sink.kinds)} spans with the instrumentation off"}
    return {
        "median": statistics.median(traced),
        "added": statistics.median(t - b for b, t in zip(bare, traced, strict=True)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--peer-python", default=os.environ.get("TELEMETRY_RUN_BENCH_PEER_PYTHON", sys.executable)
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches, size, rounds = (5, 200, 2) if args.quick else (15, 1000, 3)
    if args.worker:
        print(json.dumps(worker(args.worker, args.dsn, batches, size)))
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.postgres_server import installed, running_postgres

    if not installed():
        print("PostgreSQL is not installed (Debian: postgresql): nothing measured")
        return 1
    figures: dict[str, list[float]] = {"bare": [], "us": [], "otel": []}
    paired: dict[str, list[float]] = {"us": [], "otel": []}
    notes: dict[str, str] = {}
    with running_postgres() as server:
        for _ in range(rounds):
            for contender, values in figures.items():
                python = args.peer_python if contender == "otel" else sys.executable
                result = run_worker(
                    [python, __file__, "--worker", contender, "--dsn", server.dsn]
                    + (["--quick"] if args.quick else []),
                    os.environ,
                    600,
                )
                if "error" in result:
                    result = {"failed": result["error"]}
                if "median" in result:
                    values.append(result["median"])
                    if "added" in result:
                        paired[contender].append(result["added"])
                else:
                    notes[contender] = result.get("missing") or f"FAILED: {result.get('failed')}"
    print(f"psycopg execute({STATEMENT!r}) + fetchone, {rounds} rounds of {batches}x{size}")
    print(f"{'contender':<10}{'us/call':>10}{'added':>10}")
    added: dict[str, float] = {}
    for contender, values in figures.items():
        if contender in notes or not values:
            print(f"{contender:<10}  {notes.get(contender, 'no figure')}")
            continue
        median = statistics.median(values)
        extra = ""
        if paired.get(contender):
            added[contender] = statistics.median(paired[contender])
            extra = f"{added[contender]:>10.1f}"
        print(f"{contender:<10}{median:>10.1f}{extra}")
    if "us" in added and added.get("otel"):
        print(f"us/otel added: {added['us'] / added['otel']:.2f}x (target at most 0.33x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
