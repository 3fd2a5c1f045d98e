"""OTLP span exporters: over gRPC (``OTLPGrpcSpanExporter``) and HTTP (``OTLPHttpSpanExporter``);
metric exporters likewise (``OTLPGrpcMetricExporter``, ``OTLPHttpMetricExporter``).

Importing this package imports neither grpc, protobuf nor the HTTP client: the transports load
at the first export, and each exporter module only when its name is first used, so building an
exporter at start-up stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run.sdk._lazy import lazy_exports

if TYPE_CHECKING:
    from telemetry_run.sdk.exporters.otlp._retry import RetryPolicy
    from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter
    from telemetry_run.sdk.exporters.otlp.http import OTLPHttpSpanExporter
    from telemetry_run.sdk.exporters.otlp.metrics import (
        OTLPGrpcMetricExporter,
        OTLPHttpMetricExporter,
    )

__all__ = [
    "OTLPGrpcMetricExporter",
    "OTLPGrpcSpanExporter",
    "OTLPHttpMetricExporter",
    "OTLPHttpSpanExporter",
    "RetryPolicy",
]

_HOME: Final = {
    "OTLPGrpcSpanExporter": "telemetry_run.sdk.exporters.otlp.grpc",
    "OTLPHttpSpanExporter": "telemetry_run.sdk.exporters.otlp.http",
    "OTLPGrpcMetricExporter": "telemetry_run.sdk.exporters.otlp.metrics",
    "OTLPHttpMetricExporter": "telemetry_run.sdk.exporters.otlp.metrics",
    "RetryPolicy": "telemetry_run.sdk.exporters.otlp._retry",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)
