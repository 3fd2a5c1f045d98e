"""Cost per httpx request: bare vs telemetry-run vs opentelemetry-instrumentation-httpx.

Scenarios (each a request to a local keep-alive ``http.server``, a thread in the worker, whose
small JSON body is read):

  httpx        ``httpx.Client().get(url)``
  httpx-async  ``await httpx.AsyncClient().get(url)``, one at a time in one event loop

Contenders: bare (no tracer), us (our HttpxInstrumentor) and otel (opentelemetry-
instrumentation-httpx's ``HTTPXClientInstrumentor``), each exporting into a batch processor
whose exporter discards. Each contender runs in a worker subprocess of its own per round; the
order rotates from round to round. Before anything is timed, each worker checks that it traces:
exactly one CLIENT span per checked request reached the exporter, and its trace id arrived in
the request's ``traceparent`` (bare: no span, no header). A contender that fails a check is
FAILED, so a broken setup cannot produce a fast number; a peer that is not installed says so.

Figures are median microseconds per request; ``added`` is a contender's median minus bare's,
and ``us/otel`` divides our added time by theirs (below 1.00x we add less; the issue's target
is 0.33x).

    python bench/http_clients.py [--quick] [-v] [--scenarios httpx,httpx-async]
"""

# Worker processes import only their own contender: the module level imports the standard
# library only.

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from _common import versions

CONTENDERS = ("bare", "us", "otel")
SCENARIOS = {
    "httpx": "httpx.Client().get() to a local keep-alive http.server",
    "httpx-async": "await httpx.AsyncClient().get() to a local keep-alive http.server",
}
TARGET = 0.33  # our added cost over OpenTelemetry's, from issue 17
BODY = json.dumps({"id": 42, "name": "user-42"}).encode()
CHECK_REQUESTS = 20
WARMUP = 200
WORKER_TIMEOUT = 180.0
FULL = {"rounds": 5, "reps": 5, "n": 1000}
QUICK = {"rounds": 2, "reps": 3, "n": 300}


# -- the worker ---------------------------------------------------------------------------------


class _LocalServer:
    """A keep-alive ``http.server`` on 127.0.0.1 in a thread, recording traceparents on demand."""

    def __init__(self) -> None:
        import http.server

        self.traceparents: list[str | None] | None = None
        outer = self
        message = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:
                if outer.traceparents is not None:
                    outer.traceparents.append(self.headers.get("traceparent"))
                self.wfile.write(message)  # one write: no Nagle/delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/users/42"
        threading.Thread(target=self.server.serve_forever, name="bench-http", daemon=True).start()


@dataclass
class _Collector:
    """What a contender's discarding exporter saw: a count, and the spans' (kind, trace id)
    while ``kept`` is a list."""

    count: int = 0
    kept: list[tuple[str, str]] | None = None


def _operations(scenario: str, url: str) -> Callable[[int], None]:
    """``run(n)``: n requests, each body read; raises on a wrong response."""
    import httpx

    if scenario == "httpx":
        client = httpx.Client()

        def run(n: int) -> None:
            for _ in range(n):
                response = client.get(url)
                if response.content != BODY:
                    raise RuntimeError(f"unexpected response {response.status_code}")

        return run

    import asyncio

    loop = asyncio.new_event_loop()
    async_client = httpx.AsyncClient()

    async def many(n: int) -> None:
        for _ in range(n):
            response = await async_client.get(url)
            if response.content != BODY:
                raise RuntimeError(f"unexpected response {response.status_code}")

    return lambda n: loop.run_until_complete(many(n))


def _setup(contender: str, collector: _Collector) -> Callable[[], Any]:
    """Instrument httpx for ``contender``; the provider's flush."""
    if contender == "bare":
        return lambda: None
    if contender == "us":
        from telemetry_run.instrumentors import plugin
        from telemetry_run.instrumentors.httpx import HttpxInstrumentor
        from telemetry_run.sdk import BatchSpanProcessor, ExportResult, TracerProvider
        from telemetry_run.testing import config_for

        class Discarding:
            def export(self, spans: Any, *, deadline: float) -> Any:
                collector.count += len(spans)
                if collector.kept is not None:
                    collector.kept += [
                        (s.kind.name, f"{s.get_span_context().trace_id:032x}") for s in spans
                    ]
                return ExportResult(True)

            def force_flush(self, *, deadline: float) -> bool:
                return True

            def shutdown(self, *, deadline: float) -> None:
                return None

        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(Discarding()))
        HttpxInstrumentor().instrument(provider, config_for(plugin, {}))
        return provider.force_flush

    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.trace import TracerProvider as OtelProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor as OtelBatch
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class OtelDiscarding(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            collector.count += len(spans)
            if collector.kept is not None:
                collector.kept += [
                    (s.kind.name, f"{s.get_span_context().trace_id:032x}") for s in spans
                ]
            return SpanExportResult.SUCCESS

    otel_provider = OtelProvider()
    otel_provider.add_span_processor(OtelBatch(OtelDiscarding()))
    HTTPXClientInstrumentor().instrument(tracer_provider=otel_provider)
    return otel_provider.force_flush


def _check(
    contender: str,
    run: Callable[[int], None],
    flush: Callable[[], Any],
    collector: _Collector,
    local: _LocalServer,
) -> dict[str, Any]:
    """CHECK_REQUESTS requests: one CLIENT span each, its trace id in the request's header."""
    flush()
    collector.kept, local.traceparents = [], []
    run(CHECK_REQUESTS)
    flush()
    kept, sent = collector.kept, local.traceparents
    collector.kept, local.traceparents = None, None
    if contender == "bare":
        if kept or any(sent):
            raise RuntimeError(f"bare traced: {kept[:1]} {sent[:1]}")
        return {"spans_checked": 0}
    if len(kept) != CHECK_REQUESTS or {kind for kind, _ in kept} != {"CLIENT"}:
        raise RuntimeError(f"expected {CHECK_REQUESTS} CLIENT spans, got {kept[:3]}...")
    header_ids = sorted((tp or "--").split("-")[1] for tp in sent)
    if header_ids != sorted(trace_id for _, trace_id in kept):
        raise RuntimeError(f"traceparent trace ids {header_ids[:2]} differ from the spans'")
    return {"spans_checked": len(kept), "traceparent": sent[0]}


def worker(contender: str, scenario: str, n: int, reps: int) -> dict[str, Any]:
    collector = _Collector()
    try:
        flush = _setup(contender, collector)
    except ImportError as exc:
        return {"error": f"not installed: {exc.name or exc}"}
    local = _LocalServer()
    run = _operations(scenario, local.url)
    info = _check(contender, run, flush, collector, local)
    run(WARMUP)
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        run(n)
        samples.append((time.perf_counter() - started) / n * 1e6)
    flush()
    info["exported"] = collector.count
    return {"samples": samples, "info": info}


# -- the parent -----------------------------------------------------------------------------------


def _spawn(contender: str, scenario: str, n: int, reps: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", contender, "--scenario", scenario]
    command += ["--n", str(n), "--reps", str(reps)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"error": f"exit {done.returncode}: {tail or 'no output'}"}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1f}" if sign else f"{value:.1f}"


def _run(scenario: str, plan: dict[str, int], verbose: bool) -> dict[str, Any]:
    print(f"\n== ({scenario}) {SCENARIOS[scenario]}")
    print(f"   N={plan['n']} x {plan['reps']} reps per worker, {plan['rounds']} rounds")
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    failures: dict[str, str] = {}
    for rnd in range(plan["rounds"]):
        shift = rnd % len(CONTENDERS)
        line = []
        for contender in CONTENDERS[shift:] + CONTENDERS[:shift]:
            res = _spawn(contender, scenario, plan["n"], plan["reps"])
            if "error" in res:
                failures[contender] = res["error"]
                line.append(f"{contender} FAILED")
                continue
            samples[contender].extend(res["samples"])
            line.append(f"{contender} {statistics.median(res['samples']):.1f} µs")
            if verbose and rnd == 0:
                print(f"   [{contender}] {json.dumps(res['info'])}")
        print(f"   round {rnd + 1}: " + "  ".join(line))
    for contender, reason in failures.items():
        print(f"   FAILED ({contender}): {reason}")
    medians = {c: statistics.median(s) if s else None for c, s in samples.items()}
    bare = medians["bare"]
    added = {
        c: None if medians[c] is None or bare is None else medians[c] - bare  # type: ignore[operator]
        for c in ("us", "otel")
    }
    return {"scenario": scenario, "medians": medians, "added": added}


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "n/a" if ours is None or theirs is None or theirs <= 0 else f"{ours / theirs:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer requests")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each worker's checks")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="e.g. 'httpx'")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=tuple(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=1000, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.scenario is None:
            parser.error("--worker needs --scenario")
        print(json.dumps(worker(args.worker, args.scenario, args.n, args.reps)), flush=True)
        return
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}")
    plan = QUICK if args.quick else FULL
    print(f"http_clients: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, GC enabled")
    print(
        "   "
        + versions(
            "telemetry-run", "httpx", "opentelemetry-sdk", "opentelemetry-instrumentation-httpx"
        )
    )
    started = time.perf_counter()
    results = [_run(scenario, plan, args.verbose) for scenario in scenarios]
    print(
        f"\n== summary ({time.perf_counter() - started:.0f} s; median µs per request,"
        " +µs = added over bare; ratio < 1.00x: we add less)"
    )
    header = f"{'scenario':<12} {'bare':>8} {'us':>8} {'otel':>8} {'us +µs':>8} {'otel +µs':>9}"
    header += f" {'us/otel':>8}"
    print(header)
    print("-" * len(header))
    for res in results:
        med, added = res["medians"], res["added"]
        print(
            f"{res['scenario']:<12}"
            + "".join(f" {_fmt(med[c]):>8}" for c in CONTENDERS)
            + f" {_fmt(added['us'], sign=True):>8} {_fmt(added['otel'], sign=True):>9}"
            + f" {_ratio(added['us'], added['otel']):>8}"
        )
    for res in results:
        ours, theirs = res["added"]["us"], res["added"]["otel"]
        if ours is not None and theirs:
            met = "met" if ours <= TARGET * theirs else "NOT met"
            print(f"target {res['scenario']}: us added <= {TARGET:.2f}x otel added: {met}")


if __name__ == "__main__":
    main()
