"""Span start/end cost: telemetry-run vs opentelemetry-sdk vs ddtrace, each in its own process.

Scenarios (one worker subprocess per contender, scenario and round; same interpreter):

  a  recording child span with 4 attributes under an active sampled parent, ended into a batch
     processor whose exporter discards (ddtrace: the trace writer discards)
  b  the same loop body under a remote parent whose sampled flag is off
  c  W3C traceparent/tracestate extract from a dict, then inject into a new dict
  d  memory held per finished span waiting in a queue that cannot drain

Timings are the median microseconds per operation over all repetitions of all rounds, with GC
enabled; contenders are interleaved round by round (order rotated) so drift hits all of them.
Ratios are ours divided by theirs: ``us/otel 0.50x`` means we take half OpenTelemetry's time
(or memory); above 1.00x we are slower or bigger.

    python bench/span_start_end.py [--quick] [-v]
"""

# Each worker process imports only its own contender, so the imports live in functions.

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import os
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import DD_NO_AGENT, DD_QUIET, run_worker

CONTENDERS = ("us", "otel", "dd", "limit")
LABELS = {"us": "us", "otel": "otel", "dd": "ddtrace", "limit": "limit"}
LIMIT_SCENARIOS = "c"  # where a "limit" row (the least the job needs, hand-written) is run
SCENARIOS = {
    "a": "recording child span, 4 attributes, batch processor + discarding exporter",
    "b": "sampled-out child span (remote parent, sampled flag off)",
    "c": "traceparent + tracestate extract, then inject",
    "d": "memory per finished span waiting in an undrained queue",
}
SHORT = {
    "a": "recording child span + BSP",
    "b": "sampled-out child span",
    "c": "traceparent extract + inject",
    "d": "span waiting in queue",
}
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7
CARRIER = {
    "traceparent": f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01",
    "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
}
QUEUE_SIZE = 10_000  # (d): larger than warm-up + 2 * N, and the export batch size too
MEM_WARMUP = 200
ATTRIBUTES = (  # what each loop body sets, written out literally there
    ("http.request.method", "GET"),
    ("http.response.status_code", 200),
    ("server.address", "example.com"),
    ("duration", 1.5),
)
WORKER_TIMEOUT = 120.0
_KEEP_OPEN: list[Any] = []  # entered context managers: collecting one would close it

# ddtrace must trace for real but never reach the network: these plus a discarding writer.
DD_ENV = {
    **DD_QUIET,
    **DD_NO_AGENT,
    "DD_TRACE_PROPAGATION_STYLE": "tracecontext",
}


def _propagated(out: dict[str, str]) -> bool:
    """Inject wrote back what extract read (ddtrace may add its own tracestate entry)."""
    parent, state = out.get("traceparent"), out.get("tracestate", "")
    return parent == CARRIER["traceparent"] and state.endswith(CARRIER["tracestate"])


@dataclass
class Bench:
    """What a worker needs from one contender set up for one scenario."""

    run: Callable[[int], None] | None  # n operations; None means n/a
    info: Callable[[], dict[str, Any]] = dict
    held: Callable[[], int] = lambda: -1  # spans buffered, for (d)
    note: str = ""


# -- contenders (imported only inside their own worker process) -------------------------------


def _setup_us(scenario: str) -> Bench:
    from telemetry_run.context import attach
    from telemetry_run.sdk import BatchSpanProcessor, ExportResult, TracerProvider
    from telemetry_run.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    if scenario == "c":
        try:
            from telemetry_run.sdk.propagation import tracecontext

            propagator = tracecontext.TraceContextTextMapPropagator()
            extract, inject = propagator.extract, propagator.inject
            twins = "native" if tracecontext._native_parse is not None else "Python"
            note = f"W3C TraceContextTextMapPropagator, {twins} traceparent parse and format"
        except ImportError:
            try:
                from telemetry_run import propagate

                extract, inject = propagate.extract, propagate.inject
                note = "global propagator (tracecontext + baggage)"
            except ImportError as exc:
                return Bench(run=None, note=f"propagation not importable: {exc}")

        def run_c(n: int) -> None:
            for _ in range(n):
                ctx = extract(CARRIER)
                out: dict[str, str] = {}
                inject(out, ctx)

        def info_c() -> dict[str, Any]:
            out: dict[str, str] = {}
            inject(out, extract(CARRIER))
            return {"checks_ok": _propagated(out), "injected": out}

        return Bench(run=run_c, info=info_c, note=note)

    class DiscardingExporter:
        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Any, *, deadline: float) -> Any:
            self.spans += len(spans)
            return ExportResult(True)

        def force_flush(self, *, deadline: float) -> bool:
            return True

        def shutdown(self, *, deadline: float) -> None:
            return None

    exporter = DiscardingExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    if scenario == "d":
        bsp = BatchSpanProcessor(
            exporter,
            max_queue_size=QUEUE_SIZE,
            schedule_delay=1e6,
            max_export_batch_size=QUEUE_SIZE,
        )
    else:
        bsp = BatchSpanProcessor(exporter)
    provider.add_span_processor(bsp)
    tracer = provider.get_tracer("bench")
    if scenario == "b":
        parent = SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(0))
        attach(set_span_in_context(NonRecordingSpan(parent)))
    else:
        current = tracer.start_as_current_span("parent")
        _KEEP_OPEN.append(current)
        parent = current.__enter__().get_span_context()

    return _span_bench(
        tracer,
        scenario,
        parent,
        provider.force_flush,
        lambda: exporter.spans,
        lambda: bsp.queue_length,
    )


def _span_bench(
    tracer: Any,
    scenario: str,
    parent: Any,
    flush: Callable[[], Any],
    exported: Callable[[], int],
    held: Callable[[], int],
) -> Bench:
    """Scenarios a, b and d for a tracer with the OpenTelemetry API (ours, OpenTelemetry's):
    the timed loop of child spans and the checks after it, the same code for both."""

    def run(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span("child") as s:
                s.set_attribute("http.request.method", "GET")
                s.set_attribute("http.response.status_code", 200)
                s.set_attribute("server.address", "example.com")
                s.set_attribute("duration", 1.5)

    def info() -> dict[str, Any]:
        run(1)  # the same body, then one more span to inspect
        with tracer.start_as_current_span("child") as s:
            recording = s.is_recording()
            for key, value in ATTRIBUTES:
                s.set_attribute(key, value)
        if scenario == "b":
            ok = not recording and s.get_span_context().trace_id == TRACE_ID
        else:
            parent_of_s = getattr(s, "parent", None)  # SDK spans only, not the API type
            ok = recording and parent_of_s is not None and parent_of_s.span_id == parent.span_id
        if scenario != "d":
            flush()
        attributes = dict(getattr(s, "attributes", None) or {})
        ok = ok and attributes == (dict(ATTRIBUTES) if recording else {})
        return {
            "checks_ok": ok,
            "recording": recording,
            "attributes": attributes,
            "exported": exported(),
        }

    return Bench(run=run, info=info, held=held)


def _setup_otel(scenario: str) -> Bench:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if scenario == "c":
        propagator = TraceContextTextMapPropagator()

        def run_c(n: int) -> None:
            for _ in range(n):
                ctx = propagator.extract(CARRIER)
                out: dict[str, str] = {}
                propagator.inject(out, ctx)

        def info_c() -> dict[str, Any]:
            out: dict[str, str] = {}
            propagator.inject(out, propagator.extract(CARRIER))
            return {"checks_ok": _propagated(out), "injected": out}

        return Bench(run=run_c, info=info_c, note="W3C TraceContextTextMapPropagator")

    class DiscardingExporter(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Any) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

    exporter = DiscardingExporter()
    provider = TracerProvider()
    if scenario == "d":
        bsp = BatchSpanProcessor(
            exporter,
            max_queue_size=QUEUE_SIZE,
            schedule_delay_millis=1e9,
            max_export_batch_size=QUEUE_SIZE,
        )
    else:
        bsp = BatchSpanProcessor(exporter)
    provider.add_span_processor(bsp)
    tracer = provider.get_tracer("bench")
    if scenario == "b":
        parent = trace.SpanContext(
            TRACE_ID, SPAN_ID, is_remote=True, trace_flags=trace.TraceFlags(0)
        )
        otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    else:
        current = tracer.start_as_current_span("parent")
        _KEEP_OPEN.append(current)
        parent = current.__enter__().get_span_context()

    def held() -> int:
        return len(bsp._batch_processor._queue)  # internal, read only to check (d)

    return _span_bench(tracer, scenario, parent, provider.force_flush, lambda: exporter.spans, held)


def _setup_dd(scenario: str) -> Bench:
    try:
        from ddtrace.trace import Context, tracer
    except ImportError:  # ddtrace < 3
        from ddtrace import tracer  # type: ignore[attr-defined]
        from ddtrace.context import Context  # type: ignore[no-redef]

    from ddtrace.internal.writer import TraceWriter

    class DiscardingWriter(TraceWriter):
        """Takes the place of the agent writer: counts the finished chunks, sends nothing."""

        def __init__(self) -> None:
            self.spans = 0
            self.chunks = 0
            self.priorities: set[Any] = set()

        def recreate(self, appsec_enabled: Any = None, llmobs_enabled: Any = None) -> Any:
            return self

        def stop(self, timeout: float | None = None) -> None:
            return None

        def write(self, spans: Any = None) -> None:
            if spans:
                self.chunks += 1
                self.spans += len(spans)
                if len(self.priorities) < 4:
                    self.priorities.add(spans[0].context.sampling_priority)

        def flush_queue(self) -> None:
            return None

    aggregator = tracer._span_aggregator
    replaced = aggregator.writer
    writer = DiscardingWriter()
    aggregator.writer = writer  # before any span finishes, so the real writer never starts
    # Building the native writer started a background agent-info poller: stop it too.
    shutdown_exporter = getattr(replaced, "shutdown_exporter", None)
    if shutdown_exporter is not None:
        shutdown_exporter()

    if scenario == "c":
        from ddtrace.propagation.http import HTTPPropagator

        def run_c(n: int) -> None:
            for _ in range(n):
                ctx = HTTPPropagator.extract(CARRIER)  # type: ignore[no-untyped-call]
                out: dict[str, str] = {}
                HTTPPropagator.inject(ctx, out)

        def info_c() -> dict[str, Any]:
            out: dict[str, str] = {}
            HTTPPropagator.inject(HTTPPropagator.extract(CARRIER), out)  # type: ignore[no-untyped-call]
            return {"checks_ok": _propagated(out), "injected": out}

        note = "HTTPPropagator, style tracecontext (it adds its own dd= tracestate entry)"
        return Bench(run=run_c, info=info_c, note=note)

    note = ""
    if scenario == "b":
        # ddtrace has no unsampled non-recording span: children of a priority-0 remote context
        # are recorded in full and handed to the writer, which would drop them when encoding.
        ctx = Context(trace_id=TRACE_ID, span_id=SPAN_ID, sampling_priority=0)
        activation = tracer._activate_context(ctx)  # keeps the remote parent active throughout
        _KEEP_OPEN.append(activation)
        activation.__enter__()
        note = "ddtrace records sampled-out spans; they are dropped at flush"
    else:
        root = tracer.trace("parent")  # active and never finished
    if scenario == "d" and aggregator.partial_flush_enabled:
        raise RuntimeError("partial flush must be off for (d): DD_TRACE_PARTIAL_FLUSH_ENABLED")

    def run(n: int) -> None:
        for _ in range(n):
            with tracer.trace("child") as s:
                s.set_tag("http.request.method", "GET")
                s.set_metric("http.response.status_code", 200)
                s.set_tag("server.address", "example.com")
                s.set_metric("duration", 1.5)

    def info() -> dict[str, Any]:
        run(1)  # the same body, then one more span to inspect
        with tracer.trace("child") as s:
            s.set_tag("http.request.method", "GET")
            s.set_metric("http.response.status_code", 200)
            s.set_tag("server.address", "example.com")
            s.set_metric("duration", 1.5)
        if scenario == "b":
            ok = s.trace_id == TRACE_ID and s.parent_id == SPAN_ID
            ok = ok and s.context.sampling_priority == 0
        else:
            ok = s.parent_id == root.span_id
        attributes = {key: s.get_tag(key) or s.get_metric(key) for key, _ in ATTRIBUTES}
        ok = ok and attributes == dict(ATTRIBUTES)
        return {
            "checks_ok": ok,
            "attributes": attributes,
            "replaced_writer": type(replaced).__name__,
            "partial_flush": [aggregator.partial_flush_enabled, aggregator.partial_flush_min_spans],
            "writer_spans": writer.spans,
            "writer_chunks": writer.chunks,
            "sampling_priorities": sorted(map(str, writer.priorities)),
        }

    def held() -> int:
        return len(aggregator._traces[root.trace_id].spans) - 1  # minus the root

    return Bench(run=run, info=info, held=held, note=note)


def _setup_limit(scenario: str) -> Bench:
    """The least (c) needs, by hand: read both headers, check the traceparent with one
    precompiled match, parse both ids, keep the tracestate string as it came, then format the
    ids back into a new dict. No context object, no span, no tracestate parsing: a floor that
    no propagator can go below, not a contender."""
    if scenario not in LIMIT_SCENARIOS:
        return Bench(run=None, note="no limit row for this scenario")
    import re

    pattern = re.compile(r"(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")

    def extract(carrier: dict[str, str]) -> tuple[int, int, str, str | None] | None:
        match = pattern.match(carrier["traceparent"])
        if match is None:
            return None
        trace_hex, span_hex, flags = match.groups()
        return int(trace_hex, 16), int(span_hex, 16), flags, carrier.get("tracestate")

    def inject(out: dict[str, str], ctx: tuple[int, int, str, str | None] | None) -> None:
        if ctx is None:
            return
        out["traceparent"] = f"00-{ctx[0].to_bytes(16).hex()}-{ctx[1].to_bytes(8).hex()}-{ctx[2]}"
        if ctx[3]:
            out["tracestate"] = ctx[3]

    def run_c(n: int) -> None:
        for _ in range(n):
            ctx = extract(CARRIER)
            out: dict[str, str] = {}
            inject(out, ctx)

    def info_c() -> dict[str, Any]:
        out: dict[str, str] = {}
        inject(out, extract(CARRIER))
        return {"checks_ok": _propagated(out), "injected": out}

    return Bench(run=run_c, info=info_c, note="hand-written floor: one match, two int(), format")


SETUPS = {"us": _setup_us, "otel": _setup_otel, "dd": _setup_dd, "limit": _setup_limit}


# -- worker ---------------------------------------------------------------------------------


def _heap_in_use() -> int | None:
    """Bytes glibc malloc has handed out (all arenas, mmapped chunks too), or None."""

    class MallInfo2(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
                *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
            )
        ]

    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return int(info.uordblks + info.hblkhd)


def _open_sockets() -> int:
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return -1
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


def _measure_time(bench: Bench, n: int, reps: int) -> dict[str, Any]:
    assert bench.run is not None
    warmup = max(n // 4, 500)
    bench.run(warmup)  # caches, lazily built state, the BSP worker thread
    gc.collect()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        bench.run(n)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return {"samples": samples, "ops": warmup + n * reps}


def _measure_memory(bench: Bench, n: int) -> dict[str, Any]:
    """Heap bytes (all allocators, native included) first, then tracemalloc: two batches of n."""
    assert bench.run is not None
    bench.run(MEM_WARMUP)
    gc.collect()
    before = _heap_in_use()
    bench.run(n)
    gc.collect()
    after = _heap_in_use()
    heap = None if before is None or after is None else (after - before) / n

    tracemalloc.start()
    bench.run(MEM_WARMUP // 4)
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    bench.run(n)
    gc.collect()
    traced = (tracemalloc.get_traced_memory()[0] - start) / n
    tracemalloc.stop()
    held = bench.held()
    expected = MEM_WARMUP + MEM_WARMUP // 4 + 2 * n
    if held != expected:
        raise RuntimeError(f"{held} spans buffered, expected {expected}: the queue drained")
    return {"traced": traced, "heap": heap, "held": held}


def worker(contender: str, scenario: str, n: int, reps: int) -> dict[str, Any]:
    bench = SETUPS[contender](scenario)
    result: dict[str, Any] = {"contender": contender, "scenario": scenario, "note": bench.note}
    if bench.run is None:
        result["na"] = True
        return result
    if scenario == "d":
        result.update(_measure_memory(bench, n))
    else:
        result.update(_measure_time(bench, n, reps))
    info = bench.info()
    if info.get("checks_ok") is False:
        raise RuntimeError(f"sanity check failed (parent, attributes, sampling, headers): {info}")
    info["open_sockets"] = _open_sockets()
    info["threads"] = sorted(t.name for t in threading.enumerate())
    result["info"] = info
    return result


# -- parent ---------------------------------------------------------------------------------


def _worker_env(contender: str, scenario: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DD_"))}
    env.pop("PYTHONMALLOC", None)
    if contender == "dd":
        env.update(DD_ENV)
        if scenario == "d":
            env["DD_TRACE_PARTIAL_FLUSH_ENABLED"] = "false"  # keep finished children buffered
    if scenario == "d":
        env["PYTHONMALLOC"] = "malloc"  # every allocation, Python's too, visible to mallinfo2
    return env


def _spawn(contender: str, scenario: str, n: int, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender]
    cmd += ["--scenario", scenario, "--n", str(n), "--reps", str(reps)]
    return run_worker(cmd, _worker_env(contender, scenario), WORKER_TIMEOUT)


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "n/a" if ours is None or not theirs else f"{ours / theirs:.2f}x"


def _run_scenario(
    scenario: str, n: int, reps: int, rounds: int, verbose: bool
) -> list[tuple[str, str, dict[str, float | None]]]:
    memory = scenario == "d"
    print(f"\n== ({scenario}) {SCENARIOS[scenario]}")
    print(f"   N={n}" + ("" if memory else f" x {reps} reps") + f", {rounds} rounds")
    samples: dict[str, dict[str, list[float]]] = {
        c: {"t": [], "traced": [], "heap": []} for c in CONTENDERS
    }
    notes: dict[str, str] = {}
    dropped: dict[str, list[float]] = {}
    for rnd in range(rounds):
        running = CONTENDERS if scenario in LIMIT_SCENARIOS else CONTENDERS[:3]
        order = running[rnd % len(running) :] + running[: rnd % len(running)]
        line = []
        for contender in order:
            res = _spawn(contender, scenario, n, reps)
            label = LABELS[contender]
            if "error" in res:
                line.append(f"{label} FAILED ({res['error']})")
                continue
            if res.get("note"):
                notes[contender] = res["note"]
            if res.get("na"):
                line.append(f"{label} n/a")
                continue
            exported = res["info"].get("exported")
            if scenario == "a" and exported is not None:
                total = res["ops"] + 2  # and the checking spans
                dropped.setdefault(contender, []).append(1 - exported / total)
            if memory:
                samples[contender]["traced"].append(res["traced"])
                if res["heap"] is not None:
                    samples[contender]["heap"].append(res["heap"])
                line.append(f"{label} {res['traced']:.0f}/{_fmt(res['heap'], 0)} B")
            else:
                samples[contender]["t"].extend(res["samples"])
                line.append(f"{label} {statistics.median(res['samples']):.2f} µs")
            if verbose and rnd == 0:
                print(f"   [{label}] {json.dumps(res['info'])}")
        print(f"   round {rnd + 1}: " + "  ".join(line))
    for contender, note in notes.items():
        print(f"   note ({LABELS[contender]}): {note}")
    for contender, fractions in dropped.items():
        if max(fractions) > 0:
            print(
                f"   note ({LABELS[contender]}): the batch processor dropped (queue full) "
                + ", ".join(f"{f:.0%}" for f in fractions)
                + " of the spans, per round"
            )

    rows = []
    metrics = [("traced", "B/span (tracemalloc)"), ("heap", "B/span (malloc heap)")]
    for key, unit in metrics if memory else [("t", "µs/op")]:
        med = {c: statistics.median(s[key]) if s[key] else None for c, s in samples.items()}
        rows.append((scenario, unit, med))
        digits = 0 if memory else 2
        print(
            f"   median {unit}: "
            + " | ".join(f"{LABELS[c]} {_fmt(med[c], digits)}" for c in CONTENDERS)
            + f"   us/otel {_ratio(med['us'], med['otel'])}"
            + f"   us/ddtrace {_ratio(med['us'], med['dd'])}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer iterations")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each worker's checks")
    parser.add_argument("--scenarios", default="abcd", help="subset to run, e.g. 'ac'")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=tuple(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=10_000, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.scenarios or set(args.scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios takes letters from {''.join(SCENARIOS)}")

    if args.worker:
        print(json.dumps(worker(args.worker, args.scenario, args.n, args.reps)), flush=True)
        return

    rounds, reps, scale = (2, 5, 2) if args.quick else (5, 9, 1)
    sizes = {"a": 20_000 // scale, "b": 20_000 // scale, "c": 30_000 // scale, "d": 2_000}
    print(f"span_start_end: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, GC enabled")
    started = time.perf_counter()
    rows = []
    for scenario in args.scenarios:
        rows += _run_scenario(scenario, sizes[scenario], reps, rounds, args.verbose)

    print(f"\n== summary ({time.perf_counter() - started:.0f} s; ratio < 1.00x: we are ahead)")
    header = f"{'scenario':<31} {'unit':<21} {'us':>8} {'otel':>8} {'ddtrace':>8} {'limit':>8}"
    header += f" {'us/otel':>8} {'us/ddtrace':>10}"
    print(header)
    print("-" * len(header))
    for scenario, unit, med in rows:
        digits = 0 if scenario == "d" else 2
        print(
            f"{scenario + ') ' + SHORT[scenario]:<31} {unit:<21}"
            + "".join(f" {_fmt(med[c], digits):>8}" for c in CONTENDERS)
            + f" {_ratio(med['us'], med['otel']):>8} {_ratio(med['us'], med['dd']):>10}"
        )


if __name__ == "__main__":
    main()
