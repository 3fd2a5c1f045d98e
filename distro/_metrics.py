"""The launcher's metrics pipeline: ``OTEL_METRICS_EXPORTER`` and the ``OTEL_METRIC*`` variables.

Nothing here runs at start-up: the bootstrap registers ``build_meter_provider`` as the factory
of ``telemetry_run.sdk.metrics.get_meter_provider()``, so the metrics SDK is imported and its
export thread started only when code first asks for a meter. With ``otlp`` (the default, as
the peers have it) the OTLP exporter takes the ``OTEL_EXPORTER_OTLP_METRICS_*`` variables, or
the general ones, by the same rules as the span exporter (``_otlp``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from telemetry_run.sdk._log import logger

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.exporters import ExportResult
    from telemetry_run.sdk.metrics.data import MetricsData
    from telemetry_run.sdk.metrics.provider import MeterProvider
    from telemetry_run.sdk.metrics.reader import MetricExporter, MetricReader
    from telemetry_run.sdk.resources import Resource

__all__ = ["METRIC_EXPORTERS", "build_meter_provider"]

#: The names ``OTEL_METRICS_EXPORTER`` takes (``none`` turns metrics off).
METRIC_EXPORTERS = ("otlp", "prometheus", "console", "none")


class _OTLPMetricsOff:
    """The OTLP metric exporter whose settings cannot be honoured: every export fails, so its
    data points are counted as dropped (the exit line shows them)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def export(self, metrics: MetricsData, *, deadline: float) -> ExportResult:
        from telemetry_run.sdk.exporters import ExportResult

        return ExportResult(False, error=self.reason)

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        pass


def _otlp_exporter(config: Config) -> MetricExporter:
    from telemetry_run._otlp import otlp_settings

    settings = otlp_settings(config, "metrics")
    if settings.off is not None:
        return _OTLPMetricsOff(settings.off)
    common: dict[str, Any] = {
        **settings.exporter_kwargs(),
        "temporality_preference": config["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"],
        "default_histogram": config["OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION"],
    }
    from telemetry_run.sdk.exporters.otlp.metrics import (
        OTLPGrpcMetricExporter,
        OTLPHttpMetricExporter,
    )

    if settings.protocol == "grpc":
        return OTLPGrpcMetricExporter(settings.endpoint, insecure=settings.insecure, **common)
    return OTLPHttpMetricExporter(settings.endpoint, protocol=settings.protocol, **common)


def build_meter_provider(
    config: Config, resource: Resource, diagnostics: Diagnostics
) -> MeterProvider | None:
    """The MeterProvider the configuration describes: one periodic reader per exporter named
    in ``OTEL_METRICS_EXPORTER``; None when it names none (``none``)."""
    from telemetry_run.sdk.metrics.provider import MeterProvider
    from telemetry_run.sdk.metrics.reader import PeriodicExportingMetricReader

    readers: list[MetricReader] = []
    for name in config["OTEL_METRICS_EXPORTER"]:
        exporter: MetricExporter
        if name == "none":
            continue
        if name == "prometheus":  # pulled, not pushed: a reader of its own
            from telemetry_run.sdk.exporters.prometheus import PrometheusMetricReader

            readers.append(
                PrometheusMetricReader(
                    config["OTEL_EXPORTER_PROMETHEUS_HOST"],
                    config["OTEL_EXPORTER_PROMETHEUS_PORT"],
                    diagnostics=diagnostics,
                )
            )
            continue
        if name == "otlp":
            exporter = _otlp_exporter(config)
        elif name == "console":
            from telemetry_run.sdk.exporters.console_metrics import ConsoleMetricExporter

            exporter = ConsoleMetricExporter()
        else:
            logger.warning(
                "OTEL_METRICS_EXPORTER: no metric exporter named %s (available: %s); it is skipped",
                name,
                ", ".join(METRIC_EXPORTERS),
            )
            continue
        readers.append(
            PeriodicExportingMetricReader(
                exporter,
                interval=config["OTEL_METRIC_EXPORT_INTERVAL"],
                timeout=config["OTEL_METRIC_EXPORT_TIMEOUT"],
                diagnostics=diagnostics,
            )
        )
    if not readers:
        return None
    return MeterProvider(
        readers,
        resource=resource,
        exemplar_filter=config["OTEL_METRICS_EXEMPLAR_FILTER"],
        diagnostics=diagnostics,
    )
