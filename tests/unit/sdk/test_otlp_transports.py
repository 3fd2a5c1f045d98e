"""What the OTLP/gRPC and OTLP/HTTP exporters do alike, each case run once per transport
against the real receiver of ``telemetry_run.testing``: retries, deadlines, shutdown, headers,
fork safety, TLS keys. What only one transport does stays in test_otlp_grpc.py or
test_otlp_http.py."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pytest

from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp import (
    OTLPGrpcSpanExporter,
    OTLPHttpSpanExporter,
    RetryPolicy,
)
from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.unit.sdk.otlp_helpers import (
    FAST,
    Certificates,
    Logged,
    encrypted_copy,
    logged_exporters,
    make_certificates,
    make_spans,
    run_fork_script,
    timed_export,
    track,
)

Exporter: TypeAlias = OTLPGrpcSpanExporter | OTLPHttpSpanExporter


@dataclass(frozen=True)
class Transport:
    """How one transport is pointed at the receiver and how it words what went wrong."""

    name: str  # the fork script's kind, and the case's id
    exporter_class: Callable[..., Exporter]
    endpoint: Callable[[OTLPReceiver], str]
    down_path: str  # appended to a closed port's URL
    transient: dict[str, Any]  # receiver.fail_next(...) arguments for a retried failure
    transient_status: str  # how the receiver records that failure
    no_answer: str  # the error of an export the deadline ended
    down_reason: str  # what the retry line names of a refused connection ("" = nothing more)
    only_this: dict[str, bool]  # OTLPReceiver(...) arguments that serve only this transport
    connection: str  # the attribute holding the open channel or connection

    def exporter(self, endpoint: str, logged: Logged, **kwargs: Any) -> Exporter:
        kwargs.setdefault("retry_policy", FAST)
        return track(self.exporter_class(endpoint, diagnostics=logged[0], **kwargs))


GRPC = Transport(
    name="grpc",
    exporter_class=OTLPGrpcSpanExporter,
    endpoint=lambda receiver: receiver.grpc_endpoint,
    down_path="",
    transient={"grpc_code": "UNAVAILABLE"},
    transient_status="UNAVAILABLE",
    no_answer="DEADLINE_EXCEEDED",
    down_reason="",
    only_this={"http": False},
    connection="_channel",
)
HTTP = Transport(
    name="http",
    exporter_class=OTLPHttpSpanExporter,
    endpoint=lambda receiver: receiver.http_endpoint,
    down_path="/v1/traces",
    transient={"http_status": 503},
    transient_status="503",
    no_answer="no answer before the deadline",
    down_reason="ConnectionRefusedError",
    only_this={"grpc": False},
    connection="_conn",
)


@pytest.fixture(params=[GRPC, HTTP], ids=lambda t: t.name)
def transport(request: pytest.FixtureRequest) -> Transport:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from logged_exporters()


_export = timed_export


def test_unavailable_twice_then_ok_arrives_once_and_counts_as_retried(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    diagnostics, logs = logged
    spans = make_spans(3)
    otlp_receiver.fail_next(2, **transport.transient)
    endpoint = transport.endpoint(otlp_receiver)
    result, _ = _export(transport.exporter(endpoint, logged), spans)
    assert result.success
    assert len(otlp_receiver.requests) == 1
    status = transport.transient_status
    assert [a.status for a in otlp_receiver.attempts] == [status, status, "OK"]
    assert diagnostics.spans_retried.value == 2 * len(spans)
    # one throttled line for the endpoint, not one per retry
    (line,) = logs.matching("retried with backoff")
    assert endpoint in line and status in line


def test_a_retry_delay_beyond_the_deadline_fails_at_once(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    otlp_receiver.fail_next(1, retry_delay=30, **transport.transient)
    exporter = transport.exporter(transport.endpoint(otlp_receiver), logged)
    result, _ = _export(exporter, make_spans(1), 3.0)
    assert not result.success
    # the 30 s asked for is past the deadline: no second attempt, and no sleep
    assert "no time left for another attempt before the deadline" in (result.error or "")
    assert len(otlp_receiver.attempts) == 1


def test_a_receiver_that_never_answers_is_bounded_by_the_deadline(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    otlp_receiver.hang()
    exporter = transport.exporter(transport.endpoint(otlp_receiver), logged)
    result, _ = _export(exporter, make_spans(1), 1.0)
    assert not result.success
    assert transport.no_answer in (result.error or "")  # the deadline ended it


def test_the_timeout_option_bounds_an_export_inside_a_later_deadline(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    otlp_receiver.answer_slowly(5.0)
    exporter = transport.exporter(transport.endpoint(otlp_receiver), logged, timeout=0.5)
    result, _ = _export(exporter, make_spans(1), 30.0)
    assert not result.success
    assert transport.no_answer in (result.error or "")  # 0.5 s, not the caller's 30 s


def test_a_collector_that_is_down_is_retried_within_the_deadline(
    transport: Transport, logged: Logged
) -> None:
    diagnostics, logs = logged
    endpoint = f"http://127.0.0.1:{free_port()}{transport.down_path}"
    result, _ = _export(transport.exporter(endpoint, logged), make_spans(2), 1.0)
    assert not result.success
    # The deadline ended the retries: seen when the next backoff would cross it or, on a loaded
    # machine where the backoff's wait overran, when the next attempt was due (stress run).
    error = result.error or ""
    assert (
        "no time left for another attempt before the deadline" in error
        or "the export deadline passed before it was sent" in error
    ), error
    assert diagnostics.spans_retried.value >= 2
    (line,) = logs.matching("retried with backoff")
    assert endpoint in line and transport.down_reason in line


def _export_in_a_thread(exporter: Exporter, seconds: float) -> tuple[threading.Thread, list[Any]]:
    """An export with a deadline ``seconds`` away, started on a thread of its own."""
    results: list[ExportResult] = []
    worker = threading.Thread(
        target=lambda: results.append(
            exporter.export(make_spans(1), deadline=time.monotonic() + seconds)
        )
    )
    worker.start()
    return worker, results


def test_shutdown_during_backoff_returns_at_once(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    otlp_receiver.fail_next(10, **transport.transient)
    exporter = transport.exporter(
        transport.endpoint(otlp_receiver),
        logged,
        retry_policy=RetryPolicy(30.0, 2.0, 30.0),
        timeout=0,  # no limit of its own: only shutdown can end the wait
    )
    worker, results = _export_in_a_thread(exporter, 120)
    otlp_receiver.wait_for_attempts(1)
    time.sleep(0.1)  # in the backoff now
    exporter.shutdown(deadline=time.monotonic() + 5)
    worker.join(5)
    assert not worker.is_alive()  # shutdown ended the backoff, not the 120 s deadline
    assert not results[0].success and "shut down" in (results[0].error or "")
    # and later exports fail fast, without a call
    result, _ = _export(exporter, make_spans(1))
    assert result.error == "the exporter is shut down"
    assert len(otlp_receiver.attempts) == 1
    assert getattr(exporter, transport.connection) is None


def test_shutdown_ends_a_call_in_flight(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    otlp_receiver.hang()
    exporter = transport.exporter(transport.endpoint(otlp_receiver), logged, timeout=0)
    worker, results = _export_in_a_thread(exporter, 60)
    otlp_receiver.wait_for_attempts(1)
    exporter.shutdown(deadline=time.monotonic() + 5)
    worker.join(5)
    assert not worker.is_alive()  # shutdown ended the call, not the 60 s deadline
    assert not results[0].success
    assert getattr(exporter, transport.connection) is None


def test_headers_arrive_on_every_call(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    exporter = transport.exporter(
        transport.endpoint(otlp_receiver),
        logged,
        headers=[("Authorization", "Bearer abc"), ("X-Tenant", "blue team")],
    )
    otlp_receiver.fail_next(1)
    assert _export(exporter, make_spans(1))[0].success
    assert _export(exporter, make_spans(1))[0].success
    assert len(otlp_receiver.attempts) == 3  # the failed one was retried, with the headers too
    for attempt in otlp_receiver.attempts:
        assert attempt.headers["authorization"] == "Bearer abc"
        assert attempt.headers["x-tenant"] == "blue team"


def test_no_limit_at_all_is_allowed(
    transport: Transport, otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    exporter = transport.exporter(transport.endpoint(otlp_receiver), logged, timeout=0)
    assert exporter.export(make_spans(1), deadline=math.inf).success
    assert exporter.export(make_spans(1), deadline=math.inf).success  # the reused transport


def test_a_forked_child_opens_its_own_connection(
    transport: Transport, otlp_receiver: OTLPReceiver
) -> None:
    out = run_fork_script(transport.name, transport.endpoint(otlp_receiver))
    assert "child ok=True own=True" in out
    assert "parent ok=True kept=True child_exit=0" in out
    peers = [r.peer for r in otlp_receiver.requests]
    assert len(peers) == 3
    assert peers[0] == peers[2] != peers[1]  # the child's calls came on a connection of its own


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


@pytest.mark.parametrize("traditional", [False, True])
def test_an_encrypted_client_key_fails_the_export_without_a_passphrase_prompt(
    transport: Transport,
    certificates: Certificates,
    tmp_path: Path,
    logged: Logged,
    traditional: bool,
) -> None:
    key_file = encrypted_copy(certificates.client_key_file, tmp_path, traditional=traditional)
    with OTLPReceiver(tls=certificates.mtls_server, **transport.only_this) as receiver:
        exporter = transport.exporter(
            transport.endpoint(receiver),
            logged,
            certificate_file=certificates.ca_file,
            client_certificate_file=certificates.client_cert_file,
            client_key_file=key_file,
        )
        result, _ = _export(exporter, make_spans(1))
        assert not result.success
        assert receiver.requests == []
    (line,) = logged[1].messages
    assert "passphrase-protected" in line and str(tmp_path) not in line
