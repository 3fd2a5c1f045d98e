"""The Collector configurations of docs/collector/ are what docs/collector.md promises.

No Collector binary and no package of its configuration schema can be had here, so each file is
parsed and checked against the components written down below (from the Collector and
Collector-contrib component READMEs and config.go, release v0.161.0): each component exists in
the section it is used in and has its required keys, every pipeline is wired to defined
components, memory_limiter comes first and batch last, tail sampling is in the gateway only and
behind a loadbalancing exporter routing by trace id, and the figures the guide relates to our
exporter's settings agree with them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from telemetry_run.config import BUILTIN_VARIABLES

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIGS = DOCS / "collector"

#: section -> component type -> keys its configuration must have (a tuple: one of them).
COMPONENTS: dict[str, dict[str, tuple[str | tuple[str, ...], ...]]] = {
    "receivers": {"otlp": ("protocols",)},
    "processors": {
        "memory_limiter": ("check_interval", ("limit_mib", "limit_percentage")),
        "batch": (),
        "tail_sampling": ("policies",),
        "attributes": ("actions",),
        "redaction": (),
    },
    "exporters": {
        "otlp": ("endpoint",),
        "loadbalancing": ("protocol", "resolver"),
    },
    "extensions": {"health_check": ()},
}
#: tail_sampling policy type -> the keys of its own block that it needs.
POLICIES: dict[str, tuple[str, ...]] = {
    "always_sample": (),
    "status_code": ("status_codes",),
    "latency": ("threshold_ms",),
    "probabilistic": ("sampling_percentage",),
    "string_attribute": ("key", "values"),
    "numeric_attribute": ("key",),
    "rate_limiting": ("spans_per_second",),
}
ATTRIBUTE_ACTIONS = {"insert", "update", "upsert", "delete", "hash", "extract", "convert"}
OTLP_PROTOCOLS = {"grpc", "http"}
LOADBALANCING_RESOLVERS = {"static", "dns", "k8s", "aws_cloud_map"}
ROUTING_KEYS = {"traceID", "service", "resource", "metric", "streamID"}


def _load(name: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((CONFIGS / name).read_text())
    return config


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, f"not a Go duration this test reads: {duration!r}"
    value, unit = float(match[1]), match[2]
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def _pipeline(config: dict[str, Any]) -> dict[str, list[str]]:
    pipelines: dict[str, dict[str, list[str]]] = config["service"]["pipelines"]
    assert list(pipelines) == ["traces"], "the guide shows one traces pipeline per tier"
    return pipelines["traces"]


def check(config: dict[str, Any]) -> list[str]:
    """What is wrong with ``config`` as a Collector configuration of traces; [] when nothing."""
    problems: list[str] = []
    for section, known in COMPONENTS.items():
        for component_id, given in (config.get(section) or {}).items():
            kind = _type(component_id)
            if kind not in known:
                problems.append(f"{section}: {kind} is not a component this guide uses")
                continue
            for key in known[kind]:
                options = key if isinstance(key, tuple) else (key,)
                if not any(option in (given or {}) for option in options):
                    problems.append(f"{section}.{component_id} has no {' or '.join(options)}")
    service = config.get("service") or {}
    for extension in service.get("extensions", []):
        if extension not in (config.get("extensions") or {}):
            problems.append(f"service.extensions: {extension} is not defined")
    for name, pipeline in (service.get("pipelines") or {}).items():
        for section in ("receivers", "processors", "exporters"):
            if section != "processors" and not pipeline.get(section):
                problems.append(f"pipeline {name} has no {section}")
            for component_id in pipeline.get(section, []):
                if component_id not in (config.get(section) or {}):
                    problems.append(f"pipeline {name}: {section} {component_id} is not defined")
        kinds = [_type(p) for p in pipeline.get("processors", [])]
        if kinds and kinds[0] != "memory_limiter":
            problems.append(f"pipeline {name}: memory_limiter is not the first processor")
        if kinds and kinds[-1] != "batch":
            problems.append(f"pipeline {name}: batch is not the last processor")
    used = {
        component_id
        for pipeline in (service.get("pipelines") or {}).values()
        for section in ("receivers", "processors", "exporters")
        for component_id in pipeline.get(section, [])
    }
    for section in ("receivers", "processors", "exporters"):
        for component_id in config.get(section) or {}:
            if component_id not in used:
                problems.append(f"{section}.{component_id} is defined but in no pipeline")
    for component_id, settings in (config.get("processors") or {}).items():
        if _type(component_id) == "tail_sampling":
            for policy in settings["policies"]:
                kind = policy.get("type")
                if kind not in POLICIES:
                    problems.append(f"tail_sampling policy {policy.get('name')}: type {kind}")
                    continue
                block = policy.get(kind) or {}
                problems += [
                    f"tail_sampling policy {policy.get('name')} has no {kind}.{key}"
                    for key in POLICIES[kind]
                    if key not in block
                ]
        if _type(component_id) == "attributes":
            for action in settings["actions"]:
                if "key" not in action or action.get("action") not in ATTRIBUTE_ACTIONS:
                    problems.append(f"{component_id}: bad action {action}")
    for component_id, settings in (config.get("receivers") or {}).items():
        if not set(settings["protocols"]) <= OTLP_PROTOCOLS:
            problems.append(f"receivers.{component_id}: protocols {set(settings['protocols'])}")
    for component_id, settings in (config.get("exporters") or {}).items():
        if _type(component_id) == "loadbalancing":
            if settings.get("routing_key", "traceID") not in ROUTING_KEYS:
                problems.append(f"{component_id}: routing_key {settings['routing_key']}")
            if set(settings["protocol"]) != {"otlp"} or "endpoint" in settings["protocol"]["otlp"]:
                problems.append(f"{component_id}: protocol is otlp, without an endpoint")
            if len(set(settings["resolver"]) & LOADBALANCING_RESOLVERS) != 1:
                problems.append(f"{component_id}: exactly one resolver")
    return problems


@pytest.mark.parametrize("name", ["agent.yaml", "gateway.yaml"])
def test_each_configuration_is_well_formed_and_wired(name: str) -> None:
    assert check(_load(name)) == []


def test_the_guide_shows_every_configuration() -> None:
    guide = (DOCS / "collector.md").read_text()
    files = sorted(path.name for path in CONFIGS.glob("*.yaml"))
    assert files == ["agent.yaml", "gateway.yaml"]
    for name in files:
        assert f"](collector/{name})" in guide, f"docs/collector.md does not link {name}"


def test_the_agent_routes_whole_traces_to_one_gateway_and_keeps_secrets_on_the_node() -> None:
    agent = _load("agent.yaml")
    pipeline = _pipeline(agent)
    assert not any(_type(p) == "tail_sampling" for p in pipeline["processors"])
    assert [_type(e) for e in pipeline["exporters"]] == ["loadbalancing"]
    balancer = agent["exporters"][pipeline["exporters"][0]]
    assert balancer["routing_key"] == "traceID"
    assert balancer["protocol"]["otlp"]["compression"] == "gzip"
    # the scrubbing happens before the data is batched and leaves
    kinds = [_type(p) for p in pipeline["processors"]]
    assert {"attributes", "redaction"} <= set(kinds[1:-1])
    # it listens where telemetry-run sends by default: 4317 (gRPC) and 4318 (HTTP)
    default = next(v for v in _registry() if v.name == "OTEL_EXPORTER_OTLP_ENDPOINT")
    ports = re.findall(r":(\d+) \((\w+)\)", default.default_text())
    protocols = agent["receivers"]["otlp"]["protocols"]
    assert sorted(ports) == [("4317", "grpc"), ("4318", "http")]
    for port, protocol in ports:
        assert protocols[protocol]["endpoint"].endswith(f":{port}")


def test_the_gateway_keeps_errors_and_slow_traces_decided_after_the_last_span_arrives() -> None:
    gateway = _load("gateway.yaml")
    pipeline = _pipeline(gateway)
    sampling = [p for p in pipeline["processors"] if _type(p) == "tail_sampling"]
    assert len(sampling) == 1
    policies = gateway["processors"][sampling[0]]["policies"]
    by_type = {policy["type"]: policy for policy in policies}
    assert by_type["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert by_type["latency"]["latency"]["threshold_ms"] > 0
    # A trace's last span leaves the app up to OTEL_BSP_SCHEDULE_DELAY after it ends and waits
    # up to the agent's batch timeout: the decision must come later, or the span is orphaned.
    schedule_delay = next(v for v in BUILTIN_VARIABLES if v.name == "OTEL_BSP_SCHEDULE_DELAY")
    agent = _load("agent.yaml")
    agent_batch = _seconds(agent["processors"]["batch"]["timeout"])
    decision_wait = _seconds(gateway["processors"][sampling[0]]["decision_wait"])
    assert decision_wait > float(schedule_delay.default) + agent_batch
    assert [_type(e) for e in pipeline["exporters"]] == ["otlp"]  # OTLP out, to any backend
    for exporter in pipeline["exporters"]:
        assert gateway["exporters"][exporter]["compression"] == "gzip"


def test_the_agent_gives_up_on_a_batch_no_sooner_than_telemetry_run_does() -> None:
    # Both retry a refused export; the agent's per-request timeout must not cut a request short
    # of what one of our exports may take (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default).
    agent = _load("agent.yaml")
    otlp = agent["exporters"]["loadbalancing"]["protocol"]["otlp"]
    default = next(v for v in _registry() if v.name == "OTEL_EXPORTER_OTLP_TIMEOUT")
    assert _seconds(otlp["timeout"]) >= float(default.default)
    assert otlp["retry_on_failure"]["enabled"] and otlp["sending_queue"]["enabled"]


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda c: c["service"]["pipelines"]["traces"]["processors"].reverse(),
            "memory_limiter is not the first processor",
        ),
        (
            lambda c: c["service"]["pipelines"]["traces"]["processors"].append("memory_limiter"),
            "batch is not the last processor",
        ),
        (
            lambda c: c["service"]["pipelines"]["traces"]["exporters"].append("otlp/missing"),
            "exporters otlp/missing is not defined",
        ),
        (lambda c: c["processors"].update(groupbytrace={}), "groupbytrace is not a component"),
        (lambda c: c["processors"]["memory_limiter"].pop("limit_percentage"), "limit_mib or"),
        (
            lambda c: c["processors"]["tail_sampling"]["policies"][1]["latency"].clear(),
            "policy slow has no latency.threshold_ms",
        ),
        (lambda c: c["exporters"].update({"otlp/unused": {"endpoint": "x:4317"}}), "no pipeline"),
    ],
)
def test_the_check_finds_a_broken_configuration(mutate: Any, problem: str) -> None:
    config = _load("gateway.yaml")
    mutate(config)
    assert any(problem in found for found in check(config)), check(config)


def test_the_check_finds_a_balancer_that_is_not_one() -> None:
    config = _load("agent.yaml")
    balancer = config["exporters"]["loadbalancing"]
    balancer["protocol"]["otlp"]["endpoint"] = "gateway:4317"
    balancer["resolver"]["static"] = {"hostnames": ["gateway:4317"]}
    found = check(config)
    assert any("without an endpoint" in p for p in found)
    assert any("exactly one resolver" in p for p in found)


def _registry() -> list[Any]:
    from tools import config_reference

    return config_reference._registry()
