"""``telemetry-run --view``'s options and the environment the traced command gets."""

from __future__ import annotations

import io
import socket

import pytest

from telemetry_run.cli import run as launcher
from telemetry_run.viewer.cli import child_environment, parse


def test_defaults_are_loopback_and_the_usual_ports() -> None:
    options = parse([])
    assert (options.host, options.port, options.grpc_port, options.http_port) == (
        "127.0.0.1",
        16686,
        4317,
        4318,
    )
    assert options.command == []


def test_options_take_a_value_either_way_and_stop_at_the_command() -> None:
    options = parse(
        [
            "--view-port=0",
            "--view-grpc-port",
            "5317",
            "--view-traces",
            "7",
            "python",
            "--view-spans",
            "3",
        ]
    )
    assert (options.port, options.grpc_port, options.traces) == (0, 5317, 7)
    assert options.command == ["python", "--view-spans", "3"]  # the command's own arguments
    assert parse(["--view-host", "::1", "--", "-x"]).command == ["-x"]
    assert parse(["--view-memory", "64"]).memory_mib == 64


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--view-port", "http"], "--view-port takes a number, not 'http'"),
        (["--view-port", "70000"], "--view-port takes a port (0-65535)"),
        (["--view-traces", "0"], "--view-traces takes a positive number"),
        (["--view-memory", "-1"], "--view-memory takes a positive number"),
        (["--view-spans"], "--view-spans needs a value"),
        (["--viewport", "1"], "unknown view option '--viewport'"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert launcher(["--view", *argv], {}, out, err) == 2
    assert err.getvalue().startswith("telemetry-run: ") and message in err.getvalue()
    assert err.getvalue().count("\n") == 1
    assert out.getvalue() == ""


def test_the_command_exports_to_the_viewer_whatever_it_had() -> None:
    env = child_environment(
        {
            "OTEL_TRACES_EXPORTER": "console",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://collector.example:4318/v1/traces",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_SERVICE_NAME": "shop",
        },
        "127.0.0.1",
        5317,
    )
    assert env["OTEL_TRACES_EXPORTER"] == "otlp"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:5317"
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://127.0.0.1:5317"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "grpc"
    assert env["OTEL_SERVICE_NAME"] == "shop"
    assert env["OTEL_BSP_SCHEDULE_DELAY"] == "1000"  # traces show up within a second


def test_a_viewer_on_every_address_is_reached_over_loopback() -> None:
    assert (
        child_environment({}, "0.0.0.0", 1)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:1"
    )
    assert child_environment({}, "::", 1)["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://[::1]:1"
    assert (
        child_environment({"OTEL_BSP_SCHEDULE_DELAY": "50"}, "::1", 1)["OTEL_BSP_SCHEDULE_DELAY"]
        == "50"
    )


def test_a_port_in_use_is_one_line_naming_it_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out, err = io.StringIO(), io.StringIO()
        argv = [
            "--view",
            "--view-grpc-port",
            "0",
            "--view-http-port",
            "0",
            "--view-port",
            str(port),
        ]
        assert launcher(argv, {}, out, err) == 1
    assert f"127.0.0.1:{port}" in err.getvalue() and "--view-*" in err.getvalue()
    assert out.getvalue() == ""


def test_help_lists_every_view_option() -> None:
    out = io.StringIO()
    assert launcher(["--view", "--help"], {}, out, io.StringIO()) == 0
    for option in (
        "--view-host",
        "--view-port",
        "--view-grpc-port",
        "--view-http-port",
        "--view-traces",
        "--view-spans",
        "--view-memory",
    ):
        assert option in out.getvalue()
