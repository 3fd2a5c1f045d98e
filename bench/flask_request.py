"""Cost per Flask request and per requests call: bare vs telemetry-run vs opentelemetry vs ddtrace.

Scenarios (the same Flask app throughout: ``GET /users/<int:user_id>`` returning a small JSON):

  inproc    the app driven by ``app.test_client()`` in one process (body read, response
            closed): bare, our FlaskInstrumentor, opentelemetry-instrumentation-flask and
            ddtrace's flask integration, each exporting into a batch processor whose exporter
            discards (ddtrace: its trace writer discards). One worker subprocess per contender
            and round.
  server    the app under gunicorn (1 sync worker) started by each launcher: ``gunicorn``,
            ``telemetry-run gunicorn``, ``opentelemetry-instrument gunicorn``, ``ddtrace-run
            gunicorn``. Ours and OpenTelemetry's export OTLP/gRPC to the real receiver we ship
            (``telemetry_run.testing.otlp.OTLPReceiver``), one each, in processes of their own.
            The four servers of a round run side by side and the benchmark sends them
            sequential requests in blocks of 50, in turn, a new connection each
            (``Connection: close``: the sync worker closes after every response anyway); a
            tracer's added time is the median of its block medians minus bare's in the same
            turn.
  requests  ``requests.Session().get(url)`` to a local keep-alive ``http.server`` (a thread in
            the same worker): bare, our RequestsInstrumentor, opentelemetry-instrumentation-
            requests, ddtrace ``patch(requests=True)``.

Before anything is timed, each contender must show it traces: exactly one server span (client
span for requests) per request, with the route's name, counted where its spans end up (the
discarding exporter, ddtrace's replaced writer, the OTLP receiver). A contender that fails a
check is FAILED, so a broken setup cannot produce a fast number.

Figures are median microseconds per request; ``added`` is a contender's median minus bare's
(in the server scenario, the median of the paired block differences),
and ``us/otel``, ``us/dd`` divide our added time by theirs (below 1.00x we add less).

With ``--metrics`` ours and OpenTelemetry's also record their duration histogram
(``http.server.request.duration``, ``http.client.request.duration``) into a real meter provider
(in-process: a reader that collects only when asked; under the launchers:
``OTEL_METRICS_EXPORTER=otlp``), and each worker checks the histogram counted its requests;
ddtrace records none. Compare a run with and without it for what metrics cost.

    python bench/flask_request.py [--quick] [-v] [--metrics] [--scenarios inproc,server,requests]
"""

# Worker processes import only their own contender, and gunicorn imports this module for
# ``make_app()``: the module level imports the standard library only.

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import DD_NO_AGENT, DD_QUIET, stop_helper, versions

CONTENDERS = ("bare", "us", "otel", "dd")
TRACERS = ("us", "otel", "dd")
LABELS = {"bare": "bare", "us": "us", "otel": "otel", "dd": "ddtrace", "limit": "limit"}
# In-process, a "limit" worker runs too: the least a tracer of this request must do, by hand.
INPROC_CONTENDERS = (*CONTENDERS, "limit")
SCENARIOS = {
    "inproc": "Flask app.test_client() request, in-process",
    "server": "gunicorn (1 sync worker) under each launcher, one request per connection",
    "requests": "requests.Session().get() to a local keep-alive http.server",
}
SERVER_LABELS = {
    "bare": "gunicorn",
    "us": "telemetry-run gunicorn",
    "otel": "opentelemetry-instrument gunicorn",
    "dd": "ddtrace-run gunicorn",
}
TARGETS = {"inproc": 0.15, "server": 0.15}  # our added cost over OpenTelemetry's (issue #19)
ROUTE = "/users/<int:user_id>"
PATH = "/users/42"
EXPECTED_BODY = {"id": 42, "name": "user-42"}
SPAN_NAME = f"GET {ROUTE}"
PROBE_PATH = "/_bench/probe"
#: ``--metrics``: the contenders that can also record their duration histogram (inherited by
#: the workers through the environment).
METRICS = os.environ.get("BENCH_METRICS") == "1"
#: The duration histograms: the conventions' (ours), and the older names OpenTelemetry's
#: instrumentations record by default (``OTEL_SEMCONV_STABILITY_OPT_IN`` unset).
DURATIONS = frozenset(
    f"http.{side}.{name}"
    for side in ("server", "client")
    for name in ("request.duration", "duration")
)
CHECK_REQUESTS = 20  # untimed requests whose spans every worker inspects before timing
WORKER_TIMEOUT = 180.0
SERVER_READY_TIMEOUT = 60.0
SERVER_STOP_TIMEOUT = 20.0
RECEIVER_WAIT = 15.0  # for the last spans after the server stopped
SERVER_BLOCK = 50  # timed requests to one server before the next one's turn
BENCH_DIR = Path(__file__).resolve().parent
APP_SPEC = f"{Path(__file__).stem}:make_app()"
OTLP_EXPORTER_DIST = "opentelemetry-exporter-otlp-proto-grpc"
FULL = {
    "rounds": 5,
    "reps": 5,
    "inproc": 1000,
    "requests": 1000,
    "server": 1500,
    "server_warmup": 200,
}
QUICK = {
    "rounds": 2,
    "reps": 3,
    "inproc": 500,
    "requests": 300,
    "server": 400,
    "server_warmup": 100,
}

# ddtrace must trace for real but never reach the network: these plus a discarding writer
# (in-process), or an agent it cannot reach (under ddtrace-run): the values of span_start_end.py.
DD_ENV = {
    **DD_QUIET,
    **DD_NO_AGENT,
    "DD_TRACE_PROPAGATION_STYLE": "tracecontext",
}


def _otlp_env(endpoint: str) -> dict[str, str]:
    """Ours and opentelemetry-instrument: OTLP/gRPC traces to the receiver, nothing else."""
    return {
        "OTEL_SERVICE_NAME": "bench",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp" if METRICS else "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }


# -- the application (also what gunicorn loads) ----------------------------------------------


def make_app() -> Any:
    """The benchmark's Flask app; gunicorn loads it as ``flask_request:make_app()``."""
    import flask

    app = flask.Flask("bench_app", root_path=str(BENCH_DIR))  # not a module: no lookup

    @app.route(ROUTE)
    def user(user_id: int) -> Any:
        return {"id": user_id, "name": f"user-{user_id}"}

    @app.route(PROBE_PATH)
    def probe() -> Any:
        return _probe()

    return app


def _probe() -> dict[str, Any]:
    """Which tracers this process loaded, and whether each one traces the current request."""
    found: dict[str, Any] = {"pid": os.getpid(), "us": None, "otel": None, "dd": None}
    if "telemetry_run" in sys.modules:
        from telemetry_run import trace as us_trace

        found["us"] = us_trace.get_current_span().is_recording()
    if "opentelemetry.sdk.trace" in sys.modules:  # our OTLP exporter loads opentelemetry.proto
        from opentelemetry import trace as otel_trace

        found["otel"] = otel_trace.get_current_span().is_recording()
    if "ddtrace" in sys.modules:
        from ddtrace.trace import tracer

        root = tracer.current_root_span()
        found["dd"] = root.name if root is not None else ""
    return found


def _probe_ok(contender: str, found: dict[str, Any]) -> bool:
    """Bare: no tracer at all; otherwise the contender's own tracer traces, and no other."""
    wanted = {"us": True, "otel": True, "dd": "flask.request"}
    return all(found.get(key) == (wanted[key] if key == contender else None) for key in TRACERS)


def _check_body(status: int, body: bytes) -> None:
    if status != 200 or json.loads(body) != EXPECTED_BODY:
        raise RuntimeError(f"unexpected response {status}: {body[:200]!r}")


# -- in-process contenders (each imported only inside its own worker process) --------------------


@dataclass
class Bench:
    """One contender set up for one in-process scenario."""

    run: Callable[[int], None]  # n operations
    check: Callable[[], dict[str, Any]]  # CHECK_REQUESTS operations, inspected; raises if wrong
    exported: Callable[[], int] = lambda: -1  # spans that reached the exporter (or writer)
    flush: Callable[[], Any] = lambda: None
    note: str = ""


@dataclass
class _Collector:
    """What each contender's discarding exporter (or writer) keeps: a count, and while
    ``kept`` is a list, a summary of each span: (name, kind, route or trace id)."""

    count: int = 0
    kept: list[tuple[Any, ...]] | None = None

    def take(self) -> list[tuple[Any, ...]]:
        kept, self.kept = self.kept or [], None
        return kept


def _test_client_ops(client: Any) -> tuple[Callable[[int], None], Callable[[], None]]:
    def run(n: int) -> None:
        for _ in range(n):
            response = client.get(PATH)
            response.get_data()
            response.close()

    def checked() -> None:
        for _ in range(CHECK_REQUESTS):
            response = client.get(PATH)
            _check_body(response.status_code, response.get_data())
            response.close()

    return run, checked


class _LocalServer:
    """A keep-alive ``http.server`` on 127.0.0.1 in a thread: the requests scenario's peer."""

    RESPONSE = json.dumps(EXPECTED_BODY).encode()

    def __init__(self) -> None:
        import http.server

        self.traceparents: list[str | None] | None = None  # recorded during checks only
        outer = self
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.RESPONSE)}\r\n\r\n"
        ).encode()
        message = head + self.RESPONSE

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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"
        threading.Thread(target=self.server.serve_forever, name="bench-http", daemon=True).start()


def _requests_ops(local: _LocalServer) -> tuple[Callable[[int], None], Callable[[], None]]:
    import requests

    session = requests.Session()
    url = local.url

    def run(n: int) -> None:
        for _ in range(n):
            session.get(url).content  # noqa: B018  # the body is read, as a caller would

    def checked() -> None:
        for _ in range(CHECK_REQUESTS):
            response = session.get(url)
            _check_body(response.status_code, response.content)

    return run, checked


def _verify(
    kept: list[tuple[Any, ...]], expected: tuple[Any, ...], what: str, **info: Any
) -> dict[str, Any]:
    """Exactly one span per checked request, each ``expected``; raises otherwise."""
    wrong = [summary for summary in kept if summary != expected]
    if len(kept) != CHECK_REQUESTS or wrong:
        raise RuntimeError(
            f"expected {CHECK_REQUESTS} {what} spans {expected}, got {len(kept)}"
            f" ({len(wrong)} different, first: {wrong[:1]})"
        )
    return {"spans_checked": len(kept), "span": list(expected), **info}


def _check_traceparents(
    local: _LocalServer | None, kept: list[tuple[Any, ...]], sent: list[str | None]
) -> dict[str, Any]:
    """Each client span's trace id arrived in the traceparent header of its request."""
    span_ids = sorted(summary[2] for summary in kept)
    header_ids = sorted((tp or "--").split("-")[1] for tp in sent)
    if span_ids != header_ids:
        raise RuntimeError(
            f"traceparent trace ids {header_ids[:2]} != span trace ids {span_ids[:2]}"
        )
    return {"traceparent": sent[0]}


def _setup_bare(scenario: str) -> Bench:
    if scenario == "inproc":
        run, checked = _test_client_ops(make_app().test_client())
    else:
        local = _LocalServer()
        run, checked = _requests_ops(local)

    def check() -> dict[str, Any]:
        if scenario == "requests":
            local.traceparents = []
        checked()
        loaded = sorted({"telemetry_run", "opentelemetry", "ddtrace"} & set(sys.modules))
        if loaded:
            raise RuntimeError(f"bare loaded tracers: {loaded}")
        if scenario == "requests":
            sent, local.traceparents = local.traceparents or [], None
            if any(sent):
                raise RuntimeError(f"bare sent traceparent headers: {sent[:1]}")
        return {"loaded_tracers": loaded}

    return Bench(run=run, check=check)


def _setup_us(scenario: str) -> Bench:
    from telemetry_run.instrumentors import plugin
    from telemetry_run.sdk import BatchSpanProcessor, ExportResult, TracerProvider
    from telemetry_run.testing import config_for

    collector = _Collector()

    class DiscardingExporter:
        def export(self, spans: Any, *, deadline: float) -> Any:
            collector.count += len(spans)
            if collector.kept is not None:
                collector.kept.extend(
                    (
                        s.name,
                        s.kind.name,
                        s.attributes.get("http.route")
                        if scenario == "inproc"
                        else f"{s.get_span_context().trace_id:032x}",
                    )
                    for s in spans
                )
            return ExportResult(True)

        def force_flush(self, *, deadline: float) -> bool:
            return True

        def shutdown(self, *, deadline: float) -> None:
            return None

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    config = config_for(plugin, {})
    local: _LocalServer | None = None
    measured = _our_metrics() if METRICS else None
    if scenario == "inproc":
        from telemetry_run.instrumentors.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument(provider, config)
        run, checked = _test_client_ops(make_app().test_client())
        expected: tuple[Any, ...] = (SPAN_NAME, "SERVER", ROUTE)
    else:
        from telemetry_run.instrumentors.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument(provider, config)
        local = _LocalServer()
        run, checked = _requests_ops(local)
        expected = ("GET", "CLIENT")

    def check() -> dict[str, Any]:
        info = _checked(checked, collector, provider.force_flush, expected, local)
        return _metrics_checked(info, measured)

    return Bench(run=run, check=check, exported=lambda: collector.count, flush=provider.force_flush)


def _our_metrics() -> Callable[[], int]:
    """Our process's meter provider, with a reader: the requests its histogram counted."""
    from telemetry_run.sdk.metrics import InMemoryMetricReader, MeterProvider, set_meter_provider

    reader = InMemoryMetricReader()
    set_meter_provider(MeterProvider([reader]))

    def counted() -> int:
        return sum(
            point.count
            for metric in reader.collect().metrics()
            if metric.name in DURATIONS
            for point in metric.data.data_points
        )

    return counted


def _otel_metrics() -> tuple[Any, Callable[[], int]]:
    """An OpenTelemetry meter provider with a reader, and the requests its histogram counted."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()

    def counted() -> int:
        data = reader.get_metrics_data()
        return sum(
            point.count
            for resource in (data.resource_metrics if data else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name in DURATIONS
            for point in metric.data.data_points
        )

    return MeterProvider(metric_readers=[reader]), counted


def _metrics_checked(info: dict[str, Any], measured: Callable[[], int] | None) -> dict[str, Any]:
    """With ``--metrics``: the checked requests were counted by the duration histogram."""
    if measured is not None:
        counted = measured()
        if counted < CHECK_REQUESTS:
            raise RuntimeError(f"the duration histogram counted {counted} requests")
        info["histogram_counted"] = counted
    return info


def _checked(
    checked: Callable[[], None],
    collector: _Collector,
    flush: Callable[[], Any],
    expected: tuple[Any, ...],
    local: _LocalServer | None,
) -> dict[str, Any]:
    """Run the checked requests and verify what reached the exporter (and the local server)."""
    flush()
    collector.kept = []
    if local is not None:
        local.traceparents = []
    checked()
    flush()
    kept = collector.take()
    if local is None:
        return _verify(kept, expected, "server")
    sent, local.traceparents = local.traceparents or [], None
    info = _check_traceparents(local, kept, sent)
    return _verify([k[:2] for k in kept], expected, "client", **info)


def _setup_otel(scenario: str) -> Bench:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    collector = _Collector()

    class DiscardingExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            collector.count += len(spans)
            if collector.kept is not None:
                collector.kept.extend(
                    (
                        s.name,
                        s.kind.name,
                        (s.attributes or {}).get("http.route")
                        if scenario == "inproc"
                        else f"{s.context.trace_id:032x}",
                    )
                    for s in spans
                )
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    local: _LocalServer | None = None
    meters, measured = _otel_metrics() if METRICS else (None, None)
    if scenario == "inproc":
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        app = make_app()
        FlaskInstrumentor().instrument_app(app, tracer_provider=provider, meter_provider=meters)  # type: ignore[no-untyped-call]
        run, checked = _test_client_ops(app.test_client())
        expected: tuple[Any, ...] = (SPAN_NAME, "SERVER", ROUTE)
    else:
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        RequestsInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)
        local = _LocalServer()
        run, checked = _requests_ops(local)
        expected = ("GET", "CLIENT")

    def check() -> dict[str, Any]:
        info = _checked(checked, collector, provider.force_flush, expected, local)
        return _metrics_checked(info, measured)

    return Bench(run=run, check=check, exported=lambda: collector.count, flush=provider.force_flush)


def _setup_dd(scenario: str) -> Bench:
    import ddtrace

    ddtrace.patch(**{"flask" if scenario == "inproc" else "requests": True})  # before the import
    from ddtrace.internal.writer import TraceWriter
    from ddtrace.trace import tracer

    collector = _Collector()
    kind = "server" if scenario == "inproc" else "client"

    class DiscardingWriter(TraceWriter):
        """Takes the place of the agent writer: counts the finished spans, sends nothing."""

        def recreate(self, appsec_enabled: Any = None, llmobs_enabled: Any = None) -> Any:
            return self

        def stop(self, timeout: float | None = None) -> None:
            return None

        def write(self, spans: Any = None) -> None:
            if not spans:
                return
            collector.count += len(spans)
            if collector.kept is not None:
                # One chunk per request: its spans of our kind (exactly one expected).
                collector.kept.append(
                    tuple(
                        (
                            s.resource if kind == "server" else s.name,
                            kind.upper(),
                            s.get_tag("http.route") if kind == "server" else f"{s.trace_id:032x}",
                        )
                        for s in spans
                        if s.get_tag("span.kind") == kind
                    )
                )

        def flush_queue(self) -> None:
            return None

    aggregator = tracer._span_aggregator
    replaced = aggregator.writer
    aggregator.writer = DiscardingWriter()  # before any span finishes: the real one never starts
    shutdown_exporter = getattr(replaced, "shutdown_exporter", None)
    if shutdown_exporter is not None:  # the native writer's agent-info poller
        shutdown_exporter()

    local: _LocalServer | None = None
    if scenario == "inproc":
        run, checked = _test_client_ops(make_app().test_client())
        expected: tuple[Any, ...] = (SPAN_NAME, "SERVER", ROUTE)
    else:
        local = _LocalServer()
        run, checked = _requests_ops(local)
        expected = ("requests.request", "CLIENT")

    def check() -> dict[str, Any]:
        collector.kept = []
        if local is not None:
            local.traceparents = []
        checked()
        chunks = collector.take()
        several = [chunk for chunk in chunks if len(chunk) != 1]
        if several:
            raise RuntimeError(f"a trace with {len(several[0])} {kind} spans: {several[0]}")
        kept = [chunk[0] for chunk in chunks]
        info = {
            "replaced_writer": type(replaced).__name__,
            "spans_per_request": collector.count / CHECK_REQUESTS,
        }
        if local is None:
            return _verify(kept, expected, "server", **info)
        sent, local.traceparents = local.traceparents or [], None
        info.update(_check_traceparents(local, kept, sent))
        return _verify([k[:2] for k in kept], expected, "client", **info)

    return Bench(run=run, check=check, exported=lambda: collector.count)


def _setup_limit(scenario: str) -> Bench:
    """The floor for ``inproc``: the same span content made by two plain function wrappers.

    ``wsgi_app`` reads the ``traceparent`` (absent here), makes a span current in a
    contextvar, notes the status through ``start_response`` and, once the body is produced,
    appends one tuple (name, ids, times, the attributes ours records) to a list that a
    "batch" of 512 empties; ``full_dispatch_request`` notes the route. No processor thread, no
    attribute validation, no error containment, the span ends when ``wsgi_app`` returns (the
    body is already produced): a floor no tracer can go below, not a contender.
    """
    if scenario != "inproc":
        raise RuntimeError("the limit worker has only the inproc scenario")
    import contextvars
    import random

    import flask

    collector = _Collector()
    spans: list[tuple[Any, ...]] = []
    current: contextvars.ContextVar[Any] = contextvars.ContextVar("limit_span", default=None)
    time_ns, bits = time.time_ns, random.getrandbits
    request_var = flask.globals._cv_request
    original_app, original_dispatch = flask.Flask.wsgi_app, flask.Flask.full_dispatch_request
    versions = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0", "HTTP/2.0": "2"}

    def export(batch: list[tuple[Any, ...]]) -> None:
        collector.count += len(batch)
        if collector.kept is not None:
            collector.kept.extend((span[0], "SERVER", span[5].get("http.route")) for span in batch)
        batch.clear()

    def full_dispatch_request(self: Any) -> Any:
        request = request_var.get().request
        rule = request.url_rule
        if rule is not None:
            request.environ["limit.route"] = rule.rule
        return original_dispatch(self)

    def wsgi_app(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        start = time_ns()
        parent = environ.get("HTTP_TRACEPARENT")  # absent: a root span
        span_id = bits(64)
        token = current.set((span_id, parent))
        status: list[str] = []

        def noted(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info)

        try:
            body = original_app(self, environ, noted)
        finally:
            current.reset(token)
        method = environ["REQUEST_METHOD"]
        host, _, port = environ["HTTP_HOST"].partition(":")
        route = environ.get("limit.route")
        attributes = {
            "http.request.method": method,
            "url.scheme": environ["wsgi.url_scheme"],
            "url.path": environ["SCRIPT_NAME"] + environ["PATH_INFO"],
            "server.address": host,
            "server.port": int(port) if port else 80,
            "client.address": environ["REMOTE_ADDR"],
            "network.peer.address": environ["REMOTE_ADDR"],
            "user_agent.original": environ.get("HTTP_USER_AGENT"),
            "network.protocol.version": versions.get(environ["SERVER_PROTOCOL"]),
            "http.route": route,
            "http.response.status_code": int(status[0][:3]),
        }
        name = f"{method} {route}" if route else method
        spans.append((name, bits(128), span_id, start, time_ns(), attributes))
        if len(spans) >= 512:
            export(spans)
        return body

    flask.Flask.wsgi_app = wsgi_app  # type: ignore[method-assign]
    flask.Flask.full_dispatch_request = full_dispatch_request  # type: ignore[method-assign]
    run, checked = _test_client_ops(make_app().test_client())

    def check() -> dict[str, Any]:
        return _checked(
            checked, collector, lambda: export(spans), (SPAN_NAME, "SERVER", ROUTE), None
        )

    return Bench(
        run=run, check=check, exported=lambda: collector.count, flush=lambda: export(spans)
    )


SETUPS = {
    "bare": _setup_bare,
    "us": _setup_us,
    "otel": _setup_otel,
    "dd": _setup_dd,
    "limit": _setup_limit,
}


# -- worker -----------------------------------------------------------------------------------


def worker(contender: str, scenario: str, n: int, reps: int, profile: bool) -> dict[str, Any]:
    bench = SETUPS[contender](scenario)
    info = bench.check()  # before timing: a broken setup fails here
    info["exported_per_request"] = None
    warmup = max(n // 5, 200)
    bench.run(warmup)
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(bench.run, n)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(30)
        return {"contender": contender, "scenario": scenario, "profiled": n}
    bench.flush()
    gc.collect()
    before = bench.exported()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        bench.run(n)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    bench.flush()
    if before >= 0:  # spans that reached the exporter per timed request (1.0: none dropped)
        info["exported_per_request"] = (bench.exported() - before) / (n * reps)
    info["threads"] = sorted(t.name for t in threading.enumerate())
    return {"contender": contender, "scenario": scenario, "samples": samples, "info": info}


def _worker_env(contender: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DD_"))}
    env = {k: v for k, v in env.items() if not k.startswith("TELEMETRY_RUN_")}
    if contender == "dd":
        env.update(DD_ENV)
    return env


def _spawn(contender: str, scenario: str, n: int, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender]
    cmd += ["--scenario", scenario, "--n", str(n), "--reps", str(reps)]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
            env=_worker_env(contender),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                result: dict[str, Any] = json.loads(line)
                return result
    return {"error": f"exit {proc.returncode}: {_last_line(proc.stderr)}"}


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


# -- the server scenario: gunicorn under each launcher ---------------------------------------


class _ReceiverProcess:
    """An ``OTLPReceiver`` (gRPC) in a child process, driven over stdin/stdout: in the
    benchmark's own process its decoding would take the GIL from the client being timed."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_worker_env("bare"),
        )
        self.endpoint: str = self._read()["grpc"]

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the receiver process ended (exit {self._proc.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def take(self, expected: int = 0, timeout: float = 0.0) -> dict[str, Any]:
        """What arrived since the last take (waiting up to ``timeout`` for ``expected`` server
        spans named like the route), then forget it."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{expected} {timeout}\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        stop_helper(self._proc)


def receiver_main() -> None:
    """``--receiver``: serve OTLP/gRPC on 127.0.0.1 until stdin closes."""
    from telemetry_run.testing.otlp import OTLPReceiver

    server_kind = 2  # SPAN_KIND_SERVER

    def summary(receiver: OTLPReceiver) -> dict[str, Any]:
        with receiver._lock:  # a consistent snapshot
            requests = list(receiver.requests)
            failed = len(receiver.attempts) - len(requests)
        names: dict[str, int] = {}
        routes = 0
        for request in requests:
            for span in request.spans:
                key = f"{span.name} ({'server' if span.kind == server_kind else span.kind})"
                names[key] = names.get(key, 0) + 1
                if span.kind == server_kind and span.name == SPAN_NAME:
                    routes += any(
                        a.key == "http.route" and a.value.string_value == ROUTE
                        for a in span.attributes
                    )
        return {"route_spans": routes, "names": names, "calls": len(requests), "failed": failed}

    receiver = OTLPReceiver(http=False).start()
    print(json.dumps({"grpc": receiver.grpc_endpoint}), flush=True)
    try:
        for command in sys.stdin:
            expected, timeout = command.split()
            deadline = time.monotonic() + float(timeout)
            result = summary(receiver)
            while result["route_spans"] < int(expected) and time.monotonic() < deadline:
                time.sleep(0.1)
                result = summary(receiver)
            receiver.reset()
            print(json.dumps(result), flush=True)
    finally:
        receiver.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One request on a new connection (``Connection: close``), the body read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Launcher:
    """How to start gunicorn for one contender."""

    key: str
    prefix: list[str] | None  # argv before gunicorn's; None: not available
    env: dict[str, str]
    how: str
    notes: set[str] = field(default_factory=set)


def _launchers(endpoints: dict[str, str]) -> dict[str, Launcher]:
    """How to start each contender's server; ours and OpenTelemetry's export to the receiver
    ``endpoints`` names for each (one receiver each: the spans counted are that server's)."""
    bindir = Path(sys.executable).parent

    def script(name: str) -> str | None:
        path = bindir / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None

    base = _worker_env("bare")
    us_otlp = _otlp_env(endpoints["us"]) if "us" in endpoints else {}
    otel_otlp = _otlp_env(endpoints["otel"]) if "otel" in endpoints else {}
    us = script("telemetry-run")
    us_prefix = [us] if us else [sys.executable, "-m", "telemetry_run"]
    otel, dd = script("opentelemetry-instrument"), script("ddtrace-run")
    launchers = {
        "bare": Launcher("bare", [], base, "no launcher"),
        "us": Launcher("us", us_prefix, base | us_otlp, " ".join(us_prefix)),
        "otel": Launcher(
            "otel", [otel] if otel else None, base | otel_otlp, otel or "not installed"
        ),
        "dd": Launcher("dd", [dd] if dd else None, base | DD_ENV, dd or "not installed"),
    }
    for key in ("us", "otel"):
        if key not in endpoints:
            launchers[key].prefix = None
            launchers[key].how = "no OTLP receiver"
    if "otel" in endpoints and otel and not _has_otel_otlp_exporter(launchers["otel"].env):
        launchers["otel"].prefix = None
        launchers[
            "otel"
        ].how = f"no 'otlp_proto_grpc' traces exporter: pip install {OTLP_EXPORTER_DIST}"
    return launchers


def _has_otel_otlp_exporter(env: dict[str, str]) -> bool:
    """opentelemetry-instrument resolves ``otlp`` to this entry point (in the server's env)."""
    code = (
        "from importlib import metadata\n"
        "eps = metadata.entry_points(group='opentelemetry_traces_exporter')\n"
        "print('otlp_proto_grpc' in {e.name for e in eps})"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    return proc.stdout.strip() == "True"


@functools.cache
def _gunicorn_extra() -> tuple[str, ...]:
    """gunicorn >= 25 opens a control socket at one fixed path per user: several servers at
    once (ours, or anyone's tests) would fight over it. Off, where the option exists."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    help_text = subprocess.run(
        [gunicorn, "--help"], capture_output=True, text=True, check=False
    ).stdout
    return ("--no-control-socket",) if "--no-control-socket" in help_text else ()


class _Server:
    """gunicorn under one launcher, in its own process group; stopped by its PID."""

    def __init__(self, launcher: Launcher, output: Any) -> None:
        assert launcher.prefix is not None
        self.port = _free_port()
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        argv = [*launcher.prefix, gunicorn, "-w", "1", "-k", "sync"]
        argv += ["-b", f"127.0.0.1:{self.port}", "--pythonpath", str(BENCH_DIR)]
        argv += ["--log-level", "warning", "--graceful-timeout", "10", *_gunicorn_extra()]
        argv.append(APP_SPEC)
        self.output = output  # a file, not a pipe: a leftover child cannot block anything
        self.proc = subprocess.Popen(
            argv,
            env=launcher.env,
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group
        )

    def wait_ready(self) -> dict[str, Any]:
        """The probe's answer, once the worker serves; raises if the server died or hangs."""
        deadline = time.monotonic() + SERVER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}: {self.tail()}")
            try:
                status, body = _get(self.port, PROBE_PATH, timeout=5)
            except OSError:
                time.sleep(0.1)
                continue
            if status != 200:
                raise RuntimeError(f"probe answered {status}: {body[:200]!r}")
            found: dict[str, Any] = json.loads(body)
            return found
        raise RuntimeError(f"not serving after {SERVER_READY_TIMEOUT:.0f} s: {self.tail()}")

    def stop(self) -> int:
        """SIGTERM, a bounded wait, then SIGKILL to the group; the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the group we created, by its id
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 3) -> str:
        self.output.seek(0)
        text = self.output.read().strip().splitlines()
        return " | ".join(text[-lines:]) or "no output"

    def stderr_lines(self) -> list[str]:
        self.output.seek(0)
        return [line for line in self.output.read().splitlines() if line.strip()]


def _start_servers(
    launchers: dict[str, Launcher], receivers: dict[str, _ReceiverProcess], warmup: int
) -> tuple[dict[str, _Server], dict[str, str]]:
    """Every available contender's server, started at once, checked by its probe and warmed
    up; the failures by contender (their servers stopped)."""
    servers: dict[str, _Server] = {}
    failures: dict[str, str] = {}
    for key in CONTENDERS:
        launcher = launchers[key]
        if launcher.prefix is None:
            failures[key] = launcher.how
            continue
        if key in receivers:
            receivers[key].take()  # whatever came before
        output = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  # closed by _stop_server
        servers[key] = _Server(launcher, output)
    for key, server in list(servers.items()):
        try:
            found = server.wait_ready()
            if not _probe_ok(key, found):
                raise RuntimeError(f"the probe says the tracers are wrong: {found}")
            for i in range(warmup):
                status, body = _get(server.port, PATH)
                if i < CHECK_REQUESTS or status != 200:
                    _check_body(status, body)
        except Exception as exc:
            failures[key] = str(exc)[:300]
            _stop_server(servers.pop(key), launchers[key])
    return servers, failures


def _stop_server(server: _Server, launcher: Launcher) -> int:
    code = server.stop()
    for line in server.stderr_lines():
        launcher.notes.add(re.sub(r"\d+", "N", line)[:200])  # alike lines once
    server.output.close()
    return code


def _timed_block(port: int, n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _body = _get(port, PATH)
        latencies.append((time.perf_counter() - t0) * 1e6)
        if status != 200:
            raise RuntimeError(f"status {status} during timing")
    return latencies


def _run_server(n: int, warmup: int, rounds: int, verbose: bool) -> dict[str, Any]:
    """The four servers of a round run side by side and take the timed requests in blocks of
    ``SERVER_BLOCK``, in turn: a tracer's added time is the median, over every block, of its
    block's median minus bare's in the same turn. Paired so: on a shared 2-core machine,
    servers timed one after the other moved the rows by more than a tracer adds (bare's own
    median ranged 400-670 µs between rounds). The order is shuffled for each turn: a server's
    work after its block (an export) falls on whichever server comes next, and in a fixed
    order bare always came after ddtrace and was timed slower than ours."""
    print(f"\n== (server) {SCENARIOS['server']}")
    blocks = max(1, n // SERVER_BLOCK)
    print(
        f"   {warmup} warm-up + {blocks} x {SERVER_BLOCK} timed requests per server, side by"
        f" side, {rounds} rounds"
    )
    receivers: dict[str, _ReceiverProcess] = {}
    launchers: dict[str, Launcher] = {}
    error = ""
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    paired: dict[str, list[float]] = {c: [] for c in TRACERS}
    failures: dict[str, str] = {}
    try:
        try:
            for key in ("us", "otel"):
                receivers[key] = _ReceiverProcess()
        except Exception as exc:
            error = f"OTLP receiver: {exc}"
        launchers = _launchers({key: r.endpoint for key, r in receivers.items()})
        for key in CONTENDERS:
            print(f"   {SERVER_LABELS[key]}: {launchers[key].how}")
        if error:
            print(f"   note: {error}")
        for rnd in range(rounds):
            servers, failed = _start_servers(launchers, receivers, warmup)
            failures.update(failed)
            timed: dict[str, list[float]] = {key: [] for key in servers}
            try:
                if "bare" not in servers:
                    raise RuntimeError(f"bare gunicorn: {failures.get('bare')}")
                shuffle = random.Random(rnd).shuffle  # the same orders in every run
                for _block in range(blocks):
                    turn = list(servers)
                    shuffle(turn)  # each server follows each other one as often
                    medians: dict[str, float] = {}
                    for key in turn:
                        latencies = _timed_block(servers[key].port, SERVER_BLOCK)
                        timed[key].extend(latencies)
                        medians[key] = statistics.median(latencies)
                    for key in TRACERS:
                        if key in medians:
                            paired[key].append(medians[key] - medians["bare"])
            finally:
                codes = {
                    key: _stop_server(server, launchers[key]) for key, server in servers.items()
                }
            for key, latencies in timed.items():
                samples[key].extend(latencies)
                if key in receivers:
                    got = receivers[key].take(warmup + len(latencies), RECEIVER_WAIT)
                    if got["route_spans"] != warmup + len(latencies) or got["failed"]:
                        failures[key] = (
                            f"the receiver got {got['route_spans']} server spans {SPAN_NAME!r}"
                            f" for {warmup + len(latencies)} requests ({got['failed']} failed"
                            f" calls; {got['names']})"
                        )
                    if verbose and rnd == 0:
                        print(f"   [{LABELS[key]}] exit {codes[key]}, {json.dumps(got)}")
            print(
                f"   round {rnd + 1}: "
                + "  ".join(
                    f"{LABELS[key]} {statistics.median(timed[key]):.0f} µs" for key in timed
                )
            )
    finally:
        for receiver in receivers.values():
            receiver.close()
    for key, reason in failures.items():
        print(f"   FAILED ({SERVER_LABELS[key]}): {reason}")
        samples[key] = []
        paired.pop(key, None)
    for key, launcher in launchers.items():
        for note in sorted(launcher.notes)[:5]:
            print(f"   note ({SERVER_LABELS[key]}): output: {note}")
    medians = {c: statistics.median(s) if s else None for c, s in samples.items()}
    added = {c: statistics.median(paired[c]) if paired.get(c) else None for c in TRACERS}
    result = _report("server", medians, added)
    p90 = {
        c: statistics.quantiles(s, n=10, method="inclusive")[-1] if len(s) > 1 else None
        for c, s in samples.items()
    }
    print("   p90 µs/request: " + " | ".join(f"{LABELS[c]} {_fmt(p90[c])}" for c in CONTENDERS))
    return result


# -- the in-process scenarios ----------------------------------------------------------------


def _run_inproc(scenario: str, n: int, reps: int, rounds: int, verbose: bool) -> dict[str, Any]:
    print(f"\n== ({scenario}) {SCENARIOS[scenario]}")
    print(f"   N={n} x {reps} reps per worker, {rounds} rounds")
    running = INPROC_CONTENDERS if scenario == "inproc" else CONTENDERS
    samples: dict[str, list[float]] = {c: [] for c in INPROC_CONTENDERS}
    failures: dict[str, str] = {}
    delivered: dict[str, list[float]] = {}
    for rnd in range(rounds):
        order = running[rnd % len(running) :] + running[: rnd % len(running)]
        line = []
        for key in order:
            res = _spawn(key, scenario, n, reps)
            if "error" in res:
                failures[key] = res["error"]
                line.append(f"{LABELS[key]} FAILED")
                continue
            samples[key].extend(res["samples"])
            per_request = res["info"].get("exported_per_request")
            if per_request is not None:
                delivered.setdefault(key, []).append(per_request)
            line.append(f"{LABELS[key]} {statistics.median(res['samples']):.1f} µs")
            if verbose and rnd == 0:
                print(f"   [{LABELS[key]}] {json.dumps(res['info'])}")
        print(f"   round {rnd + 1}: " + "  ".join(line))
    for key, reason in failures.items():
        print(f"   FAILED ({LABELS[key]}): {reason}")
    for key, values in delivered.items():
        if any(abs(v - 1) > 1e-9 for v in values):
            print(
                f"   note ({LABELS[key]}): spans exported per timed request, per round: "
                + ", ".join(f"{v:.3f}" for v in values)
            )
    medians = {c: statistics.median(s) if s else None for c, s in samples.items()}
    return _report(scenario, medians)


# -- reporting --------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "n/a" if ours is None or theirs is None or theirs <= 0 else f"{ours / theirs:.2f}x"


def _report(
    scenario: str,
    medians: dict[str, float | None],
    paired: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """The medians and each tracer's added time: ``paired`` where the scenario measured it in
    pairs, else its median minus bare's."""
    bare = medians["bare"]
    added = (
        paired
        if paired is not None
        else {
            c: None if m is None or bare is None else m - bare
            for c, m in medians.items()
            if c != "bare"
        }
    )
    print(
        "   median µs/request: " + " | ".join(f"{LABELS[c]} {_fmt(medians[c])}" for c in CONTENDERS)
    )
    print(
        "   added µs over bare: "
        + " | ".join(f"{LABELS[c]} {_fmt(added[c], sign=True)}" for c in TRACERS)
        + (f" | limit {_fmt(added['limit'], sign=True)}" if "limit" in added else "")
        + f"   us/otel {_ratio(added['us'], added['otel'])}"
        + f"   us/dd {_ratio(added['us'], added['dd'])}"
    )
    return {"scenario": scenario, "medians": medians, "added": added}


def _versions() -> str:
    return versions(
        "telemetry-run",
        "flask",
        "werkzeug",
        "requests",
        "gunicorn",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-flask",
        "opentelemetry-instrumentation-requests",
        OTLP_EXPORTER_DIST,
        "ddtrace",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer requests")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each worker's checks")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="e.g. 'inproc,server'")
    parser.add_argument(
        "--metrics", action="store_true", help="ours and otel record their duration histogram"
    )
    parser.add_argument("--worker", choices=INPROC_CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=("inproc", "requests"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=2000, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}")

    if args.metrics:
        global METRICS
        METRICS = True
        os.environ["BENCH_METRICS"] = "1"  # the workers' and the servers' environment
    if args.receiver:
        receiver_main()
        return
    if args.worker:
        if args.scenario is None:
            parser.error("--worker needs --scenario inproc or requests")
        result = worker(args.worker, args.scenario, args.n, args.reps, args.profile)
        print(json.dumps(result), flush=True)
        return

    # Requests per timed repetition (in-process) or per server, and the rounds: the full run
    # takes about 6 minutes on 2 cores, --quick about 1.
    plan = QUICK if args.quick else FULL
    rounds, reps = plan["rounds"], plan["reps"]
    print(f"flask_request: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, GC enabled")
    print(f"   {_versions()}")
    if METRICS:
        print("   metrics on: ours and otel also record their duration histogram")
    started = time.perf_counter()
    results = []
    for scenario in scenarios:
        if scenario == "server":
            results.append(_run_server(plan["server"], plan["server_warmup"], rounds, args.verbose))
        else:
            results.append(_run_inproc(scenario, plan[scenario], reps, rounds, args.verbose))

    print(
        f"\n== summary ({time.perf_counter() - started:.0f} s; median µs per request,"
        " +µs = added over bare; ratio < 1.00x: we add less)"
    )
    header = f"{'scenario':<10} {'bare':>8} {'us':>8} {'otel':>8} {'ddtrace':>8}"
    header += f" {'us +µs':>8} {'otel +µs':>9} {'dd +µs':>8} {'limit +µs':>9}"
    header += f" {'us/otel':>8} {'us/dd':>7}"
    print(header)
    print("-" * len(header))
    for res in results:
        med, added = res["medians"], res["added"]
        print(
            f"{res['scenario']:<10}"
            + "".join(f" {_fmt(med[c]):>8}" for c in CONTENDERS)
            + f" {_fmt(added['us'], sign=True):>8} {_fmt(added['otel'], sign=True):>9}"
            + f" {_fmt(added['dd'], sign=True):>8} {_fmt(added.get('limit'), sign=True):>9}"
            + f" {_ratio(added['us'], added['otel']):>8} {_ratio(added['us'], added['dd']):>7}"
        )
    for res in results:
        target = TARGETS.get(res["scenario"])
        ours, theirs = res["added"]["us"], res["added"]["otel"]
        if target is not None and ours is not None and theirs:
            met = "met" if ours <= target * theirs else "NOT met"
            print(f"target {res['scenario']}: us added <= {target:.2f}x otel added: {met}")


if __name__ == "__main__":
    main()
