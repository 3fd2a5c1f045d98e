"""The OpenMetrics 1.0 text format of collected, cumulative metrics, for scrapers that ask for it.

Prometheus asks for OpenMetrics first (``Accept: application/openmetrics-text``); what it adds
over the 0.0.4 text is what this module writes differently: counter families named without
``_total`` (their samples keep it), ``# UNIT`` where the name ends in its unit, the resource as an
``info`` family ``target`` (sample ``target_info``), canonical floats as bucket bounds, no
``_sum``/``_count`` for a histogram of negative values (the format's sum is a counter),
exemplars, and ``# EOF``.

Exemplars are written because they are what links a latency spike or an error count to the
trace that shows why: each bucket carries the latest sampled measurement that fell in it and
each counter total its latest one, as ``# {trace_id="...",span_id="..."} value timestamp``.
Only the trace and span ids are written: the format caps an exemplar's labels at 128 characters,
which the two ids fill by half, so attributes a view dropped are left to OTLP.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from telemetry_run.sdk.exporters.prometheus_names import metric_name, unit_suffix
from telemetry_run.sdk.exporters.prometheus_text import escape, labels, number
from telemetry_run.sdk.metrics.data import Exemplar, Gauge, Histogram, MetricsData, Sum

__all__ = ["CONTENT_TYPE", "render", "wants_openmetrics"]

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def wants_openmetrics(accept: str | None) -> bool:
    """Whether a scrape's ``Accept`` header lists OpenMetrics text (with a non-zero quality)."""
    for media_range in (accept or "").split(","):
        media_type, *parameters = (part.strip().lower() for part in media_range.split(";"))
        if media_type != "application/openmetrics-text":
            continue
        quality = next((p[2:] for p in parameters if p.startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            continue  # a malformed quality: that range is ignored
    return False


def _bound(value: float) -> str:
    """A bucket bound as OpenMetrics's canonical number: ``1.0``, never ``1``."""
    return "+Inf" if value == float("inf") else repr(float(value))


def _exemplar(exemplar: Exemplar | None) -> str:
    if exemplar is None:
        return ""
    ns = exemplar.time_unix_nano
    ids = f'trace_id="{exemplar.trace_id:032x}",span_id="{exemplar.span_id:016x}"'
    return f" # {{{ids}}} {number(exemplar.value)} {ns // 10**9}.{ns % 10**9:09d}"


def _latest(exemplars: Iterable[Exemplar]) -> Exemplar | None:
    traced = [e for e in exemplars if e.trace_id]
    return max(traced, key=lambda e: e.time_unix_nano) if traced else None


def _per_bucket(bounds: Sequence[float], exemplars: Sequence[Exemplar]) -> list[Exemplar | None]:
    """The latest exemplar of each bucket ``(previous bound, bound]``, the last one unbounded."""
    from bisect import bisect_left

    buckets: list[list[Exemplar]] = [[] for _ in range(len(bounds) + 1)]
    for exemplar in exemplars:
        buckets[bisect_left(bounds, exemplar.value)].append(exemplar)
    return [_latest(bucket) for bucket in buckets]


class _Family:
    """One metric family: its metadata once, then its samples (the format forbids splitting)."""

    def __init__(self, name: str, kind: str, unit: str, description: str) -> None:
        self.name, self.kind = name, kind
        self.lines = [f"# TYPE {name} {kind}"]
        if unit and name.endswith("_" + unit):
            self.lines.append(f"# UNIT {name} {unit}")
        if description:
            self.lines.append(f"# HELP {name} {escape(description)}")


def render(data: MetricsData) -> str:
    """The whole exposition, ending in ``# EOF``; metrics of one name from several scopes share
    their family (the first one's type and help; a later one of another type is left out)."""
    families: dict[str, _Family] = {}
    for resource_metrics in data.resource_metrics:
        target = families.setdefault("target", _Family("target", "info", "", "Target metadata"))
        attributes = sorted(resource_metrics.resource.attributes.items())
        target.lines.append(f"target_info{labels(attributes)} 1")
        for scope_metrics in resource_metrics.scope_metrics:
            scope = [("otel_scope_name", scope_metrics.scope.name)]
            if scope_metrics.scope.version:
                scope.append(("otel_scope_version", scope_metrics.scope.version))
            for metric in scope_metrics.metrics:
                _add(families, metric.name, metric.unit, metric.description, metric.data, scope)
    lines = [line for family in families.values() for line in family.lines]
    return "\n".join([*lines, "# EOF"]) + "\n"


def _add(
    families: dict[str, _Family],
    name: str,
    unit: str,
    description: str,
    data: object,
    scope: list[tuple[str, str]],
) -> None:
    if isinstance(data, Sum) and data.is_monotonic:
        kind, family_name = "counter", metric_name(name, unit, monotonic_sum=True)[: -len("_total")]
    elif isinstance(data, (Sum, Gauge)):
        kind, family_name = "gauge", metric_name(name, unit)
    elif isinstance(data, Histogram):
        kind, family_name = "histogram", metric_name(name, unit)
    else:
        return  # exponential histograms have no OpenMetrics 1.0 form
    family = families.setdefault(
        family_name, _Family(family_name, kind, unit_suffix(unit), description)
    )
    if family.kind != kind:
        return
    if isinstance(data, (Sum, Gauge)):
        sample = family_name + ("_total" if kind == "counter" else "")
        for point in data.data_points:
            exemplar = _exemplar(_latest(point.exemplars)) if kind == "counter" else ""
            point_labels = labels([*point.attributes.items(), *scope])
            family.lines.append(f"{sample}{point_labels} {number(point.value)}{exemplar}")
        return
    assert isinstance(data, Histogram)
    for hpoint in data.data_points:
        base = [*hpoint.attributes.items(), *scope]
        bounds = [*map(_bound, hpoint.explicit_bounds), "+Inf"]
        exemplars = _per_bucket(hpoint.explicit_bounds, hpoint.exemplars)
        running = 0
        for bound, count, kept in zip(bounds, hpoint.bucket_counts, exemplars, strict=True):
            running += count
            bucket_labels = labels([*base, ("le", bound)])
            family.lines.append(f"{family_name}_bucket{bucket_labels} {running}{_exemplar(kept)}")
        if hpoint.sum >= 0 and not any(bound < 0 for bound in hpoint.explicit_bounds):
            # The format's sum is a counter: a histogram of negative values has none, and
            # _count comes only with _sum (the +Inf bucket still says it).
            family.lines.append(f"{family_name}_count{labels(base)} {hpoint.count}")
            family.lines.append(f"{family_name}_sum{labels(base)} {number(hpoint.sum)}")
