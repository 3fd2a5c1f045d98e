"""OTLP metric exporters over gRPC (``OTLPGrpcMetricExporter``) and HTTP
(``OTLPHttpMetricExporter``).

Each wraps the span exporter of its transport, so metrics get the same connection handling,
retry with backoff, TLS and mTLS, compression, headers, timeout and diagnostics; only the body
(``ExportMetricsServiceRequest``), the service (``MetricsService/Export``, ``/v1/metrics``)
and the answer's partial success (``rejected_data_points``) differ. Retried exports are not
counted as span retries: the reader counts data points exported and dropped.

``temporality_preference`` and ``default_histogram`` are what the periodic reader reads to
shape the streams it collects (the OTLP variables
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` and
``..._DEFAULT_HISTOGRAM_AGGREGATION``).
"""

from __future__ import annotations

from typing import Any, Final

from telemetry_run.sdk.exporters import ExportResult
from telemetry_run.sdk.exporters.otlp._common import METRICS_SIGNAL
from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter
from telemetry_run.sdk.exporters.otlp.http import OTLPHttpSpanExporter
from telemetry_run.sdk.metrics.data import MetricsData
from telemetry_run.sdk.metrics.reader import HISTOGRAM_AGGREGATIONS, TEMPORALITY_PREFERENCES

__all__ = [
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "OTLPGrpcMetricExporter",
    "OTLPHttpMetricExporter",
]

DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318/v1/metrics"


class _GrpcMetricsTransport(OTLPGrpcSpanExporter):
    """The gRPC span exporter's transport, calling ``MetricsService/Export``."""

    _signal = METRICS_SIGNAL

    def __repr__(self) -> str:
        return f"OTLPGrpcMetricExporter({self.endpoint!r})"


class _HttpMetricsTransport(OTLPHttpSpanExporter):
    """The HTTP span exporter's transport, for ``ExportMetricsServiceResponse`` answers."""

    _signal = METRICS_SIGNAL

    def __repr__(self) -> str:
        return f"OTLPHttpMetricExporter({self.endpoint!r}, protocol={self._protocol_name!r})"


class _OTLPMetricExporter:
    _transport: OTLPGrpcSpanExporter | OTLPHttpSpanExporter

    def __init__(self, temporality_preference: str, default_histogram: str) -> None:
        preference = temporality_preference.strip().lower()
        if preference not in TEMPORALITY_PREFERENCES:
            raise ValueError(
                f"temporality_preference must be one of {', '.join(TEMPORALITY_PREFERENCES)}, "
                f"got {temporality_preference!r}"
            )
        if default_histogram not in HISTOGRAM_AGGREGATIONS:
            raise ValueError(
                f"default_histogram must be one of {', '.join(HISTOGRAM_AGGREGATIONS)}, "
                f"got {default_histogram!r}"
            )
        self.temporality_preference = preference
        self.default_histogram = default_histogram

    @property
    def endpoint(self) -> str:
        return self._transport.endpoint

    def __repr__(self) -> str:
        return repr(self._transport)

    def _body(self, metrics: MetricsData) -> bytes:
        raise NotImplementedError

    def export(self, metrics: MetricsData, *, deadline: float) -> ExportResult:
        """Send ``metrics``; ``rejected`` in the result counts data points (partial success)."""
        if not metrics.resource_metrics:
            return ExportResult(True)
        return self._transport._export_encoded(
            lambda: self._body(metrics), deadline, on_retry=_nothing
        )

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        self._transport.shutdown(deadline=deadline)


def _nothing() -> None:
    """Metric retries are not counted (the points are, once, exported or dropped)."""


class OTLPGrpcMetricExporter(_OTLPMetricExporter):
    """Exports metrics with OTLP over gRPC; the options are the gRPC span exporter's."""

    def __init__(
        self,
        endpoint: str = DEFAULT_GRPC_ENDPOINT,
        *,
        temporality_preference: str = "cumulative",
        default_histogram: str = "explicit_bucket_histogram",
        **options: Any,
    ) -> None:
        super().__init__(temporality_preference, default_histogram)
        self._transport = _GrpcMetricsTransport(endpoint, **options)

    def _body(self, metrics: MetricsData) -> bytes:
        from telemetry_run.sdk.exporters.otlp._encode_metrics import encode_metrics

        return encode_metrics(metrics)


class OTLPHttpMetricExporter(_OTLPMetricExporter):
    """Exports metrics with OTLP over HTTP (``http/protobuf`` or ``http/json``) to the full
    URL ``endpoint`` (``.../v1/metrics``); the options are the HTTP span exporter's."""

    def __init__(
        self,
        endpoint: str = DEFAULT_HTTP_ENDPOINT,
        *,
        temporality_preference: str = "cumulative",
        default_histogram: str = "explicit_bucket_histogram",
        **options: Any,
    ) -> None:
        super().__init__(temporality_preference, default_histogram)
        self._http = _HttpMetricsTransport(endpoint, **options)
        self._transport = self._http

    def _body(self, metrics: MetricsData) -> bytes:
        from telemetry_run.sdk.exporters.otlp import _encode_metrics

        json = self._http._json
        body = (
            _encode_metrics.encode_metrics_json(metrics)
            if json
            else _encode_metrics.encode_metrics(metrics)
        )
        return self._http._compress(body)
