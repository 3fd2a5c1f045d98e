"""What the OTLP exporters retry, how long they wait, and that no wait outlives the deadline."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest

from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp._retry import (
    Outcome,
    RetryPolicy,
    encode_status,
    grpc_retryable,
    http_retryable,
    parse_retry_after,
    parse_status,
    retry_loop,
)


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
    assert parse_retry_after(" 0 ") == 0.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1.0)
    past = email.utils.formatdate(now - 30, usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    for invalid in (None, "", "-1", "1.5", "soon", "Wed, 99 Foo 2024 00:00:00 GMT"):
        assert parse_retry_after(invalid) is None, invalid


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
        policy=RetryPolicy(10.0, 2.0, 10.0),  # would wait seconds without the server's word
        stop=stop,
    )
    assert result.success
    assert stop.waits == [0.3] and len(sent) == 2


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
