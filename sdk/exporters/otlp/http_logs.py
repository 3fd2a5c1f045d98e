"""OTLP/HTTP log exporter: the span exporter's connection, retry, TLS, compression, headers,
deadlines and fork handling, POSTing an ``ExportLogsServiceRequest`` (``_encode_logs``, protobuf
or JSON) to ``/v1/logs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk.exporters.otlp._common import LOGS_SIGNAL
from telemetry_run.sdk.exporters.otlp.http import OTLPHttpSpanExporter

if TYPE_CHECKING:
    from telemetry_run.sdk.exporters import ExportResult
    from telemetry_run.sdk.logs import LogData

__all__ = ["DEFAULT_ENDPOINT", "OTLPHttpLogExporter"]

DEFAULT_ENDPOINT: Final = "http://localhost:4318/v1/logs"


class OTLPHttpLogExporter(OTLPHttpSpanExporter):
    """Exports log records with OTLP over HTTP/1.1 to ``.../v1/logs`` (options as
    ``OTLPHttpSpanExporter``)."""

    _signal = LOGS_SIGNAL

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, **kwargs: Any) -> None:
        super().__init__(endpoint, **kwargs)

    def __repr__(self) -> str:
        return f"OTLPHttpLogExporter({self.endpoint!r}, protocol={self._protocol_name!r})"

    def export(  # type: ignore[override]  # log records where spans go
        self, records: Sequence[LogData], *, deadline: float
    ) -> ExportResult:
        return super().export(records, deadline=deadline)  # type: ignore[arg-type]

    def _encode(self, records: Sequence[Any]) -> bytes:
        from telemetry_run.sdk.exporters.otlp import _encode_logs

        if self._json:
            body = _encode_logs.encode_logs_request_json(records)
        else:
            body = _encode_logs.encode_logs_request(records)
        return self._compress(body)
