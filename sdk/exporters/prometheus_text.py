"""The Prometheus text exposition format (0.0.4) of collected, cumulative metrics.

Monotonic sums are counters, non-monotonic sums and gauges are gauges, explicit-bucket histograms
are ``_bucket{le=...}``/``_sum``/``_count``; exponential histograms are left out (no 0.0.4 form).
The resource is the ``target_info`` gauge; each series carries ``otel_scope_name``/``_version``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from telemetry_run.sdk.exporters.prometheus_names import label_name, metric_name
from telemetry_run.sdk.metrics.data import Gauge, Histogram, MetricsData, Sum

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape(value: object) -> str:
    """A label value (or help text) with backslash, newline and double quote escaped."""
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value: integers without a fraction, ``NaN``, ``+Inf``/``-Inf``."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if float(value).is_integer() else repr(float(value))


def labels(pairs: Iterable[tuple[str, object]]) -> str:
    """``{name="value",...}`` with names made label names, ``""`` when there are none."""
    body = ",".join(f'{label_name(k)}="{escape(v)}"' for k, v in pairs)
    return "{" + body + "}" if body else ""


def render(data: MetricsData) -> str:
    """The whole exposition: one family per metric name, ``# HELP``/``# TYPE`` once each."""
    lines: list[str] = []
    for resource_metrics in data.resource_metrics:
        resource_attributes: Mapping[str, object] = resource_metrics.resource.attributes
        lines += ["# HELP target_info Target metadata", "# TYPE target_info gauge"]
        lines.append(f"target_info{labels(sorted(resource_attributes.items()))} 1")
        for scope_metrics in resource_metrics.scope_metrics:
            scope = [("otel_scope_name", scope_metrics.scope.name)]
            if scope_metrics.scope.version:
                scope.append(("otel_scope_version", scope_metrics.scope.version))
            for metric in scope_metrics.metrics:
                lines += _family(metric.name, metric.unit, metric.description, metric.data, scope)
    return "\n".join(lines) + "\n"


def _family(
    name: str, unit: str, description: str, data: object, scope: list[tuple[str, str]]
) -> list[str]:
    if isinstance(data, Sum):
        kind = "counter" if data.is_monotonic else "gauge"
        family = metric_name(name, unit, monotonic_sum=data.is_monotonic)
    elif isinstance(data, Gauge):
        kind, family = "gauge", metric_name(name, unit)
    elif isinstance(data, Histogram):
        kind, family = "histogram", metric_name(name, unit)
    else:
        return []
    lines = [f"# HELP {family} {escape(description)}", f"# TYPE {family} {kind}"]
    if isinstance(data, (Sum, Gauge)):
        for point in data.data_points:
            point_labels = labels([*point.attributes.items(), *scope])
            lines.append(f"{family}{point_labels} {number(point.value)}")
        return lines
    assert isinstance(data, Histogram)
    for hpoint in data.data_points:
        base = [*hpoint.attributes.items(), *scope]
        running = 0
        bounds = [*map(number, hpoint.explicit_bounds), "+Inf"]
        for bound, count in zip(bounds, hpoint.bucket_counts, strict=True):
            running += count
            lines.append(f"{family}_bucket{labels([*base, ('le', bound)])} {running}")
        lines.append(f"{family}_sum{labels(base)} {number(hpoint.sum)}")
        lines.append(f"{family}_count{labels(base)} {hpoint.count}")
    return lines
