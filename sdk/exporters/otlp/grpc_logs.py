"""OTLP/gRPC log exporter: the span exporter's channel, retry, TLS, compression, headers,
deadlines and fork handling, calling ``LogsService/Export`` with an ``ExportLogsServiceRequest``
(``_encode_logs``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from telemetry_run.sdk.exporters.otlp._common import LOGS_SIGNAL
from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter

if TYPE_CHECKING:
    from telemetry_run.sdk.exporters import ExportResult
    from telemetry_run.sdk.logs import LogData

__all__ = ["OTLPGrpcLogExporter"]


class OTLPGrpcLogExporter(OTLPGrpcSpanExporter):
    """Exports log records with OTLP over gRPC (options as ``OTLPGrpcSpanExporter``)."""

    _signal = LOGS_SIGNAL

    def __repr__(self) -> str:
        return f"OTLPGrpcLogExporter({self.endpoint!r})"

    def export(  # type: ignore[override]  # log records where spans go
        self, records: Sequence[LogData], *, deadline: float
    ) -> ExportResult:
        return super().export(records, deadline=deadline)  # type: ignore[arg-type]

    def _encode(self, records: Sequence[Any]) -> bytes:
        from telemetry_run.sdk.exporters.otlp._encode_logs import encode_logs_request

        return encode_logs_request(records)
