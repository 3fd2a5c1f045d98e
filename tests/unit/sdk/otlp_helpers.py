"""Helpers shared by the OTLP exporter tests: spans to send, a certificate authority, logs."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from telemetry_run.sdk import (
    Diagnostics,
    InMemorySpanExporter,
    ReadableSpan,
    Resource,
    SimpleSpanProcessor,
    TracerProvider,
)
from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp import RetryPolicy
from telemetry_run.sdk.trace.api import SpanKind, Status, StatusCode
from telemetry_run.testing.otlp import ReceivedRequest, TLSFiles

#: Retries in milliseconds, so tests of the retry paths stay fast.
FAST = RetryPolicy(initial_backoff=0.02, multiplier=2.0, max_backoff=0.1)


def make_spans(count: int = 3, *, attributes: int = 3) -> list[ReadableSpan]:
    """``count`` finished spans (a parent and children) with attributes, an event, a status."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource({"service.name": "otlp-test", "deployment": "ci"}),
        shutdown_on_exit=False,
        diagnostics=Diagnostics(),
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("otlp.tests", "1.2.3")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("http.request.method", "GET")
        for i in range(count - 1):
            child = tracer.start_span(f"child-{i}", kind=SpanKind.CLIENT)
            for a in range(attributes):
                child.set_attribute(f"attr.{a}", f"value-{i}-{a}" * 3)
            child.set_attribute("count", i)
            child.set_attribute("ratio", i / 2)
            child.set_attribute("flag", i % 2 == 0)
            child.set_attribute("tags", ("a", "b"))
            child.add_event("retry", {"attempt": i})
            child.set_status(Status(StatusCode.ERROR, "boom"))
            child.end()
    provider.shutdown(timeout=1.0)
    return list(exporter.get_finished_spans())


class Logs(logging.Handler):
    """Collects the messages a private Diagnostics logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def matching(self, text: str) -> list[str]:
        return [m for m in self.messages if text in m]


def diagnostics_with_logs() -> tuple[Diagnostics, Logs]:
    logs = Logs()
    logger = logging.getLogger(f"telemetry_run.tests.{id(logs)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(logs)
    return Diagnostics(log=logger), logs


Logged = tuple[Diagnostics, Logs]

#: Exporters a test made; ``logged_exporters`` shuts each one down after the test (an open
#: channel or connection left to the garbage collector is a ResourceWarning).
made_exporters: list[Any] = []


def logged_exporters() -> Iterator[Logged]:
    """The body of the ``logged`` fixture: a private Diagnostics with its log lines, then the
    shutdown of every exporter ``track`` saw."""
    yield diagnostics_with_logs()
    while made_exporters:
        made_exporters.pop().shutdown(deadline=time.monotonic() + 1)


E = TypeVar("E")


def track(exporter: E) -> E:
    made_exporters.append(exporter)
    return exporter


def timed_export(
    exporter: Any, spans: list[ReadableSpan], within: float = 5.0
) -> tuple[ExportResult, float]:
    """One export with a deadline ``within`` seconds away: its result and how long it took."""
    started = time.monotonic()
    result = exporter.export(spans, deadline=started + within)
    return result, time.monotonic() - started


@dataclass
class Certificates:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client pair."""

    ca_file: str
    server: TLSFiles
    mtls_server: TLSFiles
    client_cert_file: str
    client_key_file: str
    other_ca_file: str
    wrong_host: TLSFiles  # signed by the CA, but for wrong.example only


def make_certificates(folder: Path) -> Certificates:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write_key(name: str, private: ec.EllipticCurvePrivateKey) -> str:
        path = folder / name
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(path)

    def write_cert(name: str, cert: x509.Certificate) -> str:
        path = folder / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path)

    def ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        private = key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False
            )
            .sign(private, hashes.SHA256())
        )
        return cert, private

    def leaf(
        issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        common_name: str,
        *,
        server: bool,
        names: tuple[x509.GeneralName, ...] = (
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        ),
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        private = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(issuer[0].subject)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(list(names)), critical=False
            )
        return builder.sign(issuer[1], hashes.SHA256()), private

    authority = ca("telemetry-run test CA")
    other = ca("some other CA")
    server_cert, server_key = leaf(authority, "localhost", server=True)
    client_cert, client_key = leaf(authority, "otlp-client", server=False)
    wrong_cert, wrong_key = leaf(
        authority, "wrong.example", server=True, names=(x509.DNSName("wrong.example"),)
    )
    ca_file = write_cert("ca.pem", authority[0])
    server_files = TLSFiles(
        write_cert("server.pem", server_cert), write_key("server-key.pem", server_key)
    )
    return Certificates(
        ca_file=ca_file,
        server=server_files,
        mtls_server=TLSFiles(server_files.cert_file, server_files.key_file, ca_file),
        client_cert_file=write_cert("client.pem", client_cert),
        client_key_file=write_key("client-key.pem", client_key),
        other_ca_file=write_cert("other-ca.pem", other[0]),
        wrong_host=TLSFiles(
            write_cert("wrong-host.pem", wrong_cert), write_key("wrong-host-key.pem", wrong_key)
        ),
    )


def any_value(value: Any) -> object:
    """An OTLP AnyValue as the Python value it encodes."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    return getattr(value, kind)


def assert_spans_arrived(sent: list[ReadableSpan], received: ReceivedRequest) -> None:
    """The basic fields of every span sent are in the request the receiver decoded."""
    from opentelemetry.proto.trace.v1 import trace_pb2

    (resource_spans,) = received.request.resource_spans
    resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
    assert resource["service.name"] == "otlp-test"
    assert resource["deployment"] == "ci"
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("otlp.tests", "1.2.3")
    by_id = {int.from_bytes(s.span_id, "big"): s for s in scope_spans.spans}
    assert len(by_id) == len(sent)
    for span in sent:
        got = by_id[span.span_id]
        assert got.name == span.name
        assert int.from_bytes(got.trace_id, "big") == span.trace_id
        parent = int.from_bytes(got.parent_span_id, "big") if got.parent_span_id else None
        assert parent == (span.parent.span_id if span.parent else None)
        assert trace_pb2.Span.SpanKind.Name(got.kind) == f"SPAN_KIND_{span.kind.name}"
        assert got.start_time_unix_nano == span.start_time
        assert got.end_time_unix_nano == span.end_time
        assert {kv.key: any_value(kv.value) for kv in got.attributes} == dict(span.attributes)
        assert [e.name for e in got.events] == [e.name for e in span.events]
        for event, sent_event in zip(got.events, span.events, strict=True):
            assert event.time_unix_nano == sent_event.timestamp
            assert {kv.key: any_value(kv.value) for kv in event.attributes} == dict(
                sent_event.attributes
            )
        assert got.status.code == span.status.status_code.value
        assert got.status.message == (span.status.description or "")


FORK_SCRIPT = r"""
import os, sys, time
sys.path.insert(0, sys.argv[3])
from tests.unit.sdk.otlp_helpers import make_spans
from telemetry_run.sdk.exporters.otlp import OTLPGrpcSpanExporter, OTLPHttpSpanExporter

kind, endpoint = sys.argv[1], sys.argv[2]
cls = OTLPGrpcSpanExporter if kind == "grpc" else OTLPHttpSpanExporter
exporter = cls(endpoint)
spans = make_spans(1)

def transport():
    return exporter._channel if kind == "grpc" else exporter._conn

def send():
    return exporter.export(spans, deadline=time.monotonic() + 10).success

assert send(), "parent, before the fork"
inherited = transport()
assert inherited is not None
pid = os.fork()
if pid == 0:
    ok = send()
    own = transport()
    print(f"child ok={ok} own={own is not None and own is not inherited}", flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
ok = send()
print(f"parent ok={ok} kept={transport() is inherited} child_exit={status}", flush=True)
exporter.shutdown(deadline=time.monotonic() + 1)
"""


def run_fork_script(kind: str, endpoint: str) -> str:
    """Run FORK_SCRIPT in a fresh interpreter; its stdout."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[3])
    result = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, kind, endpoint, root],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def encrypted_copy(key_file: str, folder: Path, *, traditional: bool = False) -> str:
    """The PEM key at ``key_file`` encrypted with a passphrase (PKCS#8, or the traditional
    ``Proc-Type: 4,ENCRYPTED`` form): loading it makes OpenSSL want the passphrase."""
    from cryptography.hazmat.primitives import serialization

    with open(key_file, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    form = (
        serialization.PrivateFormat.TraditionalOpenSSL
        if traditional
        else serialization.PrivateFormat.PKCS8
    )
    path = folder / ("encrypted-traditional-key.pem" if traditional else "encrypted-key.pem")
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            form,
            serialization.BestAvailableEncryption(b"the passphrase"),
        )
    )
    return str(path)
