"""A hostile or broken collector, scripted on the testing receiver (issue 13, section 4).

Each case: every export returns (none raises, none outlives its deadline), each batch is counted
``exported`` or ``export_failed`` the way the exit line reports it, the exporter says so in one
throttled warning naming the endpoint (three batches, one line), and a server's delay never
turns the retries into a flood.
"""

from __future__ import annotations

import contextlib
import email.utils
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from telemetry_run.sdk import Diagnostics, ReadableSpan
from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp import (
    OTLPGrpcSpanExporter,
    OTLPHttpSpanExporter,
    RetryPolicy,
)
from telemetry_run.sdk.processors.simple import count_export_result
from telemetry_run.testing.otlp import Misbehaviour, OTLPReceiver
from tests.unit.sdk.otlp_helpers import FAST, Logs, diagnostics_with_logs, make_spans

#: Each export's deadline, passed down; the trickles below take far longer than this.
DEADLINE = 1.5
#: Three batches: one warning for all of them, however each ends.
BATCHES = 3
#: Only catches a hang: an export that ignored its deadline would run into it.
HANG = 60.0
#: A backoff whose first step is 0.1 to 0.2 s: at most PACE_DEADLINE / 0.1 + 1 attempts in the
#: deadline of the tests of a server's delay (long enough for a second attempt on a busy machine).
STEADY = RetryPolicy(initial_backoff=0.2, multiplier=2.0, max_backoff=0.4)
PACE_DEADLINE = 3.0
MOST_ATTEMPTS = int(PACE_DEADLINE / 0.1) + 1

Exporter = OTLPHttpSpanExporter | OTLPGrpcSpanExporter
Behaviour = Callable[[socket.socket, threading.Event], None]


@pytest.fixture(scope="module")
def spans() -> list[ReadableSpan]:
    return make_spans(2)


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver() as started:
        yield started


class Run:
    """What BATCHES exports against one collector came to."""

    def __init__(self, results: list[ExportResult], diagnostics: Diagnostics, logs: Logs) -> None:
        self.results = results
        self.exported = diagnostics.spans_exported.value
        self.failed = diagnostics.spans_dropped["export_failed"].value
        self.logs = logs

    def lines_naming(self, endpoint: str) -> list[str]:
        return self.logs.matching(endpoint)


def _run_batches(
    make: Callable[[Diagnostics], Exporter],
    spans: list[ReadableSpan],
    batches: int = BATCHES,
    deadline: float = DEADLINE,
) -> Run:
    """``batches`` exports, each with DEADLINE passed down, counted as a processor counts them,
    on a thread joined with a bound that only catches a hang."""
    diagnostics, logs = diagnostics_with_logs()
    exporter = make(diagnostics)
    results: list[ExportResult] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(batches):
                result = exporter.export(spans, deadline=time.monotonic() + deadline)
                count_export_result(diagnostics, len(spans), result)
                results.append(result)
        except BaseException as exc:  # the test reports it below
            errors.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(HANG)
    try:
        assert not worker.is_alive(), "an export outlived its deadline and hung"
        assert errors == [], f"export() raised: {errors!r}"
    finally:
        exporter.shutdown(deadline=time.monotonic() + 2)
    return Run(results, diagnostics, logs)


def _http(receiver: OTLPReceiver, policy: RetryPolicy = FAST) -> Callable[[Diagnostics], Exporter]:
    return lambda diagnostics: OTLPHttpSpanExporter(
        receiver.http_endpoint, diagnostics=diagnostics, retry_policy=policy
    )


def _grpc(endpoint: str, policy: RetryPolicy = FAST) -> Callable[[Diagnostics], Exporter]:
    return lambda diagnostics: OTLPGrpcSpanExporter(
        endpoint, diagnostics=diagnostics, retry_policy=policy
    )


# -- Retry-After and RetryInfo --------------------------------------------------------------------

_PAST = email.utils.formatdate(time.time() - 3600, usegmt=True)


@pytest.mark.parametrize(
    "retry_after",
    ["0", "-1", "\u00b2", "9" * 5000, "99999999999999999999", _PAST],
    ids=["zero", "negative", "superscript-digit", "5000-digits", "huge", "date-in-the-past"],
)
def test_a_429_with_any_retry_after_is_retried_at_the_backoffs_pace(
    receiver: OTLPReceiver, spans: list[ReadableSpan], retry_after: str
) -> None:
    """``Retry-After: 0`` once meant 5,596 requests in 2 s; ``²`` raised out of export()."""
    answer = Misbehaviour(
        status=429,
        headers=(("Content-Type", "text/plain"), ("Retry-After", retry_after)),
        body=b"slow down",
    )
    receiver.misbehave_next(100_000, answer)
    run = _run_batches(_http(receiver, STEADY), spans, batches=1, deadline=PACE_DEADLINE)
    (result,) = run.results
    assert not result.success and result.retryable  # the processor keeps the batch
    attempts = len(receiver.attempts)
    assert 2 <= attempts <= MOST_ATTEMPTS, attempts  # retried, never faster than the floor
    assert run.failed == len(spans) and run.exported == 0
    (line,) = run.lines_naming(receiver.http_endpoint)
    assert "429" in line


@pytest.mark.parametrize(
    ("code", "delay"),
    [("UNAVAILABLE", 0.0), ("RESOURCE_EXHAUSTED", 0.0), ("UNAVAILABLE", -5.0), ("ABORTED", 1e9)],
    ids=["zero", "zero-resource-exhausted", "negative", "huge"],
)
def test_a_retry_info_delay_of_zero_negative_or_huge_keeps_the_backoffs_pace(
    receiver: OTLPReceiver, spans: list[ReadableSpan], code: str, delay: float
) -> None:
    receiver.fail_next(100_000, grpc_code=code, retry_delay=delay)
    run = _run_batches(
        _grpc(receiver.grpc_endpoint, STEADY), spans, batches=1, deadline=PACE_DEADLINE
    )
    (result,) = run.results
    assert not result.success and result.retryable
    attempts = len(receiver.attempts)
    assert 2 <= attempts <= MOST_ATTEMPTS, attempts
    assert run.failed == len(spans)
    (line,) = run.lines_naming(receiver.grpc_endpoint)
    assert code in line


def test_a_negative_retry_info_makes_resource_exhausted_final(
    receiver: OTLPReceiver, spans: list[ReadableSpan]
) -> None:
    """Without a valid RetryInfo, RESOURCE_EXHAUSTED is not retried (the specification)."""
    receiver.fail_next(100_000, grpc_code="RESOURCE_EXHAUSTED", retry_delay=-5.0)
    run = _run_batches(
        _grpc(receiver.grpc_endpoint, STEADY), spans, batches=1, deadline=PACE_DEADLINE
    )
    assert len(receiver.attempts) == 1
    assert run.failed == len(spans)
    assert len(run.lines_naming(receiver.grpc_endpoint)) == 1


# -- what an HTTP collector answers ---------------------------------------------------------------

_DEEP_JSON = b"[" * 200_000 + b"]" * 200_000
_DEEP_PROTOBUF = b"\x0b" * 200_000  # a group in a group ... (field 1), never closed
_GIB = 1024 * 1024 * 1024
_JSON = (("Content-Type", "application/json"),)


@pytest.mark.parametrize(
    ("answer", "accepted", "said"),
    [
        (Misbehaviour(body=_DEEP_JSON, headers=_JSON), True, "not an OTLP response"),
        (Misbehaviour(status=400, body=_DEEP_JSON, headers=_JSON), False, "HTTP 400"),
        (Misbehaviour(status=503, body=_DEEP_JSON, headers=_JSON), False, "HTTP 503"),
        (Misbehaviour(body=b"\xff\xff\xff\xff"), True, "not an OTLP response"),
        (Misbehaviour(body=_DEEP_PROTOBUF), True, "not an OTLP response"),
        (Misbehaviour(body=b"\x0a", body_size=2 * _GIB), True, "longer than 4 MiB"),
        (Misbehaviour(body=b"\x0a", body_size=2 * _GIB, chunked=True), True, "longer than 4 MiB"),
        (Misbehaviour(body=b"\x0a\x02\x08\x01" * 10, reset_after=120), True, "broke off"),
        (Misbehaviour(body=b"", reset_after=10), False, "Error"),
        (Misbehaviour(trickle=0.05, body=b"\x0a\x00"), False, "deadline"),
        (Misbehaviour(headers=(("X-Pad", "a"),) * 1000), False, "more than 100 headers"),
        (Misbehaviour(headers=(("X-Pad", "a" * 1_000_000),)), False, "LineTooLong"),
    ],
    ids=[
        "200-json-nested-200000-deep",
        "400-json-nested-200000-deep",
        "503-json-nested-200000-deep",
        "200-garbage-protobuf",
        "200-protobuf-nested-200000-deep",
        "200-two-gigabytes",
        "200-two-gigabytes-chunked",
        "200-then-reset-mid-body",
        "reset-mid-status-line",
        "headers-trickling-a-byte-at-a-time",
        "a-thousand-headers",
        "a-header-of-a-megabyte",
    ],
)
def test_whatever_an_http_collector_answers_each_batch_is_counted_and_said_once(
    receiver: OTLPReceiver,
    spans: list[ReadableSpan],
    answer: Misbehaviour,
    accepted: bool,
    said: str,
) -> None:
    receiver.misbehave_next(100_000, answer)
    run = _run_batches(_http(receiver), spans)
    # A 2xx took the spans whatever its body: never sent again (it would duplicate them).
    assert [result.success for result in run.results] == [accepted] * BATCHES
    if accepted:
        assert len(receiver.attempts) == BATCHES
        assert (run.exported, run.failed) == (BATCHES * len(spans), 0)
    else:
        assert (run.exported, run.failed) == (0, BATCHES * len(spans))
    (line,) = run.lines_naming(receiver.http_endpoint)
    assert said in line, line


def test_a_long_answer_after_connection_close_is_read_in_full(
    receiver: OTLPReceiver, spans: list[ReadableSpan]
) -> None:
    """``Connection: close`` made http.client close the socket under the body still being read
    (EBADF): an accepted batch then counted as failed and was sent again."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    response = trace_service_pb2.ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 1
    response.partial_success.error_message = "too long " * 20_000
    headers = (("Content-Type", "application/x-protobuf"), ("Connection", "close"))
    receiver.misbehave_next(
        100_000, Misbehaviour(headers=headers, body=response.SerializeToString())
    )
    run = _run_batches(_http(receiver), spans)
    assert [result.rejected for result in run.results] == [1] * BATCHES
    assert len(receiver.attempts) == BATCHES
    assert run.exported == BATCHES * (len(spans) - 1) and run.failed == 0
    (line,) = run.lines_naming(receiver.http_endpoint)
    assert "1 span(s) rejected" in line


def test_a_trickled_answer_ends_at_the_deadline_passed_down(
    receiver: OTLPReceiver, spans: list[ReadableSpan]
) -> None:
    """Each read is bounded by what is left of the one deadline, not by a fresh timeout: 40
    bytes of headers at 0.05 s each never complete within the deadline."""
    receiver.misbehave_next(100_000, Misbehaviour(trickle=0.05))
    run = _run_batches(_http(receiver), spans, batches=1)
    (result,) = run.results
    assert not result.success and "deadline" in (result.error or "")
    assert len(receiver.attempts) == 1  # no time left for a second attempt


# -- what a gRPC collector answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "accepted", "said"),
    [
        (b"\xff\xff\xff\xff", True, "not an OTLP response"),
        (_DEEP_PROTOBUF, True, "not an OTLP response"),
        (b"\x0a" * (20 * 1024 * 1024), False, "longer than 4 MiB"),
    ],
    ids=["ok-garbage-protobuf", "ok-protobuf-nested-200000-deep", "ok-twenty-megabytes"],
)
def test_whatever_a_grpc_collector_answers_each_batch_is_counted_and_said_once(
    receiver: OTLPReceiver,
    spans: list[ReadableSpan],
    body: bytes,
    accepted: bool,
    said: str,
) -> None:
    receiver.misbehave_next(100_000, Misbehaviour(grpc_body=body))
    run = _run_batches(_grpc(receiver.grpc_endpoint), spans)
    assert [result.success for result in run.results] == [accepted] * BATCHES
    assert len(receiver.attempts) == BATCHES  # none of them is sent again
    if accepted:
        assert (run.exported, run.failed) == (BATCHES * len(spans), 0)
    else:
        assert (run.exported, run.failed) == (0, BATCHES * len(spans))
    (line,) = run.lines_naming(receiver.grpc_endpoint)
    assert said in line, line


def _reset(conn: socket.socket, stop: threading.Event) -> None:
    """Read the start of the call, then reset the connection (RST, not FIN)."""
    conn.recv(1024)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    """An HTTP/2 SETTINGS frame's bytes, one every 0.05 s, for ever."""
    frame = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    for i in range(100_000):
        if stop.wait(0.05):
            return
        conn.sendall(frame[i % len(frame) : i % len(frame) + 1])


@pytest.fixture
def raw_server() -> Iterator[Callable[[Behaviour], str]]:
    """A TCP server on 127.0.0.1 running ``behave`` on each connection: a gRPC collector
    misbehaving below HTTP/2, where grpcio's server cannot be told to."""
    stop = threading.Event()
    servers: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(behave: Behaviour) -> str:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.1)
        servers.append(server)

        def one(conn: socket.socket) -> None:
            with conn, contextlib.suppress(OSError):  # the client hung up
                behave(conn, stop)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                thread = threading.Thread(target=one, args=(conn,), daemon=True)
                thread.start()
                threads.append(thread)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"http://127.0.0.1:{server.getsockname()[1]}"

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)
    for server in servers:
        server.close()


@pytest.mark.parametrize("behave", [_reset, _trickle], ids=["reset", "trickle"])
def test_a_grpc_collector_that_resets_or_trickles_fails_each_batch_within_its_deadline(
    raw_server: Callable[[Behaviour], str],
    spans: list[ReadableSpan],
    behave: Behaviour,
) -> None:
    endpoint = raw_server(behave)
    run = _run_batches(_grpc(endpoint), spans)
    assert all(not result.success and result.retryable for result in run.results)
    assert (run.exported, run.failed) == (0, BATCHES * len(spans))
    (line,) = run.lines_naming(endpoint)
    assert "retried" in line
