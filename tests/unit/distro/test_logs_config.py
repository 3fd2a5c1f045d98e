"""Logs export's configuration: OTEL_LOGS_EXPORTER (validated, none by default, OpenTelemetry's
switch honoured when unset), OTEL_BLRP_*, and OTEL_EXPORTER_OTLP_LOGS_* over the general OTLP
variables, by the same rules as the traces ones (/v1/logs for HTTP)."""

from __future__ import annotations

import json

import pytest

from telemetry_run import _otlp
from telemetry_run.config import Config
from telemetry_run.sdk.exporters.otlp.grpc_logs import OTLPGrpcLogExporter
from telemetry_run.sdk.exporters.otlp.http_logs import OTLPHttpLogExporter
from tests.unit.distro.test_start_up import _BOOT, LEFT_OUT, _child


def _config(**env: str) -> tuple[Config, list[str]]:
    warnings: list[str] = []
    return Config.from_env(env, _otlp.VARIABLES, warn=warnings.append), warnings


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, ()),
        ({"OTEL_LOGS_EXPORTER": "none"}, ()),
        ({"OTEL_LOGS_EXPORTER": "OTLP"}, ("otlp",)),
        ({"OTEL_LOGS_EXPORTER": "otlp,console"}, ("otlp", "console")),
        ({"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}, ("otlp",)),
        (
            {
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
                "OTEL_LOGS_EXPORTER": "console",
            },
            ("console",),
        ),
        (
            {
                "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true",
                "OTEL_LOGS_EXPORTER": "none",
            },
            (),
        ),
    ],
)
def test_which_log_exporters_run(env: dict[str, str], exporters: tuple[str, ...]) -> None:
    config, warnings = _config(**env)
    assert warnings == []
    assert config.logs_exporters == exporters


def test_a_bad_value_warns_once_naming_it_and_exports_nothing() -> None:
    config, warnings = _config(OTEL_LOGS_EXPORTER="otlp,syslog")
    assert warnings == [
        "OTEL_LOGS_EXPORTER='otlp,syslog' is not one of otlp, console, none (or a list of "
        "them); using the default (none)"
    ]
    assert config.logs_exporters == ()


def test_the_batch_settings_and_their_relation() -> None:
    config, warnings = _config(OTEL_BLRP_MAX_QUEUE_SIZE="10", OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="50")
    assert warnings == [
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=50 is larger than OTEL_BLRP_MAX_QUEUE_SIZE=10; using 10"
    ]
    assert config["OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"] == 10
    defaults, _ = _config()
    assert defaults["OTEL_BLRP_SCHEDULE_DELAY"] == 1.0
    assert defaults["OTEL_BLRP_EXPORT_TIMEOUT"] == 30.0
    assert defaults["OTEL_BLRP_MAX_QUEUE_SIZE"] == 2048


@pytest.mark.parametrize(
    ("env", "endpoint"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, "http://localhost:4318/v1/logs"),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/base",
            },
            "http://collector:4318/base/v1/logs",
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9000/ingest",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9000/t",
            },
            "http://logs:9000/ingest",
        ),
        ({}, "http://localhost:4317"),
        ({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4317"}, "http://logs:4317"),
    ],
)
def test_the_logs_endpoint_follows_the_specifications_rules(
    env: dict[str, str], endpoint: str
) -> None:
    config, warnings = _config(**env)
    assert warnings == []
    assert _otlp.otlp_settings(config, "logs").endpoint == endpoint


def test_a_logs_variable_wins_over_the_general_one_and_traces_ones_do_not_apply() -> None:
    config, _ = _config(
        OTEL_EXPORTER_OTLP_HEADERS="x-key=general",
        OTEL_EXPORTER_OTLP_LOGS_HEADERS="x-key=logs",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/json",
        OTEL_EXPORTER_OTLP_TIMEOUT="2500",
        OTEL_EXPORTER_OTLP_LOGS_COMPRESSION="gzip",
    )
    logs = _otlp.otlp_settings(config, "logs")
    assert logs.headers == (("x-key", "logs"),)
    assert logs.protocol == "grpc"
    assert logs.timeout == 2.5
    assert logs.compression == "gzip"
    assert _otlp.otlp_settings(config).headers == (("x-key", "general"),)
    assert isinstance(_otlp.log_exporter(config), OTLPGrpcLogExporter)
    http, _ = _config(OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http/json")
    exporter = _otlp.log_exporter(http)
    assert isinstance(exporter, OTLPHttpLogExporter)
    assert exporter.endpoint == "http://localhost:4318/v1/logs"


def test_an_invalid_logs_endpoint_turns_the_log_exporter_off() -> None:
    errors: list[str] = []
    config = Config.from_env(
        {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://:99999"},
        _otlp.VARIABLES,
        warn=errors.append,
    )
    assert len(errors) == 1 and "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT" in errors[0]
    exporter = _otlp.log_exporter(config)
    assert isinstance(exporter, _otlp.OTLPExporterOff)
    assert not exporter.export([], deadline=0.0).success


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_logs_export_leaves_logging_and_the_heavy_modules_out_of_start_up(protocol: str) -> None:
    out = _child(_BOOT, OTEL_LOGS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    imported = set(json.loads(out.stdout))
    assert not imported & set(LEFT_OUT), sorted(imported & set(LEFT_OUT))
    assert "telemetry_run.sdk.logs.processor" in imported  # the pipeline is built...
    assert "telemetry_run.sdk.logs.bridge" not in imported  # ...its logging side waits
    assert out.stderr == ""


def test_log_record_limits_win_over_the_general_ones() -> None:
    import logging

    from telemetry_run.bootstrap import build_logs
    from telemetry_run.sdk.logs import bridge
    from telemetry_run.sdk.trace.provider import TracerProvider

    specific, _ = _config(
        OTEL_LOGS_EXPORTER="console",
        OTEL_ATTRIBUTE_COUNT_LIMIT="10",
        OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="100",
        OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT="7",
    )
    general, _ = _config(OTEL_LOGS_EXPORTER="console")
    built = []
    try:  # build_logs attaches this test process's logging (it is imported): undone below
        for config in (specific, general):
            logs = build_logs(config, TracerProvider(shutdown_on_exit=False))
            assert logs is not None
            built.append(logs)
            logs.shutdown(5.0)
    finally:
        bridge.detach(logging)
    assert [(logs.max_attributes, logs.max_attribute_length) for logs in built] == [
        (7, 100),
        (128, None),
    ]
