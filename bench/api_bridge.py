"""A span made through the OpenTelemetry API: through our bridge vs opentelemetry-sdk's own.

The loop body is the same for every contender, written against ``opentelemetry.trace`` as a
library would: ``with tracer.start_as_current_span("child") as s`` under an active parent, 4
``set_attribute`` calls, the span ended into a batch processor whose exporter discards.

  bridge  opentelemetry-api's tracer provider is telemetry-run's bridge (the API instrumentor,
          as under the launcher): our spans behind the API's interface
  otel    opentelemetry-sdk's TracerProvider set as the API's global provider
  native  the same body on telemetry_run.trace directly, for reference: the bridge's own cost
          is bridge minus native

Each contender runs in its own worker process (same interpreter), round by round with the order
rotated; the figure is the median microseconds per span over all repetitions of all rounds, GC
enabled. Ratios below 1.00x mean the bridge takes less time.

    python bench/api_bridge.py [--quick] [-v]
"""

# Each worker process imports only its own contender, so the imports live in functions.

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import run_worker

CONTENDERS = ("bridge", "otel", "native")
ATTRIBUTES = (
    ("http.request.method", "GET"),
    ("http.response.status_code", 200),
    ("server.address", "example.com"),
    ("duration", 1.5),
)
WORKER_TIMEOUT = 120.0
_KEEP_OPEN: list[Any] = []  # the entered parent: collecting it would end it


def _ours() -> tuple[Any, Callable[[], int]]:
    """Our provider with a batch processor and a discarding exporter; the exported count."""
    from telemetry_run.sdk import BatchSpanProcessor, ExportResult, TracerProvider

    class DiscardingExporter:
        spans = 0

        def export(self, spans: Any, *, deadline: float) -> Any:
            DiscardingExporter.spans += len(spans)
            return ExportResult(True)

        def force_flush(self, *, deadline: float) -> bool:
            return True

        def shutdown(self, *, deadline: float) -> None:
            return None

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))

    def exported() -> int:
        provider.force_flush()
        return DiscardingExporter.spans

    return provider, exported


def _setup(contender: str) -> tuple[Any, Callable[[], int], Callable[[Any], int]]:
    """The tracer the loop uses, the exported count, and how to read a span's parent id."""
    if contender == "otel":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class DiscardingExporter(SpanExporter):
            spans = 0

            def export(self, spans: Any) -> SpanExportResult:
                DiscardingExporter.spans += len(spans)
                return SpanExportResult.SUCCESS

        sdk_provider = TracerProvider()
        sdk_provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
        trace.set_tracer_provider(sdk_provider)

        def sdk_exported() -> int:
            sdk_provider.force_flush()
            return DiscardingExporter.spans

        return trace.get_tracer("bench"), sdk_exported, lambda s: s.parent.span_id

    provider, exported = _ours()
    if contender == "native":
        return provider.get_tracer("bench"), exported, lambda s: s.parent.span_id

    from opentelemetry import trace

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.opentelemetry_api import OpenTelemetryApiInstrumentor

    OpenTelemetryApiInstrumentor().instrument(provider, Config.from_env({}))
    return trace.get_tracer("bench"), exported, lambda s: s.span.parent.span_id


def worker(contender: str, n: int, reps: int) -> dict[str, Any]:
    tracer, exported, parent_id = _setup(contender)
    parent_cm = tracer.start_as_current_span("parent")
    _KEEP_OPEN.append(parent_cm)
    parent = parent_cm.__enter__().get_span_context()

    def run(count: int) -> None:
        for _ in range(count):
            with tracer.start_as_current_span("child") as s:
                s.set_attribute("http.request.method", "GET")
                s.set_attribute("http.response.status_code", 200)
                s.set_attribute("server.address", "example.com")
                s.set_attribute("duration", 1.5)

    warmup = max(n // 4, 500)
    run(warmup)
    gc.collect()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run(n)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    with tracer.start_as_current_span("check") as s:
        for key, value in ATTRIBUTES:
            s.set_attribute(key, value)
    ok = s.is_recording() is False and parent_id(s) == parent.span_id  # ended, parented
    total = exported()
    ok = ok and total > 0
    return {"samples": samples, "checks_ok": ok, "exported": total, "ops": warmup + n * reps}


def _spawn(contender: str, n: int, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender]
    cmd += ["--n", str(n), "--reps", str(reps)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return run_worker(cmd, env, WORKER_TIMEOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer iterations")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each worker's checks")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.reps)), flush=True)
        return

    rounds, reps, n = (2, 5, 5_000) if args.quick else (5, 9, 20_000)
    print(f"api_bridge: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, GC enabled")
    print(f"   N={n} x {reps} reps, {rounds} rounds")
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    dropped: dict[str, list[float]] = {}
    for rnd in range(rounds):
        order = CONTENDERS[rnd % 3 :] + CONTENDERS[: rnd % 3]
        line = []
        for contender in order:
            res = _spawn(contender, n, reps)
            if "error" in res:
                line.append(f"{contender} FAILED ({res['error']})")
                continue
            if not res["checks_ok"]:
                line.append(f"{contender} FAILED (sanity check: {res})")
                continue
            samples[contender].extend(res["samples"])
            if res["exported"] < res["ops"]:
                dropped.setdefault(contender, []).append(1 - res["exported"] / res["ops"])
            line.append(f"{contender} {statistics.median(res['samples']):.2f} µs")
            if args.verbose:
                print(f"   [{contender}] exported {res['exported']} of {res['ops']} spans")
        print(f"   round {rnd + 1}: " + "  ".join(line))
    for contender, fractions in dropped.items():
        shares = ", ".join(f"{f:.0%}" for f in fractions)
        print(f"   note ({contender}): the batch processor dropped (queue full) {shares}")
    med = {c: statistics.median(s) if s else None for c, s in samples.items()}

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    def ratio(a: float | None, b: float | None) -> str:
        return "n/a" if a is None or not b else f"{a / b:.2f}x"

    header = f"{'row':<40} {'bridge':>8} {'otel':>8} {'native':>8} {'bridge/otel':>12}"
    print("\n" + header)
    print("-" * len(header))
    print(
        f"{'API span start/end, 4 attributes (µs)':<40}"
        + "".join(f" {fmt(med[c]):>8}" for c in CONTENDERS)
        + f" {ratio(med['bridge'], med['otel']):>12}"
    )


if __name__ == "__main__":
    main()
