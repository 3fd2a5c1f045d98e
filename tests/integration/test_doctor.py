"""``telemetry-run --doctor``: the real launcher against the real OTLP receiver, on 127.0.0.1.

Each test is a situation a user meets (a healthy collector over gRPC and HTTP, a dead port,
the other transport's port, TLS on one side only, a certificate for another host) and checks
what the report says, its exit code, and what reached the receiver.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.testing.otlp import OTLPReceiver, free_port
from tests.integration.conftest import LAUNCHER, clean_env
from tests.unit.sdk.otlp_helpers import Certificates, make_certificates

CHECKS = ["dns", "tcp", "tls", "protocol", "test span"]


def doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAUNCHER, "--doctor", *args],
        env=clean_env(**({"OTEL_TRACES_EXPORTER": "otlp"} | env)),
        capture_output=True,
        text=True,
        timeout=120,  # only catches a hang: every step has its own bound
        check=False,
    )


def report(**env: str) -> tuple[int, dict[str, Any]]:
    result = doctor("--json", **env)
    assert result.stderr == ""
    return result.returncode, json.loads(result.stdout)


def checks(data: dict[str, Any]) -> dict[str, tuple[bool | None, str]]:
    (otlp,) = data["exporters"]
    return {c["check"]: (c["ok"], c["detail"]) for c in otlp["checks"]}


@pytest.fixture(scope="module")
def receiver() -> Any:
    with OTLPReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(Path(tmp_path_factory.mktemp("certs")))


def test_a_healthy_grpc_receiver_gets_the_test_span_and_the_exit_code_is_0(
    receiver: OTLPReceiver,
) -> None:
    receiver.reset()
    result = doctor(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint, OTEL_SERVICE_NAME="shop")
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert lines[-1] == "Verdict: telemetry would arrive."
    assert "    ok   protocol   HTTP/2, as OTLP/gRPC needs" in lines
    assert any(line.startswith("    ok   test span  sent and acknowledged in ") for line in lines)
    (span,) = receiver.wait_for_spans(1)
    assert span.name == "telemetry-run doctor"
    (request,) = receiver.requests
    resource = {
        a.key: a.value.string_value for a in request.request.resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "shop"


def test_a_healthy_http_receiver_in_json(receiver: OTLPReceiver) -> None:
    receiver.reset()
    code, data = report(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_base,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    assert code == 0 and data["ok"] is True and data["problems"] == []
    (otlp,) = data["exporters"]
    assert otlp["name"] == "otlp" and otlp["plugin"] == "builtin-otlp"
    assert otlp["endpoint"] == receiver.http_endpoint
    assert otlp["endpoint_from"] == "OTEL_EXPORTER_OTLP_ENDPOINT"
    assert otlp["protocol_from"] == "OTEL_EXPORTER_OTLP_PROTOCOL"
    assert [c["check"] for c in otlp["checks"]] == CHECKS
    assert [c["ok"] for c in otlp["checks"]] == [True, True, None, True, True]
    assert [s.name for s in receiver.wait_for_spans(1)] == ["telemetry-run doctor"]


def test_the_json_report_has_configuration_sources_instrumentors_and_masked_secrets(
    receiver: OTLPReceiver,
) -> None:
    code, data = report(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_EXPORTER_OTLP_HEADERS="api-key=s3cr3t-value",
        OTEL_BSP_MAX_QUEUE_SIZE="lots",
    )
    assert code == 0
    assert set(data) == {
        "ok", "version", "python", "executable", "config_file", "native_speedups",
        "configuration", "instrumentors", "exporters", "warnings", "problems",
    }  # fmt: skip
    assert data["config_file"] is None
    assert set(data["native_speedups"]) == {"loaded", "path", "error"}
    config = {c["name"]: c for c in data["configuration"]}
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"]["source"] == "environment"
    assert config["OTEL_SERVICE_NAME"]["source"] == "default"
    assert config["OTEL_BSP_MAX_QUEUE_SIZE"] == {
        "name": "OTEL_BSP_MAX_QUEUE_SIZE",
        "value": "2048",
        "source": "environment (invalid: see the warnings)",
    }
    assert config["OTEL_EXPORTER_OTLP_HEADERS"]["value"] == "<20 characters, hidden>"
    assert "s3cr3t" not in json.dumps(data)
    assert any("OTEL_BSP_MAX_QUEUE_SIZE='lots'" in w for w in data["warnings"])
    instrumentors = {i["name"]: i for i in data["instrumentors"]}
    assert {"flask", "django", "requests", "grpc"} <= set(instrumentors)
    for entry in instrumentors.values():
        assert set(entry) == {
            "name", "plugin", "patches", "library", "installed", "supports", "state", "reason",
        }  # fmt: skip
    assert instrumentors["flask"]["patches"] == ["flask"]


def test_a_disabled_instrumentor_says_why(receiver: OTLPReceiver) -> None:
    result = doctor(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.grpc_endpoint,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="flask",
    )
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("  flask ")]
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS" in line


def test_a_dead_port_fails_at_tcp_and_exits_1() -> None:
    port = free_port()
    code, data = report(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}")
    assert code == 1 and data["ok"] is False
    found = checks(data)
    assert found["dns"][0] is True
    assert found["tcp"] == (False, found["tcp"][1])
    assert found["tcp"][1].startswith(f"nothing listens on port {port} ")
    assert [found[name][0] for name in CHECKS[2:]] == [None, None, None]  # skipped
    assert data["problems"] == [f"exporter otlp: {found['tcp'][1]}"]


def test_an_unresolvable_host_fails_at_dns() -> None:
    code, data = report(OTEL_EXPORTER_OTLP_ENDPOINT="http://collector.invalid:4317")
    assert code == 1
    ok, detail = checks(data)["dns"]
    assert ok is False and detail.startswith("'collector.invalid' does not resolve")


def test_grpc_pointed_at_the_http_port_is_named(receiver: OTLPReceiver) -> None:
    receiver.reset()
    code, data = report(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.http_port}")
    assert code == 1
    ok, detail = checks(data)["protocol"]
    assert ok is False
    assert "speaks HTTP/1.1 only (it looks like an OTLP/HTTP port), not OTLP/gRPC" in detail
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf" in detail
    assert receiver.attempts == []  # no test span was sent to the wrong port


def test_http_pointed_at_the_grpc_port_is_named(receiver: OTLPReceiver) -> None:
    code, data = report(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.grpc_port}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/json",
    )
    assert code == 1
    ok, detail = checks(data)["protocol"]
    assert ok is False
    assert "speaks HTTP/2 (it looks like an OTLP/gRPC port), not OTLP/HTTP" in detail
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in detail


@pytest.mark.parametrize("transport", ["grpc", "http/protobuf"])
def test_tls_configured_against_a_plaintext_receiver(
    receiver: OTLPReceiver, transport: str
) -> None:
    port = receiver.grpc_port if transport == "grpc" else receiver.http_port
    code, data = report(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"https://127.0.0.1:{port}",
        OTEL_EXPORTER_OTLP_PROTOCOL=transport,
    )
    assert code == 1
    ok, detail = checks(data)["tls"]
    assert ok is False and detail.startswith("the endpoint does not speak TLS")


@pytest.mark.parametrize("transport", ["grpc", "http/protobuf"])
def test_plaintext_configured_against_a_tls_receiver(
    certificates: Certificates, transport: str
) -> None:
    with OTLPReceiver(tls=certificates.server) as tls_receiver:
        port = tls_receiver.grpc_port if transport == "grpc" else tls_receiver.http_port
        code, data = report(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL=transport,
        )
    assert code == 1
    ok, detail = checks(data)["protocol"]
    assert ok is False and detail.endswith("it probably expects TLS; use an https:// endpoint")


@pytest.mark.parametrize("transport", ["grpc", "http/protobuf"])
def test_a_tls_receiver_with_its_ca_configured_is_healthy(
    certificates: Certificates, transport: str
) -> None:
    with OTLPReceiver(tls=certificates.server) as tls_receiver:
        port = tls_receiver.grpc_port if transport == "grpc" else tls_receiver.http_port
        code, data = report(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"https://localhost:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL=transport,
            OTEL_EXPORTER_OTLP_CERTIFICATE=certificates.ca_file,
        )
        assert code == 0, data["problems"]
        assert checks(data)["tls"][1].endswith("the certificate is valid for localhost")
        assert [s.name for s in tls_receiver.wait_for_spans(1)] == ["telemetry-run doctor"]


@pytest.mark.parametrize("transport", ["grpc", "http/protobuf"])
def test_a_certificate_for_another_host_is_named(
    certificates: Certificates, transport: str
) -> None:
    with OTLPReceiver(tls=certificates.wrong_host) as impostor:
        port = impostor.grpc_port if transport == "grpc" else impostor.http_port
        code, data = report(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"https://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL=transport,
            OTEL_EXPORTER_OTLP_CERTIFICATE=certificates.ca_file,
        )
        assert impostor.attempts == []
    assert code == 1
    ok, detail = checks(data)["tls"]
    assert ok is False
    assert detail.startswith("the server's certificate is for another host (")
    assert "'127.0.0.1'" in detail


def test_a_certificate_from_an_unknown_ca_is_named(certificates: Certificates) -> None:
    with OTLPReceiver(tls=certificates.server) as tls_receiver:
        code, data = report(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"https://localhost:{tls_receiver.grpc_port}",
            OTEL_EXPORTER_OTLP_CERTIFICATE=certificates.other_ca_file,
        )
    assert code == 1
    ok, detail = checks(data)["tls"]
    assert ok is False and detail.startswith("the server's certificate is not trusted (")
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE" in detail


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"OTEL_TRACES_EXPORTER": "none"}, "OTEL_TRACES_EXPORTER=none"),
        ({"OTEL_SDK_DISABLED": "true"}, "OTEL_SDK_DISABLED=true"),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, "OTEL_TRACES_SAMPLER=always_off"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"},
            "OTEL_TRACES_SAMPLER=traceidratio with OTEL_TRACES_SAMPLER_ARG=0",
        ),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "exporter zipkin: no installed plugin"),
    ],
)
def test_settings_that_stop_every_span_exit_1(env: dict[str, str], problem: str) -> None:
    result = doctor(**env)
    assert result.returncode == 1
    assert "Verdict: telemetry would NOT arrive:" in result.stdout
    assert f"  - {problem}" in result.stdout


def test_the_console_exporter_alone_delivers() -> None:
    code, data = report(OTEL_TRACES_EXPORTER="console")
    assert code == 0
    assert data["exporters"] == [
        {
            "name": "console",
            "plugin": "builtin",
            "ok": True,
            "detail": "spans are printed on the process's standard output",
        }
    ]


def test_doctor_is_an_option_and_takes_only_json() -> None:
    result = doctor("--verbose")
    assert result.returncode == 2
    assert result.stderr.startswith("telemetry-run: --doctor takes only --json")


def test_a_receiver_that_refuses_the_test_span_fails_the_last_check(
    receiver: OTLPReceiver,
) -> None:
    receiver.reset()
    receiver.fail_next(5, grpc_code="UNAUTHENTICATED", message="missing api-key header")
    try:
        code, data = report(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_base,
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        )
    finally:
        receiver.clear_faults()
    assert code == 1
    found = checks(data)
    assert [found[name][0] for name in CHECKS] == [True, True, None, True, False]
    assert found["test span"][1].startswith("not acknowledged: ")
    assert "401" in found["test span"][1]
    assert len(receiver.attempts) == 1  # a permanent refusal is not retried


def test_an_endpoint_refused_at_start_up_is_reported_without_a_connection() -> None:
    code, data = report(OTEL_EXPORTER_OTLP_ENDPOINT="http://:4317")
    assert code == 1
    (otlp,) = data["exporters"]
    assert otlp["ok"] is False and otlp["checks"] == []
    assert otlp["detail"].startswith("the OTLP exporter is off")
    assert any(
        w.startswith("OTEL_EXPORTER_OTLP_ENDPOINT='http://:4317' has no host")
        for w in data["warnings"]
    )


def test_the_help_lists_the_option() -> None:
    result = subprocess.run(
        [*LAUNCHER, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert "--doctor" in result.stdout.splitlines()[0]
    assert any(line.lstrip().startswith("--doctor ") for line in result.stdout.splitlines())
