"""The built-in plugin builds the specification's exporters, samplers and propagators by name."""

from __future__ import annotations

import io
import logging

import pytest

from telemetry_run import _builtins
from telemetry_run.config import Config
from telemetry_run.plugins import Plugins
from telemetry_run.sdk.exporters.console import ConsoleSpanExporter
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    TraceIdRatioBased,
    parse_ratio,
    sampler_named,
)
from tests.unit.sdk.waterfall_traces import demo_trace


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins.load()


@pytest.fixture
def config() -> Config:
    return Config.from_env({})


def test_the_builtins_say_what_they_provide(plugins: Plugins) -> None:
    provides = plugins.provides()
    assert set(provides["exporter"]) >= {"console", "none"}
    assert provides["exporter"]["console"] == "builtin"
    assert set(provides["sampler"]) >= set(_builtins.SAMPLERS)
    assert set(provides["propagator"]) >= {"tracecontext", "baggage", "none"}
    assert plugins.provider_of("sampler", "traceidratio") == "builtin"


def test_exporters(plugins: Plugins, config: Config) -> None:
    assert isinstance(plugins.span_exporter("console", config), ConsoleSpanExporter)
    assert plugins.span_exporter("none", config) is None  # the configuration drops "none"
    assert plugins.span_exporter("nonexistent", config) is None


def _console_output(plugins: Plugins, environ: dict[str, str], stream: io.StringIO) -> str:
    exporter = plugins.span_exporter("console", Config.from_env(environ))
    assert isinstance(exporter, ConsoleSpanExporter)
    exporter._out = stream  # where sys.stdout would be
    exporter.export(demo_trace(), deadline=1e12)
    return stream.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_console_exporter_draws_a_waterfall_unless_told_otherwise(plugins: Plugins) -> None:
    waterfall = _console_output(plugins, {}, io.StringIO())
    assert waterfall.startswith("trace 4bf92f3577b34da6a3ce929d0e0e4736 | demo | 5 spans")
    assert "├─ GET " in waterfall
    flat = _console_output(plugins, {"TELEMETRY_RUN_CONSOLE_FORMAT": "spans"}, io.StringIO())
    assert flat.splitlines()[0].startswith("'load_user' INTERNAL ")
    json_lines = _console_output(plugins, {"TELEMETRY_RUN_CONSOLE_FORMAT": "JSON"}, io.StringIO())
    assert json_lines.startswith('{"traceId": "4bf92f3577b34da6a3ce929d0e0e4736"')


def test_no_color_turns_the_waterfalls_colours_off_on_a_terminal(plugins: Plugins) -> None:
    assert "\x1b[" in _console_output(plugins, {}, _Terminal())
    assert "\x1b[" not in _console_output(plugins, {"NO_COLOR": "1"}, _Terminal())


def test_a_bad_console_format_warns_once_and_draws_the_waterfall(plugins: Plugins) -> None:
    warnings: list[str] = []
    config = Config.from_env({"TELEMETRY_RUN_CONSOLE_FORMAT": "tree"}, warn=warnings.append)
    assert warnings == [
        "TELEMETRY_RUN_CONSOLE_FORMAT='tree' is not one of json, spans, waterfall; "
        "using the default (waterfall)"
    ]
    assert config["TELEMETRY_RUN_CONSOLE_FORMAT"] == "waterfall"


def test_samplers(plugins: Plugins, config: Config) -> None:
    assert plugins.sampler("always_on", None, config) is ALWAYS_ON
    assert plugins.sampler("always_off", "0.5", config) is ALWAYS_OFF
    on = plugins.sampler("parentbased_always_on", None, config)
    off = plugins.sampler("parentbased_always_off", None, config)
    assert isinstance(on, ParentBased) and "root:AlwaysOnSampler" in on.description()
    assert isinstance(off, ParentBased) and "root:AlwaysOffSampler" in off.description()
    ratio = plugins.sampler("traceidratio", " 0.25 ", config)
    assert isinstance(ratio, TraceIdRatioBased) and ratio.rate == 0.25
    parent_ratio = plugins.sampler("parentbased_traceidratio", "0", config)
    assert isinstance(parent_ratio, ParentBasedTraceIdRatio)
    assert "TraceIdRatioBased{0.0}" in parent_ratio.description()
    assert plugins.sampler("nonexistent", None, config) is None


@pytest.mark.parametrize("arg", ["abc", "1.5", "-0.1", "nan", "inf"])
def test_a_bad_ratio_warns_once_naming_the_variable_then_uses_one(
    plugins: Plugins, config: Config, arg: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        sampler = plugins.sampler("traceidratio", arg, config)
    assert isinstance(sampler, TraceIdRatioBased) and sampler.rate == 1.0
    (record,) = caplog.records
    assert record.getMessage() == (
        f"OTEL_TRACES_SAMPLER_ARG={arg!r} is not a ratio in [0, 1]; using the default (1.0)"
    )


def test_an_unset_ratio_is_one_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="telemetry_run"):
        assert parse_ratio(None) == 1.0
        assert parse_ratio("  ") == 1.0
        assert parse_ratio("1") == 1.0
        assert parse_ratio("0.0") == 0.0
    assert caplog.records == []


def test_the_builtin_sampler_names_are_the_ones_the_sdk_builds() -> None:
    # The names --list shows (declared without importing the SDK) and the SDK's one table agree.
    assert all(sampler_named(name, None) is not None for name in _builtins.SAMPLERS)
    assert sampler_named("jaeger_remote", None) is None


def test_propagators(plugins: Plugins, config: Config) -> None:
    assert isinstance(plugins.propagator("tracecontext", config), TraceContextTextMapPropagator)
    assert isinstance(plugins.propagator("baggage", config), W3CBaggagePropagator)
    assert plugins.propagator("b3", config) is None
