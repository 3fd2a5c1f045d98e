"""OTLP export throughput: telemetry-run vs the opentelemetry-python OTLP exporters.

Rows (one worker subprocess per contender, row and round; same interpreter):

  encode             a 512-span batch to the serialized ExportTraceServiceRequest. Ours:
                     ``telemetry_run.sdk.exporters.otlp._encode.encode_request``; the peer's:
                     ``opentelemetry.exporter.otlp.proto.common.trace_encoder.encode_spans(...)
                     .SerializeToString()`` (what both its gRPC and HTTP exporters send)
  send-grpc          encode and send the batch over OTLP/gRPC to a local receiver: one synchronous
                     export call per batch, ours ``OTLPGrpcSpanExporter``, the peer's
                     opentelemetry-exporter-otlp-proto-grpc ``OTLPSpanExporter(insecure=True)``
  send-http          the same over OTLP/HTTP (http/protobuf): ours ``OTLPHttpSpanExporter``, the
                     peer's opentelemetry-exporter-otlp-proto-http ``OTLPSpanExporter``

The receiver is ``telemetry_run.testing.otlp.OTLPReceiver``, in a process of its own that the
worker starts (``--receiver``); the worker clears its records after every timed repetition and
checks that exactly the spans sent arrived.

The spans are the same logical data in both SDKs, made by each one's own tracer: 64 traces of
8 spans (a SERVER span under a remote parent, 7 CLIENT/INTERNAL children), each with about 10
attributes (strings, ints, a float, a bool), one event with 2 attributes, and a status (ERROR
with a description on every 8th span, OK otherwise).

Figures are spans per second, the median over all repetitions of all rounds, GC enabled;
contenders are interleaved round by round (order rotated). ``us/otel`` divides our throughput
by theirs: above 1.00x we are faster.

The encode row has a third contender, ``limit``: a hand-written encoder of the same bytes that
knows this batch's shape (no grouping, no checks, no fallbacks; see ``_setup_limit_encode``), the
floor of what encoding in pure Python costs. ``us/limit`` near 1.00x: nothing left to take.

    python bench/otlp_export.py [--quick] [-v] [--rows encode,send-grpc,send-http]
"""

# Each worker process imports only its own contender, so the imports live in functions.

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import run_worker, stop_helper

CONTENDERS = ("us", "otel", "limit")
TARGETS = {"encode": 2.5, "send-grpc": 2.0, "send-http": 2.0}  # us/otel, from the issue
LABELS = {"us": "us", "otel": "otel", "limit": "limit"}
ROWS = {
    "encode": "encode a 512-span batch (ExportTraceServiceRequest bytes)",
    "send-grpc": "encode + send over OTLP/gRPC to a local receiver",
    "send-http": "encode + send over OTLP/HTTP (protobuf) to a local receiver",
}
BATCH = 512
TRACES = 64  # of BATCH // TRACES spans each
T0 = 1_700_000_000_000_000_000
REMOTE_TRACE_STATE = "congo=t61rcWkgMzE"
RESOURCE = {  # the same for both: Resource.create's detected attributes differ between SDKs
    "service.name": "bench",
    "service.version": "1.0.0",
    "deployment.environment.name": "bench",
    "telemetry.sdk.language": "python",
    "host.name": "bench-host",
    "process.pid": 4242,
}
WORKER_TIMEOUT = 300.0


@dataclass
class Bench:
    """One contender set up for one row: ``run(k)`` handles the batch ``k`` times."""

    run: Callable[[int], None] | None  # None: n/a
    info: Callable[[], dict[str, Any]] = dict
    note: str = ""
    after: Callable[[int], None] = lambda k: None  # after each timed run(k), untimed
    close: Callable[[], None] = lambda: None


# -- the batch, written once per SDK with the same values ------------------------------------


def _plan(seed: int = 7) -> list[dict[str, Any]]:
    """The spans' data, SDK-neutral: identical for both contenders."""
    rnd = random.Random(seed)
    plan = []
    per_trace = BATCH // TRACES
    for t in range(TRACES):
        trace_id = rnd.getrandbits(128) or 1
        for i in range(per_trace):
            n = t * per_trace + i
            start = T0 + n * 1_000_000
            server = i == 0
            status_code = rnd.choice((200, 200, 200, 201, 404, 500))
            attributes: dict[str, Any] = {
                "http.request.method": rnd.choice(("GET", "GET", "POST")),
                "url.path": f"/api/items/{rnd.randrange(10**6)}",
                "url.scheme": "https",
                "server.address": "shop.example.com",
                "server.port": 443,
                "http.response.status_code": status_code,
                "network.protocol.version": "1.1",
                "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) bench/1.0",
                "app.cache.hit": rnd.random() < 0.5,
                "app.duration_ms": rnd.random() * 250,
            }
            if server:
                attributes["http.route"] = "/api/items/{id}"
            plan.append(
                {
                    "trace_id": trace_id,
                    "remote_parent": (rnd.getrandbits(64) or 1) if server else None,
                    "name": "GET /api/items/{id}" if server else rnd.choice(("SELECT", "fetch")),
                    "kind": "SERVER" if server else rnd.choice(("CLIENT", "INTERNAL")),
                    "start": start,
                    "end": start + rnd.randrange(1_000, 900_000),
                    "attributes": attributes,
                    "event": (
                        "cache.lookup",
                        {"cache.key": f"item:{rnd.randrange(10**6)}", "cache.size": n},
                        start + 500,
                    ),
                    "error": "upstream timed out" if n % 8 == 7 else None,
                }
            )
    return plan


def _make_spans_us() -> list[Any]:
    from telemetry_run.sdk import Resource, SpanProcessor, TracerProvider
    from telemetry_run.trace import (
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        StatusCode,
        TraceFlags,
        TraceState,
        set_span_in_context,
    )

    class Collect(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[Any] = []

        def on_end(self, span: Any) -> None:
            self.spans.append(span)

    collect = Collect()
    provider = TracerProvider(resource=Resource(RESOURCE), shutdown_on_exit=False)
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("bench.http", "1.0.0")
    state = TraceState.from_header([REMOTE_TRACE_STATE])
    server_ctx = None
    for item in _plan():
        if item["remote_parent"] is not None:
            remote = SpanContext(
                item["trace_id"], item["remote_parent"], True, TraceFlags(1), state
            )
            context = set_span_in_context(NonRecordingSpan(remote))
        else:
            context = server_ctx
        span = tracer.start_span(
            item["name"],
            context,
            kind=SpanKind[item["kind"]],
            attributes=item["attributes"],
            start_time=item["start"],
        )
        if item["remote_parent"] is not None:
            server_ctx = set_span_in_context(span)
        name, attributes, timestamp = item["event"]
        span.add_event(name, attributes, timestamp)
        if item["error"]:
            span.set_status(StatusCode.ERROR, item["error"])
        else:
            span.set_status(StatusCode.OK)
        span.end(item["end"])
    return collect.spans


def _make_spans_otel() -> list[Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    class Collect(SpanProcessor):
        def __init__(self) -> None:
            self.spans: list[Any] = []

        def on_end(self, span: Any) -> None:
            self.spans.append(span)

    collect = Collect()
    provider = TracerProvider(resource=Resource(RESOURCE))
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("bench.http", "1.0.0")
    state = trace.TraceState.from_header([REMOTE_TRACE_STATE])
    server_ctx = None
    for item in _plan():
        if item["remote_parent"] is not None:
            remote = trace.SpanContext(
                item["trace_id"], item["remote_parent"], True, trace.TraceFlags(1), state
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        else:
            context = server_ctx
        span = tracer.start_span(
            item["name"],
            context,
            kind=trace.SpanKind[item["kind"]],
            attributes=item["attributes"],
            start_time=item["start"],
        )
        if item["remote_parent"] is not None:
            server_ctx = trace.set_span_in_context(span)
        name, attributes, timestamp = item["event"]
        span.add_event(name, attributes, timestamp)
        if item["error"]:
            span.set_status(trace.StatusCode.ERROR, item["error"])
        else:
            span.set_status(trace.StatusCode.OK)
        span.end(item["end"])
    return collect.spans


def _check_request(data: bytes) -> dict[str, Any]:
    """Decode a batch with the official decoder and check it holds what the plan says."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest.FromString(data)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    plan = {(p["trace_id"], p["start"]): p for p in _plan()}
    ok = len(spans) == BATCH
    for span in spans:
        item = plan.get((int.from_bytes(span.trace_id, "big"), span.start_time_unix_nano))
        ok = ok and item is not None and span.end_time_unix_nano == item["end"]
        ok = ok and item is not None and len(span.attributes) == len(item["attributes"])
        ok = ok and len(span.events) == 1 and len(span.events[0].attributes) == 2
        ok = ok and span.status.code == (2 if item and item["error"] else 1)
    return {
        "checks_ok": ok,
        "spans": len(spans),
        "bytes": len(data),
        "attributes": sum(len(s.attributes) for s in spans),
        "resource_attributes": len(request.resource_spans[0].resource.attributes),
    }


# -- contenders: encoding (the half that exists now) ------------------------------------------


def _setup_us_encode() -> Bench:
    from telemetry_run.sdk.exporters.otlp._encode import encode_request

    spans = _make_spans_us()
    # A leaf span's SpanContext is built on first request: by the encoder, which reads the trace
    # state through it. A real batch is encoded once, so every run starts without them again.
    leaves = [span for span in spans if span._context is None]

    def run(k: int) -> None:
        for _ in range(k):
            for span in leaves:
                span._context = None
            encode_request(spans)

    return Bench(run=run, info=lambda: _check_request(encode_request(spans)))


def _setup_limit_encode() -> Bench:
    """The least encoding needs: our spans to the same bytes, by a writer that knows the batch.

    It reads the span slots once each, with every length known to fit one byte (a span's two),
    one resource and one scope (their block written once), a parent and a status on every span,
    one event, and only str, int (below 2**21), bool and float values: no grouping, no checks,
    no fallbacks; it remembers repeated values within the same bound a key as ours. Ours must
    handle every span; this is the floor it is measured against. The bytes must equal ours.
    """
    import struct

    from telemetry_run.sdk.exporters.otlp._encode import encode_request

    spans = _make_spans_us()
    u64 = (1 << 64) - 1
    ids = struct.Struct(">BBQQBBQ").pack
    parent_id = struct.Struct(">BBQ").pack
    times = struct.Struct("<BBBQBQ").pack
    fixed64 = struct.Struct("<BQ").pack
    double = struct.Struct("<BBd").pack
    flags_field = struct.Struct("<BBI").pack
    state = REMOTE_TRACE_STATE.encode()
    state_field = bytes((0x1A, len(state))) + state
    prefixes: dict[str, bytes] = {}
    for span in spans:
        for attributes in (span._attributes, span._extra.events[0].attributes):
            for key in attributes:
                raw = key.encode()
                prefixes[key] = bytes((0x0A, len(raw))) + raw + b"\x12"

    # A str or int value seen before under the same key: its KeyValue again, as ours does, and
    # as ours up to 32 values a key: the batch is encoded again and again, so remembering every
    # value (the paths, the ids) would time a cache that a real export, with new values, misses.
    seen: dict[tuple[int, str], tuple[dict[str, bytes], dict[int, bytes]]] = {}

    def attributes_field(field: int, attributes: dict[str, Any]) -> bytes:
        out = []
        for key, value in attributes.items():
            kind = type(value)
            memo: dict[Any, bytes] | None = None
            if kind is str or kind is int:
                tables = seen.get((field, key))
                if tables is None:
                    tables = seen[field, key] = ({}, {})
                memo = tables[0] if kind is str else tables[1]
                found = memo.get(value)
                if found is not None:
                    out.append(found)
                    continue
            prefix = prefixes[key]
            if kind is str:
                raw = value.encode()
                n = len(raw)
                encoded = bytes((field, len(prefix) + n + 3)) + prefix + bytes((n + 2, 10, n)) + raw
                out.append(encoded)
                if memo is not None and len(memo) < 32:
                    memo[value] = encoded
                continue
            if kind is bool:
                body = b"\x02\x10\x01" if value else b"\x02\x10\x00"
            elif kind is int:
                if value < 0x80:
                    body = bytes((2, 0x18, value))
                elif value < 0x4000:
                    body = bytes((3, 0x18, (value & 0x7F) | 0x80, value >> 7))
                else:
                    body = bytes((4, 0x18, (value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80))
                    body += bytes((value >> 14,))
            else:
                body = double(9, 0x21, value)
            encoded = bytes((field, len(prefix) + len(body))) + prefix + body
            out.append(encoded)
            if memo is not None and len(memo) < 32:
                memo[value] = encoded
        return b"".join(out)

    def encode_spans() -> bytearray:
        body = bytearray()
        for span in spans:
            trace_id = span._trace_id
            parent = span._parent
            buf = bytearray(ids(0x0A, 16, trace_id >> 64, trace_id & u64, 0x12, 8, span._span_id))
            buf += state_field
            buf += parent_id(0x22, 8, parent.span_id)
            name = span._name.encode()
            buf += bytes((0x2A, len(name))) + name
            buf += times(0x30, span._kind._value_ + 1, 0x39, span._start_time, 0x41, span._end_time)
            buf += attributes_field(0x4A, span._attributes)
            event = span._extra.events[0]
            event_buf = bytearray(fixed64(0x09, event.timestamp))
            event_name = event.name.encode()
            event_buf += bytes((0x12, len(event_name))) + event_name
            event_buf += attributes_field(0x1A, event.attributes)
            buf += bytes((0x5A, len(event_buf))) + event_buf
            status = span._status
            if status.description:
                text = status.description.encode()
                buf += bytes((0x7A, len(text) + 4, 0x12, len(text))) + text + b"\x18\x02"
            else:
                buf += b"\x7a\x02\x18\x01"
            remote = 0x300 if parent.is_remote else 0x100
            buf += flags_field(0x85, 0x01, (span._flags & 0xFF) | remote)
            size = len(buf)  # 128 to 16383 bytes: a two-byte length
            body += bytes((0x12, (size & 0x7F) | 0x80, size >> 7))
            body += buf
        return body

    # What comes before the spans (the request, resource and scope headers with the lengths of
    # this very batch) is the same bytes for every run: written once, from ours.
    reference = encode_request(spans)
    head = reference[: len(reference) - len(encode_spans())]

    def encode() -> bytes:
        return head + encode_spans()

    def run(k: int) -> None:
        for _ in range(k):
            encode()

    def info() -> dict[str, Any]:
        ours = encode_request(spans)
        mine = encode()
        # The head's lengths are the whole batch's: the same batch, the same head, so the bytes
        # after it must match ours exactly.
        same = mine == ours
        return {**_check_request(ours), "checks_ok": same, "same_bytes_as_ours": same}

    return Bench(run=run, info=info)


def _setup_otel_encode() -> Bench:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = _make_spans_otel()

    def run(k: int) -> None:
        for _ in range(k):
            encode_spans(spans).SerializeToString()

    return Bench(run=run, info=lambda: _check_request(encode_spans(spans).SerializeToString()))


# -- contenders: encode + send ----------------------------------------------------------------
#
# run(k) exports the batch k times, synchronously (one export call after the other, as the batch
# processor's worker does), to the real OTLP receiver shipped in telemetry_run.testing, the same
# for both contenders. The receiver runs in its own process (``--receiver``, started by the
# worker), as a collector would: in the worker it would share the GIL with the exporter and
# charge its protobuf decoding to whichever contender is being timed. It decodes every request
# and keeps it, so the worker takes (and clears) its records after every timed repetition, out
# of the timed region: the records never pile up, and the worker confirms that exactly
# k * 512 spans arrived.


class _ReceiverProcess:
    """An ``OTLPReceiver`` in a child process, driven over its stdin/stdout, one JSON per line."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--receiver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.endpoints: dict[str, str] = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the receiver process ended (exit {self._proc.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def take(self, check: bool = False) -> dict[str, Any]:
        """What arrived since the last take (spans, requests, failed calls), then forget it."""
        assert self._proc.stdin is not None
        self._proc.stdin.write("check\n" if check else "take\n")
        self._proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        stop_helper(self._proc)


def receiver_main() -> None:
    """``--receiver``: serve OTLP on 127.0.0.1 until stdin closes."""
    from telemetry_run.testing.otlp import OTLPReceiver

    receiver = OTLPReceiver().start()
    print(json.dumps({"grpc": receiver.grpc_endpoint, "http": receiver.http_endpoint}), flush=True)
    try:
        for command in sys.stdin:
            with receiver._lock:  # a consistent snapshot; reset() below takes the lock itself
                requests = list(receiver.requests)
                failed = len(receiver.attempts) - len(requests)
            receiver.reset()
            result: dict[str, Any] = {
                "spans": sum(len(r.spans) for r in requests),
                "requests": len(requests),
                "failed_calls": failed,
            }
            if command.strip() == "check" and requests:
                result["first"] = _check_request(requests[0].request.SerializeToString())
                result["first"]["transport"] = requests[0].transport
            print(json.dumps(result), flush=True)
    finally:
        receiver.stop()


def _send_bench(
    export_once: Callable[[], None], receiver: _ReceiverProcess, note: str = ""
) -> Bench:
    def run(k: int) -> None:
        for _ in range(k):
            export_once()

    def info() -> dict[str, Any]:
        receiver.take()  # whatever came before
        export_once()
        got = receiver.take(check=True)
        first = got.pop("first", {"checks_ok": False})
        first["checks_ok"] = first.get("checks_ok") is True and got["spans"] == BATCH
        return {**first, "received": got}

    def after(k: int) -> None:
        got = receiver.take()
        if got["spans"] != k * BATCH or got["failed_calls"]:
            raise RuntimeError(f"the receiver got {got}, expected {k * BATCH} spans")

    return Bench(run=run, info=info, note=note, after=after, close=receiver.close)


def _setup_us_send(transport: str) -> Bench:
    """Ours: telemetry_run's OTLP/gRPC or OTLP/HTTP (http/protobuf) exporter."""
    from telemetry_run.sdk.exporters.otlp import OTLPGrpcSpanExporter, OTLPHttpSpanExporter

    receiver = _ReceiverProcess()
    exporter: Any
    if transport == "grpc":
        exporter = OTLPGrpcSpanExporter(receiver.endpoints["grpc"], insecure=True)
    else:
        exporter = OTLPHttpSpanExporter(receiver.endpoints["http"])
    spans = _make_spans_us()
    leaves = [span for span in spans if span._context is None]  # see _setup_us_encode

    def export_once() -> None:
        for span in leaves:
            span._context = None
        result = exporter.export(spans, deadline=time.monotonic() + 10)
        if not result.success or result.rejected:
            raise RuntimeError(f"our export failed: {result}")

    bench = _send_bench(export_once, receiver)
    close_receiver = bench.close

    def close() -> None:
        exporter.shutdown(deadline=time.monotonic() + 5)
        close_receiver()

    bench.close = close
    return bench


def _setup_otel_send(transport: str) -> Bench:
    """The peer: opentelemetry-exporter-otlp-proto-grpc / -http's OTLPSpanExporter."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    receiver = _ReceiverProcess()
    exporter: Any
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=receiver.endpoints["grpc"], insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as OTLPHttpExporter,
        )

        exporter = OTLPHttpExporter(endpoint=receiver.endpoints["http"])
    spans = _make_spans_otel()

    def export_once() -> None:
        result = exporter.export(spans)
        if result is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"the peer's export failed: {result}")

    bench = _send_bench(export_once, receiver)
    close_receiver = bench.close

    def close() -> None:
        exporter.shutdown()
        close_receiver()

    bench.close = close
    return bench


def _setup(contender: str, row: str) -> Bench:
    if row == "encode":
        setups = {"us": _setup_us_encode, "otel": _setup_otel_encode, "limit": _setup_limit_encode}
        return setups[contender]()
    if contender == "limit":
        return Bench(run=None, note="the limit row is the encoder's alone")
    transport = row.removeprefix("send-")
    return _setup_us_send(transport) if contender == "us" else _setup_otel_send(transport)


# -- worker ---------------------------------------------------------------------------------


def worker(contender: str, row: str, batches: int, reps: int) -> dict[str, Any]:
    bench = _setup(contender, row)
    result: dict[str, Any] = {"contender": contender, "row": row, "note": bench.note}
    if bench.run is None:
        result["na"] = True
        return result
    try:
        info = bench.info()
        if info.get("checks_ok") is not True:
            raise RuntimeError(f"sanity check failed (span count, fields, statuses): {info}")
        warm_up = max(batches // 4, 2)
        bench.run(warm_up)  # warm-up: caches, lazily imported code, connections
        bench.after(warm_up)
        gc.collect()
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            bench.run(batches)
            samples.append(batches * BATCH / (time.perf_counter() - t0))
            bench.after(batches)
    finally:
        bench.close()
    result["samples"] = samples
    result["info"] = info
    return result


# -- parent ---------------------------------------------------------------------------------


def _spawn(contender: str, row: str, batches: int, reps: int) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender]
    cmd += ["--row", row, "--batches", str(batches), "--reps", str(reps)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_RUN_"))}
    return run_worker(cmd, env, WORKER_TIMEOUT)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "n/a" if ours is None or not theirs else f"{ours / theirs:.2f}x"


def _run_row(
    row: str, batches: int, reps: int, rounds: int, verbose: bool
) -> dict[str, float | None]:
    print(f"\n== {row}: {ROWS[row]}")
    print(f"   {batches} batches of {BATCH} spans x {reps} reps, {rounds} rounds")
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    notes: dict[str, str] = {}
    for rnd in range(rounds):
        turn = rnd % len(CONTENDERS)
        order = CONTENDERS[turn:] + CONTENDERS[:turn]
        line = []
        for contender in order:
            res = _spawn(contender, row, batches, reps)
            label = LABELS[contender]
            if "error" in res:
                line.append(f"{label} FAILED ({res['error']})")
                continue
            if res.get("note"):
                notes[contender] = res["note"]
            if res.get("na"):
                line.append(f"{label} n/a")
                continue
            samples[contender].extend(res["samples"])
            line.append(f"{label} {_fmt(statistics.median(res['samples']))} spans/s")
            if verbose and rnd == 0:
                print(f"   [{label}] {json.dumps(res['info'])}")
        print(f"   round {rnd + 1}: " + "  ".join(line))
        if all(not s for s in samples.values()) and notes:
            break  # n/a for everyone: another round says nothing new
    for contender, note in notes.items():
        print(f"   note ({LABELS[contender]}): {note}")
    med = {c: statistics.median(s) if s else None for c, s in samples.items()}
    print(
        "   median spans/s: "
        + " | ".join(f"{LABELS[c]} {_fmt(med[c])}" for c in CONTENDERS)
        + f"   us/otel {_ratio(med['us'], med['otel'])}"
        + f"   us/limit {_ratio(med['us'], med['limit'])}"
    )
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer batches")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each worker's checks")
    parser.add_argument("--rows", default=",".join(ROWS), help="subset, e.g. 'encode'")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--row", choices=tuple(ROWS), help=argparse.SUPPRESS)
    parser.add_argument("--batches", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if not rows or set(rows) - set(ROWS):
        parser.error(f"--rows takes names from {', '.join(ROWS)}")

    if args.receiver:
        receiver_main()
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.row, args.batches, args.reps)), flush=True)
        return

    rounds, reps, batches = (2, 5, 10) if args.quick else (5, 7, 20)
    print(
        f"otlp_export: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, GC enabled; "
        f"{BATCH}-span batches, ~10 attributes + 1 event + a status per span"
    )
    started = time.perf_counter()
    results = {row: _run_row(row, batches, reps, rounds, args.verbose) for row in rows}

    print(
        f"\n== summary ({time.perf_counter() - started:.0f} s; us/otel above 1.00x: we are ahead)"
    )
    header = (
        f"{'row':<12} {'unit':<8} {'us':>10} {'otel':>10} {'limit':>10} {'us/otel':>8}"
        f" {'us/limit':>8}"
    )
    print(header)
    print("-" * len(header))
    for row, med in results.items():
        print(
            f"{row:<12} {'spans/s':<8} {_fmt(med['us']):>10} {_fmt(med['otel']):>10}"
            f" {_fmt(med['limit']):>10} {_ratio(med['us'], med['otel']):>8}"
            f" {_ratio(med['us'], med['limit']):>8}"
        )
    for row, med in results.items():
        if med["us"] is not None and med["otel"]:
            met = "met" if med["us"] / med["otel"] >= TARGETS[row] else "NOT met"
            print(f"target {row}: us/otel >= {TARGETS[row]:.1f}x: {met}")


if __name__ == "__main__":
    main()
