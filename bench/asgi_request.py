"""Cost per ASGI request, in-process: bare vs telemetry-run vs the OpenTelemetry peers.

Two scenarios, each app called as an ASGI server calls it (a scope, ``receive`` giving the
empty body, ``send`` collecting the messages; no sockets, no HTTP parsing: what is left is the
app and its instrumentation):

  fastapi  a FastAPI app, ``GET /items/{item_id}`` returning a small JSON: bare; our
           ``starlette`` instrumentor (the span uvicorn's ``asgi`` layer would start is the same
           one: only one of them starts it); ``FastAPIInstrumentor.instrument_app``
           (opentelemetry-instrumentation-fastapi);
  raw      a raw ASGI app loaded by uvicorn's ``Config.load`` as uvicorn does: bare; our
           ``asgi`` instrumentor (which wraps what ``Config.load`` loads);
           opentelemetry-instrumentation-asgi's ``OpenTelemetryMiddleware`` around the app.

Ours export into our batch processor, the peers into the OpenTelemetry SDK's, each exporter
discarding. FastAPI's own telemetry is off in every worker (no OpenTelemetry API provider is set
globally), so only the instrumentation under test traces. Before anything is timed, each
contender must show it traces: exactly one SERVER span per request (``GET /items/{item_id}``
for FastAPI), counted at its exporter; a contender that fails the check is FAILED.
One worker subprocess per contender and round; figures are median microseconds per request,
``added`` a contender's median minus bare's, ``us/otel`` our added time over theirs (below
1.00x we add less).

    python bench/asgi_request.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from _common import run_worker, versions

CONTENDERS = ("bare", "us", "otel")
SCENARIOS = {
    "fastapi": "FastAPI app; ours: the starlette instrumentor, otel: instrumentation-fastapi",
    "raw": "raw ASGI app loaded by uvicorn's Config; ours: the asgi instrumentor, "
    "otel: instrumentation-asgi's OpenTelemetryMiddleware",
}
ROUTE = "/items/{item_id}"
SPAN_NAME = f"GET {ROUTE}"
CHECK_REQUESTS = 20
WORKER_TIMEOUT = 300.0
FULL = {"rounds": 5, "reps": 5, "requests": 2000}
QUICK = {"rounds": 2, "reps": 3, "requests": 500}


def make_app() -> Any:
    import fastapi

    app = fastapi.FastAPI()

    @app.get(ROUTE)
    async def item(item_id: int) -> dict[str, Any]:
        return {"id": item_id, "name": f"item-{item_id}"}

    return app


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items/42",
        "raw_path": b"/items/42",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench.test"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _requests(app: Any, n: int) -> None:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(n):
        await app(_scope(), receive, send)
    if statuses != [200] * n:
        raise RuntimeError(f"unexpected statuses: {sorted(set(statuses))}")


class _Kept:
    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app: what uvicorn serves when there is no framework."""
    await send({"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS})
    await send({"type": "http.response.body", "body": b'{"id":42}'})


_RAW_HEADERS = [(b"content-type", b"application/json")]


def _setup(contender: str, scenario: str = "fastapi") -> tuple[Any, Any, _Kept]:
    """The app for ``contender``, its flush, and what its exporter saw."""
    kept = _Kept()
    app = make_app() if scenario == "fastapi" else raw_app
    if contender == "us":
        from telemetry_run.instrumentors import plugin
        from telemetry_run.instrumentors.starlette import StarletteInstrumentor
        from telemetry_run.sdk import BatchSpanProcessor, ExportResult, TracerProvider
        from telemetry_run.testing import config_for

        class Discarding:
            def export(self, spans: Any, *, deadline: float) -> Any:
                kept.spans.extend((s.name, s.kind.name) for s in spans)
                return ExportResult(True)

            def force_flush(self, *, deadline: float) -> bool:
                return True

            def shutdown(self, *, deadline: float) -> None:
                return None

        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(Discarding()))
        if scenario == "fastapi":
            StarletteInstrumentor().instrument(provider, config_for(plugin, {}))
            return app, provider.force_flush, kept
        import uvicorn

        from telemetry_run.instrumentors.asgi import AsgiInstrumentor

        AsgiInstrumentor().instrument(provider, config_for(plugin, {}))
        config = uvicorn.Config(app, lifespan="off", ws="none", proxy_headers=False)
        config.load()  # what uvicorn does in the process that serves
        return config.loaded_app, provider.force_flush, kept
    if contender == "otel":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider as OtelProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor as OtelBatch,
        )
        from opentelemetry.sdk.trace.export import (
            SpanExporter,
            SpanExportResult,
        )

        class OtelDiscarding(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                kept.spans.extend((s.name, s.kind.name) for s in spans)
                return SpanExportResult.SUCCESS

        otel_provider = OtelProvider()
        otel_provider.add_span_processor(OtelBatch(OtelDiscarding()))
        if scenario == "fastapi":
            FastAPIInstrumentor.instrument_app(app, tracer_provider=otel_provider)
            return app, otel_provider.force_flush, kept
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        wrapped = OpenTelemetryMiddleware(app, tracer_provider=otel_provider)
        return wrapped, otel_provider.force_flush, kept
    return app, lambda: True, kept


def worker(contender: str, scenario: str, requests: int, reps: int) -> dict[str, Any]:
    app, flush, kept = _setup(contender, scenario)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(_requests(app, CHECK_REQUESTS))
    flush()
    servers = [name for name, kind in kept.spans if kind == "SERVER"]
    if scenario == "fastapi":
        ok = contender == "bare" or servers == [SPAN_NAME] * CHECK_REQUESTS
    else:  # no route to name it from: ours says ``GET``, the peer ``GET /items/42``
        ok = contender == "bare" or len(servers) == CHECK_REQUESTS
    check = {"server_spans": len(servers), "names": sorted(set(servers)), "ok": ok}
    times: list[float] = []
    for _ in range(reps):
        started = time.perf_counter()
        loop.run_until_complete(_requests(app, requests))
        times.append((time.perf_counter() - started) / requests * 1e6)
        flush()
    loop.close()
    return {"us_per_request": statistics.median(times), "check": check}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=CONTENDERS)
    parser.add_argument("--scenario", choices=SCENARIOS, default="fastapi")
    parser.add_argument("--requests", type=int)
    parser.add_argument("--reps", type=int)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.scenario, args.requests, args.reps)))
        return
    size = QUICK if args.quick else FULL
    shown = versions(
        "fastapi",
        "uvicorn",
        "opentelemetry-instrumentation-fastapi",
        "opentelemetry-instrumentation-asgi",
    )
    print(f"# An ASGI request, in-process ({shown})")
    for scenario, title in SCENARIOS.items():
        print(f"\n## {scenario}: {title}")
        run_scenario(scenario, size)


def run_scenario(scenario: str, size: dict[str, int]) -> None:
    results: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    failed: dict[str, str] = {}
    for _ in range(size["rounds"]):
        for contender in CONTENDERS:
            if contender in failed:
                continue
            command = [
                sys.executable,
                __file__,
                "--worker",
                contender,
                "--scenario",
                scenario,
                "--requests",
                str(size["requests"]),
                "--reps",
                str(size["reps"]),
            ]
            result = run_worker(command, os.environ, WORKER_TIMEOUT)
            if "error" in result:
                failed[contender] = result["error"]
                continue
            if not result["check"]["ok"]:
                failed[contender] = f"check failed: {result['check']}"
                continue
            results[contender].append(result["us_per_request"])
    medians = {c: statistics.median(v) for c, v in results.items() if v}
    bare = medians.get("bare")
    print(f"{'contender':<10} {'us/request':>11} {'added':>9}")
    for contender in CONTENDERS:
        if contender in failed:
            print(f"{contender:<10} FAILED: {failed[contender]}")
            continue
        added = medians[contender] - bare if bare is not None else float("nan")
        print(f"{contender:<10} {medians[contender]:>11.1f} {added:>9.1f}")
    if bare is not None and "us" in medians and "otel" in medians:
        ours, theirs = medians["us"] - bare, medians["otel"] - bare
        print(f"us/otel (added cost): {ours / theirs:.2f}x" if theirs > 0 else "us/otel: n/a")


if __name__ == "__main__":
    main()
