"""The OTLP/gRPC exporter against the real receiver of ``telemetry_run.testing``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.sdk import BatchSpanProcessor
from telemetry_run.sdk.context import is_suppressed
from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp import OTLPGrpcSpanExporter
from telemetry_run.sdk.exporters.otlp._retry import Outcome
from telemetry_run.sdk.processors.simple import record_export_result
from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.unit.sdk.otlp_helpers import (
    FAST,
    Certificates,
    Logged,
    assert_spans_arrived,
    logged_exporters,
    make_certificates,
    make_spans,
    timed_export,
    track,
)


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from logged_exporters()


def _exporter(endpoint: str, logged: Logged, **kwargs: Any) -> OTLPGrpcSpanExporter:
    kwargs.setdefault("retry_policy", FAST)
    return track(OTLPGrpcSpanExporter(endpoint, diagnostics=logged[0], **kwargs))


_export = timed_export


def test_spans_arrive_with_their_fields(otlp_receiver: OTLPReceiver, logged: Logged) -> None:
    spans = make_spans(4)
    exporter = _exporter(otlp_receiver.grpc_endpoint, logged)
    result, _ = _export(exporter, spans)
    assert result == ExportResult(True)
    (received,) = otlp_receiver.requests
    assert_spans_arrived(spans, received)
    assert received.headers["user-agent"].startswith("telemetry-run/")
    assert logged[1].messages == []
    exporter.shutdown(deadline=time.monotonic() + 1)


def test_the_call_goes_to_the_generated_stubs_method() -> None:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    from telemetry_run.sdk.exporters.otlp.grpc import _export_method

    paths = []

    class Channel:
        def unary_unary(self, path: str, *args: object, **kwargs: object) -> None:
            paths.append(path)

    trace_service_pb2_grpc.TraceServiceStub(Channel())
    assert paths == [_export_method(trace_service_pb2)]


def test_one_channel_is_reused(otlp_receiver: OTLPReceiver, logged: Logged) -> None:
    exporter = _exporter(otlp_receiver.grpc_endpoint, logged)
    for _ in range(3):
        assert _export(exporter, make_spans(1))[0].success
    channel = exporter._channel
    assert channel is not None
    assert _export(exporter, make_spans(1))[0].success
    assert exporter._channel is channel
    assert len({r.peer for r in otlp_receiver.requests}) == 1
    exporter.shutdown(deadline=time.monotonic() + 1)


def test_retry_info_delay_is_honoured(otlp_receiver: OTLPReceiver, logged: Logged) -> None:
    otlp_receiver.fail_next(1, grpc_code="RESOURCE_EXHAUSTED", retry_delay=0.6)
    exporter = _exporter(otlp_receiver.grpc_endpoint, logged)
    result, _ = _export(exporter, make_spans(1))
    assert result.success
    first, second = otlp_receiver.attempts
    assert second.received_at - first.received_at >= 0.6


def test_resource_exhausted_without_retry_info_is_not_retried(
    otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    otlp_receiver.fail_next(1, grpc_code="RESOURCE_EXHAUSTED")
    result, _ = _export(_exporter(otlp_receiver.grpc_endpoint, logged), make_spans(1))
    assert not result.success
    assert len(otlp_receiver.attempts) == 1


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("INVALID_ARGUMENT", "refused the data"),
        ("UNAUTHENTICATED", "OTEL_EXPORTER_OTLP_HEADERS"),
        ("PERMISSION_DENIED", "OTEL_EXPORTER_OTLP_HEADERS"),
        ("UNIMPLEMENTED", "check the endpoint"),
    ],
)
def test_a_permanent_error_is_not_retried_and_logged_once(
    otlp_receiver: OTLPReceiver, logged: Logged, code: str, hint: str
) -> None:
    diagnostics, logs = logged
    otlp_receiver.fail_next(3, grpc_code=code)
    exporter = _exporter(
        otlp_receiver.grpc_endpoint, logged, headers={"authorization": "Bearer s3cr3t-token"}
    )
    for _ in range(3):
        result, _took = _export(exporter, make_spans(1))
        assert not result.success
        assert code in (result.error or "")
    assert len(otlp_receiver.attempts) == 3  # one call per export: nothing retried
    assert diagnostics.spans_retried.value == 0
    (line,) = logs.messages  # one diagnostic, the repeats folded by the rate limit
    assert otlp_receiver.grpc_endpoint in line and code in line and hint in line
    assert "s3cr3t" not in line
    assert "s3cr3t" not in repr(exporter)


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_gzip_on_the_wire(otlp_receiver: OTLPReceiver, logged: Logged, compression: str) -> None:
    spans = make_spans(20, attributes=10)  # large enough that compressing pays
    exporter = _exporter(otlp_receiver.grpc_endpoint, logged, compression=compression)
    assert _export(exporter, spans)[0].success
    (received,) = otlp_receiver.requests
    assert received.content_encoding == ("gzip" if compression == "gzip" else None)
    assert_spans_arrived(spans, received)


def test_partial_success_is_counted_as_rejected(
    otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    diagnostics, logs = logged
    otlp_receiver.partial_success(2, "2 spans too old")
    spans = make_spans(5)
    exporter = _exporter(otlp_receiver.grpc_endpoint, logged)
    result, _ = _export(exporter, spans)
    assert result == ExportResult(True, rejected=2)
    record_export_result(diagnostics, exporter, len(spans), result)
    assert diagnostics.spans_exported.value == 3
    assert diagnostics.spans_dropped["rejected"].value == 2
    assert any("2 spans too old" in m for m in logs.messages)


def test_pointed_at_an_http_port_it_says_so_once(
    otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    diagnostics, logs = logged
    exporter = _exporter(otlp_receiver.http_base, logged)
    for _ in range(2):
        result, _ = _export(exporter, make_spans(1))
        assert "not an OTLP/gRPC endpoint" in (result.error or "")  # not retried
    assert diagnostics.spans_retried.value == 0
    (line,) = logs.messages
    assert otlp_receiver.http_base in line
    assert "4317" in line and "4318" in line
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in line
    assert otlp_receiver.attempts == []


def test_the_export_runs_with_instrumentation_suppressed(
    otlp_receiver: OTLPReceiver, logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = _exporter(otlp_receiver.grpc_endpoint, logged)
    seen: list[bool] = []
    send = exporter._send

    def spying_send(body: bytes, deadline: float) -> Outcome:
        seen.append(is_suppressed())
        return send(body, deadline)

    monkeypatch.setattr(exporter, "_send", spying_send)
    processor = BatchSpanProcessor(exporter, schedule_delay=60.0, diagnostics=logged[0])
    for span in make_spans(2):
        processor.on_end(span)
    assert processor.force_flush(deadline=time.monotonic() + 5)
    assert _export(exporter, make_spans(1))[0].success  # called directly, it suppresses itself
    assert not is_suppressed()
    assert seen == [True, True]
    processor.shutdown(deadline=time.monotonic() + 5)


def test_grpc_is_imported_at_the_first_export_not_before(otlp_receiver: OTLPReceiver) -> None:
    code = (
        "import sys, time\n"
        "from telemetry_run.sdk.exporters.otlp import OTLPGrpcSpanExporter\n"
        f"exporter = OTLPGrpcSpanExporter({otlp_receiver.grpc_endpoint!r})\n"
        "print(sorted(m for m in ('grpc', 'google.protobuf') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_constructor_rules() -> None:
    from telemetry_run.sdk.exporters.otlp.grpc import parse_target

    assert parse_target("http://collector:4317", insecure=False) == ("collector:4317", False)
    assert parse_target("https://collector:4317", insecure=True) == ("collector:4317", True)
    assert parse_target("https://collector", insecure=None) == ("collector:443", True)
    assert parse_target("collector:4317", insecure=True) == ("collector:4317", False)
    assert parse_target("collector:4317", insecure=None) == ("collector:4317", True)
    assert parse_target("http://user:pw@collector:4317/ignored", None) == ("collector:4317", False)
    with pytest.raises(ValueError):
        OTLPGrpcSpanExporter("http://c:4317", compression="brotli")
    with pytest.raises(ValueError):
        OTLPGrpcSpanExporter("http://c:4317", client_key_file="k.pem")
    shown = OTLPGrpcSpanExporter("http://user:secret@collector:4317?token=x")
    assert shown.endpoint == "http://collector:4317"
    assert "secret" not in repr(shown)


def test_export_of_nothing_and_after_shutdown() -> None:
    exporter = OTLPGrpcSpanExporter(f"http://127.0.0.1:{free_port()}")
    assert exporter.export([], deadline=time.monotonic() + 1).success
    assert exporter.force_flush(deadline=time.monotonic() + 1)
    exporter.shutdown(deadline=time.monotonic() + 1)
    exporter.shutdown(deadline=time.monotonic() + 1)  # idempotent
    result = exporter.export(make_spans(1), deadline=time.monotonic() + 1)
    assert not result.success and "shut down" in (result.error or "")


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


def test_tls_with_a_custom_ca(certificates: Certificates, logged: Logged) -> None:
    with OTLPReceiver(tls=certificates.server, http=False) as receiver:
        assert receiver.grpc_endpoint.startswith("https://")
        exporter = _exporter(receiver.grpc_endpoint, logged, certificate_file=certificates.ca_file)
        assert _export(exporter, make_spans(1))[0].success
        exporter.shutdown(deadline=time.monotonic() + 1)

        untrusted = _exporter(
            receiver.grpc_endpoint, logged, certificate_file=certificates.other_ca_file
        )
        result, _ = _export(untrusted, make_spans(1))
        assert (result.error or "").startswith("TLS handshake")  # not retried
        (line,) = logged[1].messages
        assert "not trusted" in line and "OTEL_EXPORTER_OTLP_CERTIFICATE" in line


def test_mtls(certificates: Certificates, logged: Logged) -> None:
    _diagnostics, logs = logged
    with OTLPReceiver(tls=certificates.mtls_server, http=False) as receiver:
        exporter = _exporter(
            receiver.grpc_endpoint,
            logged,
            certificate_file=certificates.ca_file,
            client_certificate_file=certificates.client_cert_file,
            client_key_file=certificates.client_key_file,
        )
        assert _export(exporter, make_spans(1))[0].success
        exporter.shutdown(deadline=time.monotonic() + 1)

        without = _exporter(receiver.grpc_endpoint, logged, certificate_file=certificates.ca_file)
        result, _ = _export(without, make_spans(1), 1.0)
        assert not result.success
        assert receiver.requests and len(receiver.requests) == 1
        (line,) = logs.messages
        assert receiver.grpc_endpoint in line
        assert "client certificate" in line and "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" in line
        assert certificates.client_key_file not in " ".join(logs.messages)


def test_an_unreadable_certificate_file_is_one_clear_failure(
    tmp_path: Path, logged: Logged
) -> None:
    exporter = _exporter(
        "https://127.0.0.1:1",
        logged,
        certificate_file=str(tmp_path / "missing-ca.pem"),
    )
    result, _ = _export(exporter, make_spans(1))
    assert "cannot read the CA certificate file" in (result.error or "")
    (line,) = logged[1].messages
    assert "CA certificate file" in line


def test_an_endpoint_without_a_host_is_refused_without_its_credentials() -> None:
    with pytest.raises(ValueError, match="has no host") as raised:
        OTLPGrpcSpanExporter("https://user:hunter2@/v1/traces")
    assert "hunter2" not in str(raised.value)
