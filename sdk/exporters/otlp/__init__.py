"""OTLP span exporters: over gRPC (``OTLPGrpcSpanExporter``) and HTTP (``OTLPHttpSpanExporter``);
metric exporters likewise (``OTLPGrpcMetricExporter``, ``OTLPHttpMetricExporter``).

Importing this package imports neither grpc, protobuf nor the HTTP client: the transports load
at the first export, and each exporter module only when its name is first used, so building an
exporter at start-up stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

_HOME = {
    "OTLPGrpcSpanExporter": "telemetry_run.sdk.exporters.otlp.grpc",
    "OTLPHttpSpanExporter": "telemetry_run.sdk.exporters.otlp.http",
    "OTLPGrpcMetricExporter": "telemetry_run.sdk.exporters.otlp.metrics",
    "OTLPHttpMetricExporter": "telemetry_run.sdk.exporters.otlp.metrics",
    "RetryPolicy": "telemetry_run.sdk.exporters.otlp._retry",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
