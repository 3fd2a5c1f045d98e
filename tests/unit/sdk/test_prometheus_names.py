"""Prometheus names per the OpenTelemetry specification's compatibility rules (expectations
written from the specification's examples, not from our output)."""

from __future__ import annotations

import pytest

from telemetry_run.sdk.exporters.prometheus_names import label_name, metric_name


@pytest.mark.parametrize(
    ("name", "unit", "monotonic", "expected"),
    [
        ("http.server.request.duration", "s", False, "http_server_request_duration_seconds"),
        ("process.memory.usage", "By", False, "process_memory_usage_bytes"),
        ("requests", "{request}", True, "requests_total"),
        ("requests", "1", True, "requests_total"),
        ("speed", "m/s", False, "speed_meters_per_second"),
        ("throughput", "By/s", False, "throughput_bytes_per_second"),
        ("rate", "1/s", False, "rate_per_second"),
        ("cpu.time", "s", True, "cpu_time_seconds_total"),
        ("already_seconds", "s", False, "already_seconds"),
        ("hits_total", "", True, "hits_total"),
        ("2xx.count", "", False, "_2xx_count"),
        ("weird--name", "", False, "weird_name"),
    ],
)
def test_metric_name_follows_the_compatibility_rules(
    name: str, unit: str, monotonic: bool, expected: str
) -> None:
    assert metric_name(name, unit, monotonic_sum=monotonic) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [("http.route", "http_route"), ("service.instance.id", "service_instance_id"), ("1st", "_1st")],
)
def test_label_name_keeps_only_valid_characters(key: str, expected: str) -> None:
    assert label_name(key) == expected
