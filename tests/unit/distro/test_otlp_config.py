"""The built-in ``otlp`` exporter: its variables, and the specification's rules for them."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry_run import _otlp
from telemetry_run.config import Config
from telemetry_run.listing import render
from telemetry_run.plugins import Plugins
from telemetry_run.sdk.exporters.otlp import OTLPGrpcSpanExporter, OTLPHttpSpanExporter


def _config(**env: str) -> tuple[Config, list[str]]:
    warnings: list[str] = []
    return Config.from_env(env, _otlp.VARIABLES, warn=warnings.append), warnings


def _settings(**env: str) -> _otlp.OTLPSettings:
    config, warnings = _config(**env)
    assert warnings == []
    return _otlp.otlp_settings(config)


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins.load()


def test_the_plugin_is_registered_and_provides_otlp(plugins: Plugins) -> None:
    assert plugins.provider_of("exporter", "otlp") == "builtin-otlp"
    names = {variable.name for variable in plugins.variables()}
    for option in (
        "ENDPOINT",
        "PROTOCOL",
        "HEADERS",
        "TIMEOUT",
        "COMPRESSION",
        "INSECURE",
        "CERTIFICATE",
        "CLIENT_KEY",
        "CLIENT_CERTIFICATE",
    ):
        assert f"OTEL_EXPORTER_OTLP_{option}" in names
        assert f"OTEL_EXPORTER_OTLP_TRACES_{option}" in names


def test_defaults_are_grpc_to_localhost_4317_with_a_10_second_timeout() -> None:
    settings = _settings()
    assert settings == _otlp.OTLPSettings(
        protocol="grpc",
        endpoint="http://localhost:4317",
        insecure=False,
        headers=(),
        timeout=10.0,
        compression="none",
        certificate_file=None,
        client_key_file=None,
        client_certificate_file=None,
    )
    http = _settings(OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert http.endpoint == "http://localhost:4318/v1/traces"


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://gw.example.com/otlp", "https://gw.example.com/otlp/v1/traces"),
        ("https://gw.example.com/otlp/", "https://gw.example.com/otlp/v1/traces"),
    ],
)
def test_http_appends_the_signal_path_to_the_general_endpoint(base: str, expected: str) -> None:
    settings = _settings(
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_EXPORTER_OTLP_ENDPOINT=base
    )
    assert settings.endpoint == expected


@pytest.mark.parametrize(
    ("traces", "expected"),
    [
        ("http://collector:4318/custom/path", "http://collector:4318/custom/path"),
        ("http://collector:4318", "http://collector:4318/"),
        ("http://collector:4318/v1/traces", "http://collector:4318/v1/traces"),
    ],
)
def test_http_uses_the_traces_endpoint_as_is_and_it_wins(traces: str, expected: str) -> None:
    settings = _settings(
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://ignored:4318",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=traces,
    )
    assert settings.endpoint == expected


def test_grpc_takes_the_endpoint_as_is() -> None:
    assert _settings(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4317").endpoint == "http://c:4317"
    settings = _settings(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://general:4317",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="https://traces:4317",
    )
    assert settings.endpoint == "https://traces:4317"


def _built(plugins: Plugins, **env: str) -> object:
    config = Config.from_env(env, plugins.variables())
    exporter = plugins.span_exporter("otlp", config)
    assert exporter is not None
    return exporter


@pytest.mark.parametrize(
    ("env", "target", "secure"),
    [
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, "c:4317", False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317"}, "c:4317", True),
        # the scheme wins over INSECURE
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "https://c:4317",
                "OTEL_EXPORTER_OTLP_INSECURE": "true",
            },
            "c:4317",
            True,
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
                "OTEL_EXPORTER_OTLP_INSECURE": "false",
            },
            "c:4317",
            False,
        ),
        # without a scheme INSECURE decides, and it defaults to false (TLS)
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317"}, "c:4317", True),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317", "OTEL_EXPORTER_OTLP_INSECURE": "true"},
            "c:4317",
            False,
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317",
                "OTEL_EXPORTER_OTLP_INSECURE": "false",
                "OTEL_EXPORTER_OTLP_TRACES_INSECURE": "true",
            },
            "c:4317",
            False,
        ),
        ({}, "localhost:4317", False),
    ],
)
def test_grpc_scheme_decides_tls_and_insecure_applies_only_without_one(
    plugins: Plugins, env: dict[str, str], target: str, secure: bool
) -> None:
    exporter = _built(plugins, **env)
    assert isinstance(exporter, OTLPGrpcSpanExporter)
    assert (exporter._target, exporter._secure) == (target, secure)


def test_protocol_selection_and_per_signal_protocol_wins(plugins: Plugins) -> None:
    assert isinstance(_built(plugins), OTLPGrpcSpanExporter)
    http = _built(plugins, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    assert isinstance(http, OTLPHttpSpanExporter) and not http._json
    json_exporter = _built(
        plugins,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/json",
    )
    assert isinstance(json_exporter, OTLPHttpSpanExporter) and json_exporter._json
    assert json_exporter._request_headers["Content-Type"] == "application/json"


def test_headers_are_percent_decoded_and_per_signal_headers_win(plugins: Plugins) -> None:
    settings = _settings(OTEL_EXPORTER_OTLP_HEADERS="api-key=a%3Db%2Cc,x-team = blue%20team")
    assert settings.headers == (("api-key", "a=b,c"), ("x-team", "blue team"))
    settings = _settings(OTEL_EXPORTER_OTLP_HEADERS="a=1", OTEL_EXPORTER_OTLP_TRACES_HEADERS="b=2")
    assert settings.headers == (("b", "2"),)
    exporter = _built(
        plugins,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20xyz",
    )
    assert isinstance(exporter, OTLPHttpSpanExporter)
    assert exporter._request_headers["Authorization"] == "Bearer xyz"


def test_the_timeout_is_milliseconds_and_zero_means_no_limit() -> None:
    assert _settings(OTEL_EXPORTER_OTLP_TIMEOUT="500").timeout == 0.5
    assert _settings(OTEL_EXPORTER_OTLP_TIMEOUT="10000").timeout == 10.0  # not 10 000 s
    assert _settings(OTEL_EXPORTER_OTLP_TIMEOUT="0").timeout == math.inf
    assert (
        _settings(OTEL_EXPORTER_OTLP_TIMEOUT="500", OTEL_EXPORTER_OTLP_TRACES_TIMEOUT="250").timeout
        == 0.25
    )


def test_compression_and_tls_files_pass_through(plugins: Plugins) -> None:
    settings = _settings(
        OTEL_EXPORTER_OTLP_COMPRESSION="GZIP",
        OTEL_EXPORTER_OTLP_CERTIFICATE="/etc/ca.pem",
        OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY="/etc/key.pem",
        OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE="/etc/cert.pem",
    )
    assert settings.compression == "gzip"
    assert settings.certificate_file == "/etc/ca.pem"
    assert (settings.client_key_file, settings.client_certificate_file) == (
        "/etc/key.pem",
        "/etc/cert.pem",
    )
    exporter = _built(plugins, OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
    assert isinstance(exporter, OTLPGrpcSpanExporter) and exporter._gzip


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "HTTP"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "yes"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5s"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-1"),
    ],
)
def test_an_invalid_value_warns_once_and_the_default_is_used(name: str, value: str) -> None:
    config, warnings = _config(**{name: value})
    assert len(warnings) == 1
    assert name in warnings[0] and repr(value) in warnings[0]
    assert _otlp.otlp_settings(config) == _settings()


def test_a_secret_header_value_is_never_shown() -> None:
    _, warnings = _config(OTEL_EXPORTER_OTLP_HEADERS="api-key=hunter2,broken")
    assert len(warnings) == 1 and "hunter2" not in warnings[0]


# -- an endpoint that cannot be used turns the exporter off (no fallback to the default) -----

SECRET = "s3cr3t-api-key"


@pytest.mark.parametrize(
    ("name", "env"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://:4317"}),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{SECRET}@collector:99999"},
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"}),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:port"},
        ),
        (  # the signal's own endpoint is invalid: the general one does not replace it either
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://:4318/v1/traces",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
        ),
        (  # valid for gRPC (a target), but OTLP/HTTP needs a URL
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            },
        ),
        (  # a gRPC target urlsplit cannot even split
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "//[::1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"ftp://u:{SECRET}@collector/v1/traces",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            },
        ),
    ],
)
def test_an_unusable_endpoint_turns_the_exporter_off_with_one_error(
    plugins: Plugins, caplog: pytest.LogCaptureFixture, name: str, env: dict[str, str]
) -> None:
    env = {**env, "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET}"}
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        config = Config.from_env(env, plugins.variables())
        exporter = plugins.span_exporter("otlp", config)
    assert isinstance(exporter, _otlp.OTLPExporterOff)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert message.startswith(f"{name}=")
    assert "the OTLP exporter is off" in message and "export_failed" in message
    assert "default endpoint" in message
    assert SECRET not in message
    assert SECRET not in repr(config) and SECRET not in str(config)
    assert SECRET not in repr(_otlp.otlp_settings(config))
    result = exporter.export([], deadline=0.0)
    assert not result.success and not result.retryable


def test_a_valid_traces_endpoint_is_used_whatever_the_general_one_says(plugins: Plugins) -> None:
    config = Config.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://:4317",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317",
        },
        plugins.variables(),
        warn=lambda message: None,
    )
    exporter = plugins.span_exporter("otlp", config)
    assert isinstance(exporter, OTLPGrpcSpanExporter)
    assert exporter.endpoint == "http://collector:4317"


def test_the_off_exporter_counts_every_span_as_export_failed() -> None:
    from telemetry_run.sdk import Diagnostics, TracerProvider
    from telemetry_run.sdk.processors.batch import BatchSpanProcessor

    diagnostics = Diagnostics()
    provider = TracerProvider(diagnostics=diagnostics, shutdown_on_exit=False)
    off = _otlp.OTLPExporterOff(_otlp._OFF)
    provider.add_span_processor(BatchSpanProcessor(off, diagnostics=diagnostics))
    tracer = provider.get_tracer("t")
    for _ in range(3):
        with tracer.start_as_current_span("s"):
            pass
    provider.shutdown(5.0)
    counts = diagnostics.snapshot()
    assert (counts["produced"], counts["exported"], counts["export_failed"]) == (3, 0, 3)


# -- a passphrase-protected client key is refused at start-up ---------------------------------


def _key_files(folder: Path) -> dict[str, str]:
    """A plain key, the same key encrypted as PKCS#8 and as traditional OpenSSL PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    encrypted = serialization.BestAvailableEncryption(b"passphrase")
    forms = {
        "plain": (serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "pkcs8": (serialization.PrivateFormat.PKCS8, encrypted),
        "traditional": (serialization.PrivateFormat.TraditionalOpenSSL, encrypted),
    }
    files = {}
    for name, (form, encryption) in forms.items():
        path = folder / f"{name}-key.pem"
        path.write_bytes(private.private_bytes(serialization.Encoding.PEM, form, encryption))
        files[name] = str(path)
    return files


@pytest.mark.parametrize("form", ["pkcs8", "traditional"])
@pytest.mark.parametrize("prefix", ["OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_an_encrypted_client_key_turns_the_exporter_off_with_one_error(
    plugins: Plugins,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    form: str,
    prefix: str,
    protocol: str,
) -> None:
    keys = _key_files(tmp_path)
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        f"{prefix}CLIENT_KEY": keys[form],
        f"{prefix}CLIENT_CERTIFICATE": str(tmp_path / "cert.pem"),
    }
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        exporter = plugins.span_exporter("otlp", Config.from_env(env, plugins.variables()))
    assert isinstance(exporter, _otlp.OTLPExporterOff)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert message.startswith(f"{prefix}CLIENT_KEY=") and "encrypted" in message
    assert keys[form] not in message and str(tmp_path) not in message
    # the same key decrypted is used as before
    env[f"{prefix}CLIENT_KEY"] = keys["plain"]
    settings = _otlp.otlp_settings(Config.from_env(env, plugins.variables()))
    assert settings.off is None and settings.client_key_file == keys["plain"]


def test_mtls_needs_both_files(caplog: pytest.LogCaptureFixture) -> None:
    config, _ = _config(OTEL_EXPORTER_OTLP_CLIENT_KEY="/secret/key.pem")
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        settings = _otlp.otlp_settings(config)
    assert settings.client_key_file is None and settings.client_certificate_file is None
    (record,) = caplog.records
    assert "/secret/key.pem" not in record.getMessage()


def test_list_masks_header_values_and_the_client_key_path() -> None:
    out = render(
        {
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=hunter2",
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY": "/very/secret/key.pem",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        }
    )
    assert "hunter2" not in out
    assert "/very/secret/key.pem" not in out
    assert "http://collector:4317" in out
    assert "otlp: builtin-otlp" in out


def test_building_the_exporter_imports_no_transport() -> None:
    code = (
        "import sys\n"
        "from telemetry_run.config import Config\n"
        "from telemetry_run.plugins import Plugins\n"
        "plugins = Plugins.load()\n"
        "for protocol in ('grpc', 'http/protobuf'):\n"
        "    config = Config.from_env({'OTEL_EXPORTER_OTLP_PROTOCOL': protocol}, "
        "plugins.variables())\n"
        "    assert plugins.span_exporter('otlp', config) is not None\n"
        "print(sorted(m for m in ('grpc', 'google.protobuf', 'http.client', 'ssl') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "[]", result.stderr
