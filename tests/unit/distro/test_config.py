"""The configuration registry: the specification's parsing rules, one warning per bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from telemetry_run._env import InvalidValue, parse_int, parse_key_values, parse_list
from telemetry_run.config import BUILTIN_VARIABLES, Config, Variable

ROOT = Path(__file__).resolve().parents[3]


def _config(**env: str) -> tuple[Config, list[str]]:
    warnings: list[str] = []
    return Config.from_env(env, warn=warnings.append), warnings


def test_defaults_are_the_specifications() -> None:
    config, warnings = _config()
    assert warnings == []
    assert config["OTEL_TRACES_EXPORTER"] == ("otlp",)
    assert config.propagators == ("tracecontext", "baggage")
    assert config["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    assert config["OTEL_BSP_SCHEDULE_DELAY"] == 5.0
    assert config["OTEL_BSP_EXPORT_TIMEOUT"] == 30.0
    assert config["OTEL_BSP_MAX_QUEUE_SIZE"] == 2048
    assert config["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] == 512
    assert config.attribute_count("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT") == 128
    assert config.attribute_length() is None
    assert config.shutdown_timeout == 5.0
    assert not config.sdk_disabled
    assert not config.strict


def test_empty_and_whitespace_equal_unset() -> None:
    config, warnings = _config(OTEL_BSP_MAX_QUEUE_SIZE="", OTEL_SDK_DISABLED="   ")
    assert warnings == []
    assert config["OTEL_BSP_MAX_QUEUE_SIZE"] == 2048
    assert not config.is_set("OTEL_BSP_MAX_QUEUE_SIZE")


@pytest.mark.parametrize(
    ("value", "expected", "warns"),
    [
        ("true", True, False),
        ("TRUE", True, False),
        ("false", False, False),
        ("1", False, True),
        ("yes", False, True),
    ],
)
def test_booleans_accept_only_true_and_false(value: str, expected: bool, warns: bool) -> None:
    config, warnings = _config(OTEL_SDK_DISABLED=value)
    assert config.sdk_disabled is expected
    assert bool(warnings) is warns


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_BSP_MAX_QUEUE_SIZE", "abc"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "-5"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "1.5"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "99999999999"),
        ("OTEL_BSP_SCHEDULE_DELAY", "-1"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "5s"),
        ("OTEL_LOG_LEVEL", "loud"),
        ("TELEMETRY_RUN_SHUTDOWN_TIMEOUT", "0"),
        ("TELEMETRY_RUN_SHUTDOWN_TIMEOUT", "soon"),
        ("OTEL_RESOURCE_ATTRIBUTES", "a=1,broken"),
    ],
)
def test_an_invalid_value_warns_once_naming_variable_and_value_then_uses_the_default(
    name: str, value: str
) -> None:
    config, warnings = _config(**{name: value})
    assert len(warnings) == 1
    assert name in warnings[0]
    assert repr(value) in warnings[0]
    default = {v.name: v.default for v in BUILTIN_VARIABLES}[name]
    assert config[name] == default


def test_durations_are_milliseconds_and_a_zero_export_timeout_means_no_limit() -> None:
    config, _ = _config(
        OTEL_BSP_SCHEDULE_DELAY="250",
        OTEL_BSP_EXPORT_TIMEOUT="0",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="1500",
    )
    assert config["OTEL_BSP_SCHEDULE_DELAY"] == 0.25
    assert config["OTEL_BSP_EXPORT_TIMEOUT"] == 0.0  # the batch processor reads 0 as no limit
    assert config.shutdown_timeout == 1.5


def test_batch_size_above_the_queue_size_warns_and_is_capped() -> None:
    config, warnings = _config(OTEL_BSP_MAX_QUEUE_SIZE="100", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="500")
    assert config["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] == 100
    assert len(warnings) == 1
    assert "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in warnings[0]


def test_lists_are_trimmed_and_deduplicated_and_none_clears() -> None:
    assert parse_list(" tracecontext , baggage,,tracecontext ") == ("tracecontext", "baggage")
    config, _ = _config(OTEL_PROPAGATORS="tracecontext,none", OTEL_TRACES_EXPORTER="none")
    assert config.propagators == ()
    assert config.traces_exporters == ()


def test_resource_attributes_are_percent_decoded() -> None:
    assert parse_key_values("service.name=my%20svc, team = a%2Cb ,k=") == (
        ("service.name", "my svc"),
        ("team", "a,b"),
        ("k", ""),
    )
    with pytest.raises(InvalidValue):
        parse_key_values("=nokey")


def test_span_specific_limits_win_over_general_ones() -> None:
    config, _ = _config(
        OTEL_ATTRIBUTE_COUNT_LIMIT="10",
        OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="20",
        OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="100",
    )
    assert config.attribute_count("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT") == 20
    assert config.attribute_count("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT") == 10
    assert config.attribute_length() == 100
    config, _ = _config(
        OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="100", OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT="7"
    )
    assert config.attribute_length() == 7


def test_secret_values_are_never_shown() -> None:
    secret = Variable("EXAMPLE_HEADERS", parse_int(0), None, "doc", secret=True)
    warnings: list[str] = []
    config = Config.from_env({"EXAMPLE_HEADERS": "api-key=hunter2"}, [secret], warn=warnings.append)
    assert "hunter2" not in warnings[0]
    assert "EXAMPLE_HEADERS" in warnings[0]
    ok = Config.from_env({"EXAMPLE_HEADERS": "42"}, [secret])
    shown = dict((name, value) for name, value, _ in ok.shown())
    assert "42" not in shown["EXAMPLE_HEADERS"]
    assert config["EXAMPLE_HEADERS"] is None


def test_plugin_variables_join_the_registry_but_cannot_replace_builtins() -> None:
    mine = Variable("MYPLUGIN_RATE", parse_int(0, 100), 5, "a plugin's own setting")
    clash = Variable("OTEL_BSP_MAX_QUEUE_SIZE", parse_int(0), 1, "a plugin trying to redefine")
    config = Config.from_env({"MYPLUGIN_RATE": "7"}, [mine, clash])
    assert config["MYPLUGIN_RATE"] == 7
    assert config["OTEL_BSP_MAX_QUEUE_SIZE"] == 2048


def test_log_level_and_debug() -> None:
    import logging

    assert _config(OTEL_LOG_LEVEL="error")[0].log_level == logging.ERROR
    assert _config(OTEL_LOG_LEVEL="WARN")[0].log_level == logging.WARNING
    assert _config(OTEL_LOG_LEVEL="error", TELEMETRY_RUN_DEBUG="true")[0].log_level == (
        logging.DEBUG
    )


def test_nothing_but_the_registry_reads_os_environ() -> None:
    """The one-registry rule, checked on the source (the sitecustomize fallback is the
    documented exception: it runs where telemetry_run cannot be imported)."""
    offenders = []
    for folder in ("distro", "sdk", "instrumentors"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for match in re.finditer(r"os\.environ", text):
                line = text[: match.start()].count("\n") + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    allowed = {"distro/cli.py", "distro/bootstrap.py"}  # pass os.environ in, never read it
    assert [o for o in offenders if o.split(":")[0] not in allowed] == []


def test_credentials_in_an_endpoint_url_are_hidden_from_the_listing() -> None:
    endpoint = Variable("EXAMPLE_ENDPOINT", lambda raw: raw, None, "an endpoint")
    config = Config.from_env(
        {"EXAMPLE_ENDPOINT": "https://alice:hunter2@collector:4318/v1/traces"}, [endpoint]
    )
    shown = {name: value for name, value, _ in config.shown()}
    assert shown["EXAMPLE_ENDPOINT"] == "https://REDACTED:REDACTED@collector:4318/v1/traces"
    plain = Config.from_env({"EXAMPLE_ENDPOINT": "http://collector:4317"}, [endpoint])
    assert {n: v for n, v, _ in plain.shown()}["EXAMPLE_ENDPOINT"] == "http://collector:4317"
