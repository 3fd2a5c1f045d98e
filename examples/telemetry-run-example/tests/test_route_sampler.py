"""The route sampler: health checks dropped, everything else parent-based with a ratio."""

from __future__ import annotations

import logging

import pytest
from telemetry_run.context import Context
from telemetry_run.plugin import Config, Decision
from telemetry_run.testing import SpanRecorder
from telemetry_run.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)

from telemetry_run_example import plugin
from telemetry_run_example.sampler import RouteSampler, parse_ratio

LOW_TRACE_ID = 0x0123456789ABCDEF_0000000000000001  # low 64 bits: tiny, kept by any ratio > 0
HIGH_TRACE_ID = 0x0123456789ABCDEF_FFFFFFFFFFFFFFF0  # low 64 bits: near 2**64, kept only by 1.0


def server(path: str) -> dict[str, str]:
    """The start attributes a server instrumentor passes."""
    return {
        "http.request.method": "GET",
        "url.path": path,
        "url.scheme": "http",
        "server.address": "shop.example",
    }


def parent(*, sampled: bool, remote: bool = True) -> Context:
    span_context = SpanContext(
        LOW_TRACE_ID, 0xAAAA, is_remote=remote, trace_flags=TraceFlags(int(sampled))
    )
    return set_span_in_context(NonRecordingSpan(span_context))


def decide(
    sampler: RouteSampler,
    path: str | None,
    *,
    parent_context: Context | None = None,
    trace_id: int = LOW_TRACE_ID,
) -> Decision:
    attributes = server(path) if path is not None else None
    result = sampler.should_sample(parent_context, trace_id, "GET", SpanKind.SERVER, attributes)
    return result.decision


def config(**environ: str) -> Config:
    """A Config with this plugin's variables registered, as telemetry-run builds it."""
    return Config.from_env(environ, plugin.telemetry_run_variables())


@pytest.mark.parametrize("path", ["/health", "/health/live", "/healthz"])
def test_health_checks_are_dropped(path: str) -> None:
    sampler = RouteSampler()
    assert decide(sampler, path) is Decision.DROP
    # Even when the caller's trace is sampled: the point is not to record health checks.
    assert decide(sampler, path, parent_context=parent(sampled=True)) is Decision.DROP


@pytest.mark.parametrize("path", ["/orders", "/", "/api/health", "/HEALTH"])
def test_other_paths_are_sampled_at_the_default_ratio(path: str) -> None:
    assert decide(RouteSampler(), path) is Decision.RECORD_AND_SAMPLE
    assert decide(RouteSampler(), path, trace_id=HIGH_TRACE_ID) is Decision.RECORD_AND_SAMPLE


def test_spans_without_url_path_are_sampled_too() -> None:
    assert decide(RouteSampler(), None) is Decision.RECORD_AND_SAMPLE
    weird = RouteSampler().should_sample(None, LOW_TRACE_ID, "x", attributes={"url.path": 7})
    assert weird.decision is Decision.RECORD_AND_SAMPLE


def test_roots_follow_the_ratio() -> None:
    half = RouteSampler(ratio=0.5)
    assert decide(half, "/orders", trace_id=LOW_TRACE_ID) is Decision.RECORD_AND_SAMPLE
    assert decide(half, "/orders", trace_id=HIGH_TRACE_ID) is Decision.DROP
    assert decide(RouteSampler(ratio=0.0), "/orders") is Decision.DROP


@pytest.mark.parametrize("remote", [True, False])
def test_children_follow_their_parent_not_the_ratio(remote: bool) -> None:
    never = RouteSampler(ratio=0.0)
    always = RouteSampler(ratio=1.0)
    sampled, not_sampled = parent(sampled=True, remote=remote), parent(sampled=False, remote=remote)
    assert decide(never, "/orders", parent_context=sampled) is Decision.RECORD_AND_SAMPLE
    assert decide(always, "/orders", parent_context=not_sampled) is Decision.DROP


def test_through_a_tracer_the_whole_health_check_trace_is_dropped() -> None:
    recorder = SpanRecorder(sampler=RouteSampler())
    tracer = recorder.tracer
    with tracer.start_as_current_span("GET", kind=SpanKind.SERVER, attributes=server("/health")):
        tracer.start_span("db.ping").end()  # a child of a dropped span is dropped too
    with tracer.start_as_current_span("GET", kind=SpanKind.SERVER, attributes=server("/orders")):
        tracer.start_span("db.query").end()
    assert [(span.name, span.attributes.get("url.path")) for span in recorder.spans] == [
        ("db.query", None),
        ("GET", "/orders"),
    ]
    recorder.shutdown()


def test_the_plugin_builds_the_sampler_from_its_variable_and_the_ratio() -> None:
    built = plugin.telemetry_run_sampler(
        "route", "0.25", config(TELEMETRY_RUN_EXAMPLE_DROP_PREFIXES="/ready, /live,/ready")
    )
    assert isinstance(built, RouteSampler)
    assert built.drop_prefixes == ("/ready", "/live")
    assert decide(built, "/ready/db") is Decision.DROP
    assert decide(built, "/health", trace_id=LOW_TRACE_ID) is Decision.RECORD_AND_SAMPLE
    assert decide(built, "/health", trace_id=HIGH_TRACE_ID) is Decision.DROP  # ratio 0.25
    assert plugin.telemetry_run_sampler("parentbased_always_on", None, config()) is None


def test_the_default_prefix_is_health() -> None:
    built = plugin.telemetry_run_sampler("route", None, config())
    assert isinstance(built, RouteSampler)
    assert built.drop_prefixes == ("/health",)


def test_an_invalid_prefix_list_warns_once_and_uses_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        parsed = config(TELEMETRY_RUN_EXAMPLE_DROP_PREFIXES="/ready,health")
    assert parsed[plugin.DROP_PREFIXES] == ("/health",)
    (warning,) = (r.getMessage() for r in caplog.records)
    assert warning.startswith("TELEMETRY_RUN_EXAMPLE_DROP_PREFIXES='/ready,health' has prefixes")
    assert warning.endswith("using the default (/health)")


@pytest.mark.parametrize("arg", ["lots", "1.5", "-0.1", "nan"])
def test_an_invalid_ratio_warns_once_naming_the_variable(
    arg: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        built = plugin.telemetry_run_sampler("route", arg, config())
    assert isinstance(built, RouteSampler)
    assert decide(built, "/orders", trace_id=HIGH_TRACE_ID) is Decision.RECORD_AND_SAMPLE
    (record,) = caplog.records
    assert record.name == "telemetry_run.example"
    assert f"OTEL_TRACES_SAMPLER_ARG={arg!r}" in record.getMessage()
    assert "default (1.0)" in record.getMessage()


@pytest.mark.parametrize(("arg", "ratio"), [(None, 1.0), ("", 1.0), (" 0.1 ", 0.1), ("0", 0.0)])
def test_valid_ratios_are_silent(
    arg: str | None, ratio: float, caplog: pytest.LogCaptureFixture
) -> None:
    assert parse_ratio(arg) == ratio
    assert caplog.records == []


def test_the_description_says_what_it_is() -> None:
    description = RouteSampler(("/health", "/ready"), 0.5).description()
    assert description == (
        "RouteSampler{drop url.path:[/health,/ready],"
        "else:ParentBased{root:TraceIdRatioBased{0.5},"
        "remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,"
        "localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}}"
    )
    assert repr(RouteSampler()) == RouteSampler().get_description()
