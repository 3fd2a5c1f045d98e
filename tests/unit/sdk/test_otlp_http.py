"""The OTLP/HTTP exporter (protobuf and JSON) against the real receiver of
``telemetry_run.testing``."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry_run.sdk import BatchSpanProcessor
from telemetry_run.sdk.context import is_suppressed
from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp import OTLPHttpSpanExporter
from telemetry_run.sdk.processors.simple import record_export_result
from telemetry_run.testing.otlp import OTLPReceiver
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


def _exporter(endpoint: str, logged: Logged, **kwargs: Any) -> OTLPHttpSpanExporter:
    kwargs.setdefault("retry_policy", FAST)
    return track(OTLPHttpSpanExporter(endpoint, diagnostics=logged[0], **kwargs))


_export = timed_export


@pytest.mark.parametrize(
    ("protocol", "content_type"),
    [("http/protobuf", "application/x-protobuf"), ("http/json", "application/json")],
)
def test_spans_arrive_with_their_fields(
    otlp_receiver: OTLPReceiver, logged: Logged, protocol: str, content_type: str
) -> None:
    spans = make_spans(4)
    exporter = _exporter(otlp_receiver.http_endpoint, logged, protocol=protocol)
    result, _ = _export(exporter, spans)
    assert result == ExportResult(True)
    (received,) = otlp_receiver.requests
    assert received.content_type == content_type
    assert received.path == "/v1/traces"
    assert_spans_arrived(spans, received)
    assert received.headers["user-agent"].startswith("telemetry-run/")
    assert logged[1].messages == []
    exporter.shutdown(deadline=time.monotonic() + 1)


def test_one_connection_is_kept_and_reused(otlp_receiver: OTLPReceiver, logged: Logged) -> None:
    exporter = _exporter(otlp_receiver.http_endpoint, logged)
    for _ in range(3):
        assert _export(exporter, make_spans(1))[0].success
    assert len({r.peer for r in otlp_receiver.requests}) == 1
    exporter.shutdown(deadline=time.monotonic() + 1)
    assert exporter._conn is None


def test_a_connection_the_receiver_closed_is_reopened_without_a_retry(
    otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    diagnostics, logs = logged
    otlp_receiver.close_connections_after_answer()
    exporter = _exporter(otlp_receiver.http_endpoint, logged)
    for _ in range(3):
        assert _export(exporter, make_spans(1))[0].success
    assert len(otlp_receiver.requests) == 3
    assert len({r.peer for r in otlp_receiver.requests}) == 3
    assert diagnostics.spans_retried.value == 0
    assert logs.messages == []


@pytest.mark.parametrize("status", [429, 502, 504])
def test_the_other_transient_statuses_are_retried(
    otlp_receiver: OTLPReceiver, logged: Logged, status: int
) -> None:
    otlp_receiver.fail_next(1, http_status=status)
    assert _export(_exporter(otlp_receiver.http_endpoint, logged), make_spans(1))[0].success
    assert len(otlp_receiver.attempts) == 2


def test_retry_after_is_honoured(otlp_receiver: OTLPReceiver, logged: Logged) -> None:
    otlp_receiver.fail_next(1, http_status=429, retry_delay=1)
    result, _ = _export(_exporter(otlp_receiver.http_endpoint, logged), make_spans(1))
    assert result.success
    first, second = otlp_receiver.attempts
    assert second.received_at - first.received_at >= 1.0


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (400, "refused the data"),
        (401, "OTEL_EXPORTER_OTLP_HEADERS"),
        (403, "OTEL_EXPORTER_OTLP_HEADERS"),
        (413, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
        (500, "HTTP 500"),
    ],
)
def test_a_permanent_error_is_not_retried_and_logged_once(
    otlp_receiver: OTLPReceiver, logged: Logged, status: int, hint: str
) -> None:
    diagnostics, logs = logged
    otlp_receiver.fail_next(3, http_status=status, message="the server's reason")
    exporter = _exporter(
        otlp_receiver.http_endpoint, logged, headers={"Authorization": "Bearer s3cr3t-token"}
    )
    for _ in range(3):
        result, _ = _export(exporter, make_spans(1))
        assert not result.success
        assert str(status) in (result.error or "")
    assert len(otlp_receiver.attempts) == 3
    assert diagnostics.spans_retried.value == 0
    (line,) = logs.messages
    assert otlp_receiver.http_endpoint in line and str(status) in line and hint in line
    assert "the server's reason" in line  # the google.rpc.Status message of the body
    assert "s3cr3t" not in line and "s3cr3t" not in repr(exporter)


def test_a_wrong_path_says_where_traces_go(otlp_receiver: OTLPReceiver, logged: Logged) -> None:
    exporter = _exporter(otlp_receiver.http_base + "/v1/trace", logged)
    result, _ = _export(exporter, make_spans(1))
    assert not result.success
    (line,) = logged[1].messages
    assert "404" in line and "/v1/traces" in line


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_gzip_on_the_wire(otlp_receiver: OTLPReceiver, logged: Logged, protocol: str) -> None:
    spans = make_spans(5)
    exporter = _exporter(otlp_receiver.http_endpoint, logged, compression="gzip", protocol=protocol)
    assert _export(exporter, spans)[0].success
    plain = _exporter(otlp_receiver.http_endpoint, logged, protocol=protocol)
    assert _export(plain, spans)[0].success
    compressed, uncompressed = otlp_receiver.requests
    assert compressed.content_encoding == "gzip"
    assert compressed.headers["content-encoding"] == "gzip"
    assert uncompressed.content_encoding is None
    assert_spans_arrived(spans, compressed)


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json"])
def test_partial_success_is_counted_as_rejected(
    otlp_receiver: OTLPReceiver, logged: Logged, protocol: str
) -> None:
    diagnostics, logs = logged
    otlp_receiver.partial_success(2, "2 spans too old")
    spans = make_spans(5)
    exporter = _exporter(otlp_receiver.http_endpoint, logged, protocol=protocol)
    result, _ = _export(exporter, spans)
    assert result == ExportResult(True, rejected=2)
    record_export_result(diagnostics, exporter, len(spans), result)
    assert diagnostics.spans_exported.value == 3
    assert diagnostics.spans_dropped["rejected"].value == 2
    assert any("2 spans too old" in m for m in logs.messages)


def test_pointed_at_a_grpc_port_it_says_so_once(
    otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    diagnostics, logs = logged
    endpoint = otlp_receiver.grpc_endpoint + "/v1/traces"
    exporter = _exporter(endpoint, logged)
    for _ in range(2):
        result, _ = _export(exporter, make_spans(1))
        assert "not an OTLP/HTTP endpoint" in (result.error or "")
    assert diagnostics.spans_retried.value == 0
    (line,) = logs.messages
    assert endpoint in line
    assert "4317" in line and "4318" in line and "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in line
    assert otlp_receiver.attempts == []


def test_the_exporter_suppresses_instrumentation_itself(
    otlp_receiver: OTLPReceiver, logged: Logged, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an HTTP-client instrumentor would see: the request is made while suppressed,
    whether the exporter is called by the batch processor's worker or directly."""
    seen: list[bool] = []
    request = http.client.HTTPConnection.request

    def spying_request(self: http.client.HTTPConnection, *args: Any, **kwargs: Any) -> None:
        seen.append(is_suppressed())
        request(self, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "request", spying_request)
    exporter = _exporter(otlp_receiver.http_endpoint, logged)
    assert _export(exporter, make_spans(1))[0].success
    assert not is_suppressed()
    processor = BatchSpanProcessor(exporter, schedule_delay=60.0, diagnostics=logged[0])
    for span in make_spans(2):
        processor.on_end(span)
    assert processor.force_flush(deadline=time.monotonic() + 5)
    processor.shutdown(deadline=time.monotonic() + 5)
    assert seen == [True, True]


def test_no_http_client_is_imported_before_the_first_export() -> None:
    code = (
        "import sys\n"
        "from telemetry_run.sdk.exporters.otlp import OTLPHttpSpanExporter\n"
        "OTLPHttpSpanExporter('http://127.0.0.1:4318/v1/traces', compression='gzip')\n"
        "print(sorted(m for m in ('http.client', 'ssl', 'google.protobuf') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_constructor_rules() -> None:
    from telemetry_run.sdk.exporters.otlp.http import parse_url

    assert parse_url("http://c:4318/v1/traces") == (False, "c", 4318, "/v1/traces")
    assert parse_url("https://c/custom?x=1") == (True, "c", 443, "/custom?x=1")
    assert parse_url("http://[::1]:4318") == (False, "::1", 4318, "/")
    for bad in ("c:4318", "grpc://c:4317", "http://:4318/"):
        with pytest.raises(ValueError):
            parse_url(bad)
    with pytest.raises(ValueError):
        OTLPHttpSpanExporter(protocol="grpc")
    shown = OTLPHttpSpanExporter("https://user:secret@c:4318/v1/traces?api_key=k")
    assert shown.endpoint == "https://c:4318/v1/traces"
    assert "secret" not in repr(shown) and "api_key" not in repr(shown)


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


def test_tls_with_a_custom_ca(certificates: Certificates, logged: Logged) -> None:
    with OTLPReceiver(tls=certificates.server, grpc=False) as receiver:
        assert receiver.http_endpoint.startswith("https://")
        exporter = _exporter(receiver.http_endpoint, logged, certificate_file=certificates.ca_file)
        assert _export(exporter, make_spans(1))[0].success
        exporter.shutdown(deadline=time.monotonic() + 1)

        untrusted = _exporter(
            receiver.http_endpoint, logged, certificate_file=certificates.other_ca_file
        )
        result, _ = _export(untrusted, make_spans(1))
        assert (result.error or "").startswith("TLS handshake")  # not retried
        (line,) = logged[1].messages
        assert "not trusted" in line and "OTEL_EXPORTER_OTLP_CERTIFICATE" in line

        plain = _exporter(receiver.http_endpoint.replace("https:", "http:"), logged)
        assert not _export(plain, make_spans(1), 0.5)[0].success


def test_mtls(certificates: Certificates, logged: Logged) -> None:
    logs = logged[1]
    with OTLPReceiver(tls=certificates.mtls_server, grpc=False) as receiver:
        exporter = _exporter(
            receiver.http_endpoint,
            logged,
            certificate_file=certificates.ca_file,
            client_certificate_file=certificates.client_cert_file,
            client_key_file=certificates.client_key_file,
        )
        assert _export(exporter, make_spans(1))[0].success
        exporter.shutdown(deadline=time.monotonic() + 1)

        without = _exporter(receiver.http_endpoint, logged, certificate_file=certificates.ca_file)
        result, _ = _export(without, make_spans(1), 1.0)
        assert not result.success
        assert len(receiver.requests) == 1
        # TLS 1.3 may first surface the refusal as a broken pipe (retried); the diagnostic that
        # names the fix follows once the server's alert is read.
        hints = [m for m in logs.messages if "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" in m]
        assert len(hints) == 1
        assert receiver.http_endpoint in hints[0]
        assert "client certificate" in hints[0]
        # The receiver records the refused handshake on its own thread: bounded wait for it.
        give_up = time.monotonic() + 5
        while not receiver.tls_failures and time.monotonic() < give_up:
            time.sleep(0.01)
        assert receiver.tls_failures


def test_an_unreadable_client_key_is_one_clear_failure_without_its_path(
    certificates: Certificates, tmp_path: Path, logged: Logged
) -> None:
    missing_key = str(tmp_path / "secret-place" / "client-key.pem")
    exporter = _exporter(
        "https://127.0.0.1:1/v1/traces",
        logged,
        certificate_file=certificates.ca_file,
        client_certificate_file=certificates.client_cert_file,
        client_key_file=missing_key,
    )
    result, _ = _export(exporter, make_spans(1))
    assert "cannot load the client certificate and key" in (result.error or "")
    (line,) = logged[1].messages
    assert "client certificate and key" in line
    assert "secret-place" not in line


def test_invalid_and_reserved_headers_are_dropped_naming_only_the_key(
    otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    exporter = _exporter(
        otlp_receiver.http_endpoint,
        logged,
        headers=[
            ("x-good", "yes"),
            ("x-broken", "secret-value\r\nInjected: 1"),
            ("Content-Type", "text/plain"),
            ("bad name", "v"),
            ("user-agent", "my-agent/1"),
        ],
    )
    assert _export(exporter, make_spans(1))[0].success
    (received,) = otlp_receiver.requests
    assert received.headers["x-good"] == "yes"
    assert "x-broken" not in received.headers and "injected" not in received.headers
    assert received.headers["content-type"] == "application/x-protobuf"
    assert received.headers["user-agent"] == "my-agent/1"
    logs = logged[1].messages
    assert len(logs) == 3
    assert any("'x-broken'" in line for line in logs)
    assert not any("secret-value" in line for line in logs)


def test_an_invalid_header_name_is_masked_it_may_be_a_credential(
    otlp_receiver: OTLPReceiver, logged: Logged
) -> None:
    exporter = _exporter(
        otlp_receiver.http_endpoint, logged, headers=[("Authorization: Bearer sk-123", "x")]
    )
    assert _export(exporter, make_spans(1))[0].success
    (line,) = logged[1].messages
    assert "sk-123" not in line and "characters, hidden" in line


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["http", "https", "HTTP", "ftp", ""]),
    st.sampled_from(["://", ":/", ""]),
    st.text("abcXYZ019.-_@[]:%", min_size=0, max_size=12),
    st.sampled_from(["", ":", ":0", ":80", ":4318", ":65535", ":65536", ":123456", ":x", ":٣"]),
    st.sampled_from(["", "/", "/v1/traces", "/a?b=1", "/a#f", "/a b"]),
)
def test_a_plain_endpoint_is_read_as_urllib_reads_it(
    scheme: str, sep: str, host: str, port: str, path: str
) -> None:
    # The start-up reading (string operations) agrees with urllib.parse wherever it answers.
    import urllib.parse

    from telemetry_run.sdk.exporters.otlp.http import _plain_url

    url = f"{scheme}{sep}{host}{port}{path}"
    plain = _plain_url(url)
    if plain is None:
        return
    parts = urllib.parse.urlsplit(url)
    expected_port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    assert plain == (
        parts.scheme.lower() == "https",
        parts.hostname,
        expected_port,
        parts.path or "/",
    )
