"""What the OTLP exporters retry, how long they wait, and that no wait outlives the deadline."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp import OTLPGrpcSpanExporter, OTLPHttpSpanExporter, _retry
from telemetry_run.sdk.exporters.otlp._retry import (
    Outage,
    Outcome,
    RetryPolicy,
    encode_status,
    grpc_retryable,
    http_retryable,
    parse_retry_after,
    parse_status,
    retry_loop,
)
from telemetry_run.testing.otlp import OTLPReceiver
from tests.unit.sdk.otlp_helpers import FAST, Logged, logged_exporters, make_spans, track


@pytest.mark.parametrize(
    "code",
    ["UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "DATA_LOSS"],
)
def test_transient_grpc_codes_are_retried(code: str) -> None:
    assert grpc_retryable(code, None)


@pytest.mark.parametrize(
    "code",
    [
        "INVALID_ARGUMENT",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_FOUND",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNKNOWN",
        "FAILED_PRECONDITION",
        "ALREADY_EXISTS",
    ],
)
def test_other_grpc_codes_are_not(code: str) -> None:
    assert not grpc_retryable(code, None)
    assert not grpc_retryable(code, 1.0)


def test_resource_exhausted_is_retried_only_with_retry_info() -> None:
    assert not grpc_retryable("RESOURCE_EXHAUSTED", None)
    assert grpc_retryable("RESOURCE_EXHAUSTED", 0.0)


@pytest.mark.parametrize(
    ("status", "retried"),
    [
        (429, True),
        (502, True),
        (503, True),
        (504, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (413, False),
        (500, False),
        (501, False),
    ],
)
def test_http_statuses(status: int, retried: bool) -> None:
    assert http_retryable(status) is retried


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0  # read as 0: the loop's floor makes it a real wait
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1.0)
    for invalid in (None, "", "-1", "1.5", "soon", "Wed, 99 Foo 2024 00:00:00 GMT"):
        assert parse_retry_after(invalid) is None, invalid


@pytest.mark.parametrize(
    "value",
    [
        "-5",
        "3601",  # beyond MAX_SERVER_DELAY
        "99999999999999999999",
        "9" * 5000,  # int() of this raises ValueError (the 4300-digit limit)
        "\u0661\u0662",  # Arabic-Indic 12: str.isdigit() says yes, int() reads it
        "\u00b2",  # superscript two: str.isdigit() says yes, int() raises
        "\u0663\u0660\u0660\u0660",
        "inf",
        "nan",
        "1e3",
        "Wed, 21 Oct 2015 07:28:00 GMT",  # an HTTP-date in the past
        "Fri, 31 Dec 9999 23:59:59 GMT",  # far in the future: huge
        "Mon, 01 Jan 2024 00:00:00",  # no zone
        "Wed, 31 Feb 2024 07:28:00 GMT",
        "x" * 100_000,
        "\x00\xff",
    ],
)
def test_a_retry_after_that_is_huge_negative_not_ascii_or_past_is_ignored(value: str) -> None:
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(-1, 0), (0, -5), (0, 1_000_000_000), (3601, 0), (2**62, 0), (-(2**63), 0)],
)
def test_a_retry_info_delay_out_of_range_is_ignored(seconds: int, nanos: int) -> None:
    from google.rpc import error_details_pb2, status_pb2

    message = status_pb2.Status(code=8, message="slow down")
    info = error_details_pb2.RetryInfo()
    info.retry_delay.seconds = seconds
    info.retry_delay.nanos = nanos
    message.details.add().Pack(info)
    status = parse_status(message.SerializeToString())
    assert status is not None and status.code == 8
    assert status.retry_delay is None  # not a delay: RESOURCE_EXHAUSTED is then not retried


def test_status_with_retry_info_round_trips() -> None:
    data = encode_status(8, "slow down", 1.25)
    status = parse_status(data)
    assert status is not None
    assert (status.code, status.message, status.retry_delay) == (8, "slow down", 1.25)
    plain = parse_status(encode_status(14, "down"))
    assert plain is not None and plain.retry_delay is None
    assert parse_status(b"") == parse_status(encode_status(0))


def test_our_status_encoding_agrees_with_googleapis_protos() -> None:
    """Cross-check with the official messages (googleapis-common-protos, in the test extra)."""
    from google.rpc import error_details_pb2, status_pb2

    official = status_pb2.Status.FromString(encode_status(8, "slow down", 2.5))
    assert (official.code, official.message) == (8, "slow down")
    info = error_details_pb2.RetryInfo()
    assert official.details[0].Unpack(info)
    assert info.retry_delay.ToTimedelta().total_seconds() == 2.5

    message = status_pb2.Status(code=14, message="x")
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromSeconds(7)
    message.details.add().Pack(info)
    other = error_details_pb2.ErrorInfo(reason="r")
    message.details.add().Pack(other)
    parsed = parse_status(message.SerializeToString())
    assert parsed is not None
    assert (parsed.code, parsed.message, parsed.retry_delay) == (14, "x", 7.0)


@pytest.mark.parametrize("garbage", [b"\x0a", b"\x0a\x05ab", b"\x0f", b"\xff\xff\xff"])
def test_a_malformed_status_is_none(garbage: bytes) -> None:
    assert parse_status(garbage) is None


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=8.0)
    assert [policy.backoff(n, lambda: 1.0) for n in range(6)] == [1, 2, 4, 8, 8, 8]
    assert [policy.backoff(n, lambda: 0.0) for n in range(4)] == [0.5, 1, 2, 4]
    samples = {policy.backoff(2) for _ in range(50)}
    assert len(samples) > 1 and all(2.0 <= s <= 4.0 for s in samples)
    assert policy.backoff(10_000, lambda: 1.0) == 8.0  # no overflow


def _loop(
    outcomes: list[Outcome],
    *,
    deadline: float,
    policy: RetryPolicy | None = None,
    stop: threading.Event | None = None,
) -> tuple[ExportResult, list[float], list[Outcome]]:
    sent: list[float] = []
    transient: list[Outcome] = []
    retries: list[int] = []

    def send(until: float) -> Outcome:
        assert until == deadline
        sent.append(time.monotonic())
        return outcomes.pop(0)

    result = retry_loop(
        send,
        deadline=deadline,
        policy=policy or RetryPolicy(0.01, 2.0, 0.05),
        stop=stop or threading.Event(),
        on_transient=transient.append,
        on_retry=lambda: retries.append(1),
    )
    assert len(retries) == max(0, len(sent) - 1)
    return result, sent, transient


def test_transient_failures_are_retried_until_success() -> None:
    flaky = Outcome(False, error="UNAVAILABLE", retryable=True)
    result, sent, transient = _loop(
        [flaky, flaky, Outcome(True, rejected=2)], deadline=time.monotonic() + 5
    )
    assert result == ExportResult(True, rejected=2)
    assert len(sent) == 3 and len(transient) == 2


def test_a_permanent_failure_stops_at_once() -> None:
    result, sent, transient = _loop(
        [Outcome(False, error="INVALID_ARGUMENT")], deadline=time.monotonic() + 5
    )
    assert not result.success
    assert result.error == "INVALID_ARGUMENT"
    assert len(sent) == 1 and transient == []


class _NoWaitStop(threading.Event):
    """A stop event that records each backoff asked of it and returns without sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def test_the_servers_delay_replaces_the_backoff() -> None:
    asked = Outcome(False, error="RESOURCE_EXHAUSTED", retryable=True, server_delay=0.3)
    stop = _NoWaitStop()
    result, sent, _ = _loop(
        [asked, Outcome(True)],
        deadline=time.monotonic() + 5,
        policy=RetryPolicy(0.1, 2.0, 0.1),  # would wait 0.1 s at most without the server's word
        stop=stop,
    )
    assert result.success
    assert stop.waits == [0.3] and len(sent) == 2


@pytest.mark.parametrize("asked", [0.0, 0.001, -1.0, float("nan"), 1e30, float("inf")])
def test_no_server_delay_makes_a_wait_shorter_than_the_first_backoff_step(
    asked: float,
) -> None:
    """``Retry-After: 0`` once meant no wait: thousands of requests a second against a 429."""
    again = Outcome(False, error="HTTP 429", retryable=True, server_delay=asked)
    stop = _NoWaitStop()
    result, sent, _ = _loop(
        [again, again, again, Outcome(True)],
        deadline=time.monotonic() + 600,
        policy=RetryPolicy(2.0, 2.0, 8.0),
        stop=stop,
    )
    assert result.success and len(sent) == 4
    assert len(stop.waits) == 3
    # the first step of the backoff is 1 to 2 s (jittered): no wait is shorter
    assert all(wait is not None and 1.0 <= wait <= 8.0 for wait in stop.waits), stop.waits


def test_a_delay_past_the_deadline_fails_now_instead_of_sleeping() -> None:
    stop = _NoWaitStop()
    result, sent, _ = _loop(
        [Outcome(False, error="HTTP 503", retryable=True, server_delay=60.0)],
        deadline=time.monotonic() + 2.0,
        stop=stop,
    )
    assert stop.waits == []
    assert not result.success
    assert "deadline" in (result.error or "")
    assert len(sent) == 1


def test_nothing_is_sent_once_the_deadline_passed() -> None:
    result, sent, _ = _loop([], deadline=time.monotonic() - 1)
    assert not result.success and sent == []


def test_stop_ends_a_backoff_at_once() -> None:
    stop = threading.Event()
    flaky = Outcome(False, error="UNAVAILABLE", retryable=True)
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    try:
        result, sent, _ = _loop(
            [flaky, Outcome(True)],
            deadline=time.monotonic() + 7200,
            # a backoff of an hour at least: sleeping it out would trip the test's timeout
            policy=RetryPolicy(7200.0, 2.0, 7200.0),
            stop=stop,
        )
    finally:
        timer.cancel()
    assert not result.success
    assert "shut down" in (result.error or "")
    assert len(sent) == 1


# -- an outage across exports, on a fake clock ----------------------------------------------------


class FakeClock(threading.Event):
    """The retry loop's clock and its ``stop`` event in one: a wait advances the time."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        self.now += timeout
        return self.is_set()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(_retry, "_monotonic", fake.monotonic)
    return fake


def _one_export(
    clock: FakeClock, outage: Outage, outcomes: list[Outcome], *, timeout: float = 10.0
) -> tuple[ExportResult, int]:
    """One export through the loop: its result and how many attempts it made."""
    attempts = 0

    def send(until: float) -> Outcome:
        nonlocal attempts
        attempts += 1
        assert clock.now < until
        return outcomes.pop(0) if outcomes else Outcome(False, error="UNAVAILABLE", retryable=True)

    result = retry_loop(
        send,
        deadline=clock.now + timeout,
        policy=RetryPolicy(1.0, 2.0, 32.0),
        stop=clock,
        on_transient=lambda outcome: None,
        on_retry=lambda: None,
        outage=outage,
    )
    return result, attempts


def test_one_exports_retries_never_outlive_its_timeout(clock: FakeClock) -> None:
    started = clock.now
    result, attempts = _one_export(clock, Outage(), [], timeout=10.0)
    assert not result.success and result.retryable
    assert attempts >= 3  # backoffs of about 1, 2, 4 s fit in 10 s
    assert clock.now < started + 10.0  # no wait went past the deadline


def test_while_the_outage_lasts_each_export_is_one_attempt_without_waiting(
    clock: FakeClock,
) -> None:
    outage = Outage()
    _one_export(clock, outage, [])  # the first failing export spends its retries
    spent = outage.streak
    assert spent >= 3
    for n in range(1, 4):
        before, waits = clock.now, len(clock.waits)
        result, attempts = _one_export(clock, outage, [])
        assert not result.success and result.retryable  # the processor keeps the batch
        assert attempts == 1
        assert clock.now == before and len(clock.waits) == waits  # no backoff inside
        assert outage.streak == spent + n


@pytest.mark.parametrize(
    "answer",
    [Outcome(True), Outcome(False, error="INVALID_ARGUMENT")],
    ids=["success", "permanent-error"],
)
def test_the_first_answer_ends_the_outage_and_retries_resume(
    clock: FakeClock, answer: Outcome
) -> None:
    outage = Outage()
    _one_export(clock, outage, [])
    assert outage.streak > 0
    _, attempts = _one_export(clock, outage, [answer])
    assert attempts == 1 and outage.streak == 0
    flaky = Outcome(False, error="UNAVAILABLE", retryable=True)
    result, attempts = _one_export(clock, outage, [flaky, Outcome(True)])
    assert result.success and attempts == 2  # retried inside the export again
    assert clock.waits[-1] <= 1.0  # from the first step of the backoff, not the outage's last


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from logged_exporters()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_an_exporter_probes_a_failing_collector_once_per_export_until_it_answers(
    otlp_receiver: OTLPReceiver, logged: Logged, transport: str
) -> None:
    exporter: Any
    if transport == "grpc":
        exporter = OTLPGrpcSpanExporter(
            otlp_receiver.grpc_endpoint, diagnostics=logged[0], retry_policy=FAST
        )
    else:
        exporter = OTLPHttpSpanExporter(
            otlp_receiver.http_endpoint, diagnostics=logged[0], retry_policy=FAST
        )
    track(exporter)
    spans = make_spans(1)

    def attempts_of(within: float) -> tuple[ExportResult, int]:
        before = len(otlp_receiver.attempts)
        result = exporter.export(spans, deadline=time.monotonic() + within)
        return result, len(otlp_receiver.attempts) - before

    otlp_receiver.fail_next(1_000_000, grpc_code="UNAVAILABLE")
    result, attempts = attempts_of(2.0)  # retries 20-100 ms apart until the deadline
    assert not result.success and result.retryable and attempts >= 3
    for _ in range(3):
        result, attempts = attempts_of(5.0)  # ample time, yet one attempt: a probe
        assert not result.success and result.retryable and attempts == 1
    otlp_receiver.clear_faults()
    result, attempts = attempts_of(5.0)
    assert result.success and attempts == 1
    otlp_receiver.fail_next(2, grpc_code="UNAVAILABLE")
    result, attempts = attempts_of(5.0)
    assert result.success and attempts == 3  # the outage ended: retried inside the export again


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_an_answer_the_exporter_did_not_foresee_never_escapes_export(
    otlp_receiver: OTLPReceiver, logged: Logged, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case the answer's handling missed fails the batch (not sent again: the receiver may
    have taken it) with one warning naming the endpoint, whatever the exception."""
    exporter: Any
    if transport == "grpc":
        exporter = OTLPGrpcSpanExporter(
            otlp_receiver.grpc_endpoint, diagnostics=logged[0], retry_policy=FAST
        )
        handler, endpoint = "_accepted", otlp_receiver.grpc_endpoint
    else:
        exporter = OTLPHttpSpanExporter(
            otlp_receiver.http_endpoint, diagnostics=logged[0], retry_policy=FAST
        )
        handler, endpoint = "_answered", otlp_receiver.http_endpoint
    track(exporter)

    def unforeseen(*args: object, **kwargs: object) -> Outcome:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(exporter, handler, unforeseen)
    for _ in range(3):
        result = exporter.export(make_spans(1), deadline=time.monotonic() + 5)
        assert not result.success and not result.retryable
        assert "RecursionError" in (result.error or "")
    assert len(otlp_receiver.attempts) == 3  # one attempt per batch, none sent again
    (line,) = logged[1].matching(endpoint)
    assert "not sent again" in line


def test_a_retry_the_deadline_cancels_is_not_counted(clock: FakeClock) -> None:
    """A backoff that overruns (a loaded machine wakes the thread late) ends the export unsent:
    the exit line's ``retried`` counts spans sent again, not retries that never happened."""
    retried: list[int] = []
    sends: list[float] = []

    def late_wait(timeout: float | None = None) -> bool:
        assert timeout is not None
        clock.now += timeout + 60.0  # woken a minute late: past the 10 s deadline
        return False

    clock.wait = late_wait  # type: ignore[method-assign]

    def send(until: float) -> Outcome:
        sends.append(clock.now)
        return Outcome(False, error="UNAVAILABLE", retryable=True)

    result = retry_loop(
        send,
        deadline=clock.now + 10.0,
        policy=RetryPolicy(1.0, 2.0, 32.0),
        stop=clock,
        on_transient=lambda outcome: None,
        on_retry=lambda: retried.append(1),
    )
    assert not result.success and "deadline passed" in (result.error or "")
    assert len(sends) == 1 and retried == []
