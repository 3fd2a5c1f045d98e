"""``OTEL_METRICS_EXPORTER=console``: each collected data point as one line on stderr.

Lines read ``metric name{attributes} value`` (for histograms ``count=N sum=S min=... max=...``),
for looking at what an app records during development; never for production.
"""

from __future__ import annotations

import sys
from typing import TextIO

from telemetry_run.sdk._printable import escape
from telemetry_run.sdk.exporters import SUCCESS, ExportResult
from telemetry_run.sdk.metrics.data import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    MetricsData,
)

__all__ = ["ConsoleMetricExporter"]


class ConsoleMetricExporter:
    """Writes every data point of an export as one line to ``out`` (stderr by default)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    def export(self, metrics: MetricsData, *, deadline: float) -> ExportResult:
        lines = []
        for metric in metrics.metrics():
            unit = f" {metric.unit}" if metric.unit else ""
            for point in metric.data.data_points:
                attributes = ",".join(f"{k}={v!r}" for k, v in sorted(point.attributes.items()))
                if isinstance(point, HistogramDataPoint | ExponentialHistogramDataPoint):
                    value = (
                        f"count={point.count} sum={point.sum:g}{unit} min={point.min:g} "
                        f"max={point.max:g}"
                    )
                else:
                    value = f"{point.value:g}{unit}"
                lines.append(
                    f"metric {escape(metric.name, 200)}{{{escape(attributes, 500)}}} {value}"
                )
        out = self._out or sys.stderr
        try:
            out.write("".join(line + "\n" for line in lines))
            out.flush()
        except (OSError, ValueError) as exc:  # stderr closed: the points are lost, counted
            return ExportResult(False, error=f"cannot write to the console: {exc}")
        return SUCCESS

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        pass
