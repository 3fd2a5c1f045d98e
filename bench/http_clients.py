"""Cost per HTTP client request: bare vs telemetry-run vs OpenTelemetry's instrumentation.

Scenarios (each a request to a local keep-alive ``http.server``, a thread in the worker, whose
small JSON body is read):

  httpx        ``httpx.Client().get(url)``
  httpx-async  ``await httpx.AsyncClient().get(url)``, one at a time in one event loop
  urllib3      ``urllib3.PoolManager().request("GET", url)``
  aiohttp      ``async with session.get(url)`` and the body read, one at a time

Contenders: bare (no tracer), us (our instrumentor for the library) and otel (the
opentelemetry-instrumentation-httpx, -urllib3 or -aiohttp-client instrumentor), each exporting
into a batch processor whose exporter discards. Each contender runs in a worker subprocess of
its own per round; the order rotates from round to round. Before anything is timed, each
worker checks that it traces: exactly one CLIENT span per checked request reached the
exporter, and its trace id arrived in the request's ``traceparent`` (bare: no span, no header).
A contender that fails a check is FAILED, so a broken setup cannot produce a fast number; a
peer that is not installed says so.

Figures are the worker process's CPU time per request (all its threads: the client's, the
server's, the exporter's), median over repetitions and rounds: on a shared machine, wall time
moves with the others' load far more than the tracers differ (it is printed too, for scale).
``added`` is a contender's median minus bare's, and ``us/otel`` divides our added time by
theirs (below 1.00x we add less; the issue's target is 0.33x).

    python bench/http_clients.py [--quick] [-v] [--scenarios httpx,httpx-async]
"""

# Worker processes import only their own contender: the module level imports the standard
# library only.

from __future__ import annotations

import argparse
import atexit
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
    "urllib3": "urllib3.PoolManager().request() to a local keep-alive http.server",
    "aiohttp": "aiohttp.ClientSession().get() to a local keep-alive http.server",
}
#: scenario -> (our instrumentor, the peer's module and class)
INSTRUMENTORS = {
    "httpx": ("httpx:HttpxInstrumentor", "httpx:HTTPXClientInstrumentor"),
    "httpx-async": ("httpx:HttpxInstrumentor", "httpx:HTTPXClientInstrumentor"),
    "urllib3": ("urllib3:Urllib3Instrumentor", "urllib3:URLLib3Instrumentor"),
    "aiohttp": (
        "aiohttp_client:AiohttpClientInstrumentor",
        "aiohttp_client:AioHttpClientInstrumentor",
    ),
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
    if scenario == "urllib3":
        import urllib3

        manager = urllib3.PoolManager()

        def run_urllib3(n: int) -> None:
            for _ in range(n):
                response = manager.request("GET", url)
                if response.data != BODY:
                    raise RuntimeError(f"unexpected response {response.status}")

        return run_urllib3
    if scenario == "aiohttp":
        import asyncio

        import aiohttp

        aio_loop = asyncio.new_event_loop()
        session = aio_loop.run_until_complete(_session(aiohttp))
        atexit.register(lambda: aio_loop.run_until_complete(session.close()))

        async def aio_many(n: int) -> None:
            for _ in range(n):
                async with session.get(url) as response:
                    if await response.read() != BODY:
                        raise RuntimeError(f"unexpected response {response.status}")

        return lambda n: aio_loop.run_until_complete(aio_many(n))

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


async def _session(aiohttp: Any) -> Any:
    return aiohttp.ClientSession()  # made inside the loop that uses it


def _setup(contender: str, scenario: str, collector: _Collector) -> Callable[[], Any]:
    """Instrument the scenario's library for ``contender``; the provider's flush."""
    import importlib

    if contender == "bare":
        return lambda: None
    if contender == "us":
        from telemetry_run.instrumentors import plugin
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
        module, name = INSTRUMENTORS[scenario][0].split(":")
        ours = getattr(importlib.import_module(f"telemetry_run.instrumentors.{module}"), name)
        ours().instrument(provider, config_for(plugin, {}))
        return provider.force_flush

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
    module, name = INSTRUMENTORS[scenario][1].split(":")
    theirs = getattr(importlib.import_module(f"opentelemetry.instrumentation.{module}"), name)
    theirs().instrument(tracer_provider=otel_provider)
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
        flush = _setup(contender, scenario, collector)
    except ImportError as exc:
        return {"error": f"not installed: {exc.name or exc}"}
    local = _LocalServer()
    run = _operations(scenario, local.url)
    info = _check(contender, run, flush, collector, local)
    run(WARMUP)
    samples, wall = [], []
    for _ in range(reps):
        started, cpu_started = time.perf_counter(), time.process_time()
        run(n)
        samples.append((time.process_time() - cpu_started) / n * 1e6)
        wall.append((time.perf_counter() - started) / n * 1e6)
    flush()
    info["exported"] = collector.count
    return {"samples": samples, "wall": wall, "info": info}


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
    print(f"   N={plan['n']} x {plan['reps']} reps per worker, {plan['rounds']} rounds;")
    print("   per round: median CPU µs per request (median wall µs in brackets)")
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    wall: dict[str, list[float]] = {c: [] for c in CONTENDERS}
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
            wall[contender].extend(res["wall"])
            cpu, elapsed = statistics.median(res["samples"]), statistics.median(res["wall"])
            line.append(f"{contender} {cpu:.1f} ({elapsed:.0f}) µs")
            if verbose and rnd == 0:
                print(f"   [{contender}] {json.dumps(res['info'])}")
        print(f"   round {rnd + 1}: " + "  ".join(line))
    for contender, reason in failures.items():
        print(f"   FAILED ({contender}): {reason}")
    medians = {c: statistics.median(s) if s else None for c, s in samples.items()}
    walls = {c: statistics.median(s) if s else None for c, s in wall.items()}
    print("   median wall µs/request: " + " | ".join(f"{c} {_fmt(walls[c])}" for c in CONTENDERS))
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
            "telemetry-run",
            "httpx",
            "urllib3",
            "aiohttp",
            "opentelemetry-sdk",
            "opentelemetry-instrumentation-httpx",
            "opentelemetry-instrumentation-urllib3",
            "opentelemetry-instrumentation-aiohttp-client",
        )
    )
    started = time.perf_counter()
    results = [_run(scenario, plan, args.verbose) for scenario in scenarios]
    print(
        f"\n== summary ({time.perf_counter() - started:.0f} s; median CPU µs per request,"
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
