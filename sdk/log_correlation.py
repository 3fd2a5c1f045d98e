"""Trace ids on log lines: the fields a log record carries so it can be found from its trace.

The names and formats are those of the OpenTelemetry logging instrumentation, so log formats
written for it keep working: ``otelTraceID`` (32 lowercase hex digits), ``otelSpanID`` (16),
``otelTraceSampled`` (a bool) and ``otelServiceName``. Outside a span the ids are ``"0"`` and
sampled is False, so a format naming them never fails.

Under ``telemetry-run`` every ``logging.LogRecord`` gets them (the ``logging`` instrumentor,
``OTEL_PYTHON_LOG_CORRELATION``). structlog and loguru build their own records; add ours with::

    structlog.configure(processors=[..., structlog_processor, ...])   # before the renderer
    logger = loguru.logger.patch(loguru_patcher)   # fields in record["extra"]: {extra[otelTraceID]}

Neither library is imported here.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Final, Protocol

from telemetry_run.sdk._native import speedups
from telemetry_run.sdk.context import _SPAN, _span_get
from telemetry_run.sdk.trace.api import Span

# The native factory, where built (pyproject's ext-modules); None: the Python twin below.
_NativeRecordFactory: Callable[..., Callable[..., Any]] | None = (
    speedups.RecordFactory if speedups is not None else None
)

__all__ = [
    "SERVICE_NAME",
    "SPAN_ID",
    "TRACE_ID",
    "TRACE_SAMPLED",
    "correlation_fields",
    "loguru_patcher",
    "structlog_processor",
]

TRACE_ID: Final = "otelTraceID"
SPAN_ID: Final = "otelSpanID"
TRACE_SAMPLED: Final = "otelTraceSampled"
SERVICE_NAME: Final = "otelServiceName"


class _Fields:
    """The fields of the current span, computed once per span: a request logs many lines in
    the same span, so the hex formatting is paid once, not per record."""

    __slots__ = ("invalid", "last", "service_name")

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self.invalid: dict[str, object] = {
            TRACE_ID: "0",
            SPAN_ID: "0",
            TRACE_SAMPLED: False,
            SERVICE_NAME: service_name,
        }
        # (span, its fields), replaced as a whole: a thread reads one consistent pair.
        self.last: tuple[object, dict[str, object]] = (None, self.invalid)

    def current(self) -> dict[str, object]:
        span = _span_get()
        last = self.last
        return last[1] if span is last[0] else self.refresh(span)

    def refresh(self, span: object) -> dict[str, object]:
        """The fields of ``span``, now the cached pair."""
        fields = self.invalid
        try:
            if isinstance(span, Span):
                context = span.get_span_context()
                if context.is_valid:
                    fields = {
                        TRACE_ID: f"{context.trace_id:032x}",
                        SPAN_ID: f"{context.span_id:016x}",
                        TRACE_SAMPLED: bool(context.trace_flags.sampled),
                        SERVICE_NAME: self.service_name,
                    }
        except Exception as exc:  # noqa: BLE001  # a foreign span: the record goes out anyway
            # Cached first: the report is a log record too, made while this span is current.
            self.last = (span, self.invalid)
            from telemetry_run.sdk.diagnostics import get_diagnostics

            get_diagnostics().internal_error("log correlation: read the current span", exc)
            return self.invalid
        self.last = (span, fields)
        return fields


_fields: _Fields | None = None


def _global_fields() -> _Fields:
    global _fields
    if _fields is None:
        from telemetry_run.sdk.trace.globals import get_tracer_provider

        resource = getattr(get_tracer_provider(), "resource", None)
        name = resource.attributes.get("service.name") if resource is not None else None
        _fields = _Fields(name if isinstance(name, str) else "")
    return _fields


def correlation_fields() -> dict[str, object]:
    """The four fields for the span current now (a new dict: the caller may change it).

    ``otelServiceName`` is the global tracer provider's ``service.name``, read on first use.
    """
    return dict(_global_fields().current())


def structlog_processor(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor adding the four fields to the event dict."""
    event_dict.update(_global_fields().current())
    return event_dict


def loguru_patcher(record: MutableMapping[str, Any]) -> None:
    """A loguru patcher adding the four fields to ``record["extra"]``."""
    record["extra"].update(_global_fields().current())


class Gate(Protocol):
    """What turns a record factory off: the instrumentor that installed it."""

    active: bool


def record_factory(
    previous: Callable[..., Any], service_name: str, gate: Gate
) -> Callable[..., Any]:
    """A ``logging`` record factory: ``previous``'s record, plus the four fields.

    ``gate.active`` is read per record: once it is False, records pass through untouched (a
    factory set after ours may still call ours). The fields go into the record's ``__dict__``
    even outside a span: formatters read ``record.__dict__``, not attributes, so class-level
    defaults on ``LogRecord`` would not spare a ``KeyError``.

    The factory is the native one of ``_speedups`` where it was built: it adds about what a
    Python function that only calls ``previous`` adds, under half of the Python twin below.
    Both behave alike, and the tests run both.
    """
    fields = _Fields(service_name)
    invalid = fields.invalid
    span_get = _span_get

    if _NativeRecordFactory is not None:

        def in_span(record: Any, span: object) -> None:
            last = fields.last
            record.__dict__.update(last[1] if span is last[0] else fields.refresh(span))

        return _NativeRecordFactory(previous, _SPAN, invalid, gate, in_span)

    def factory(*args: Any, **kwargs: Any) -> Any:
        # Without keywords (how logging calls it), no empty mapping is passed on.
        record = previous(*args, **kwargs) if kwargs else previous(*args)
        span = span_get()
        if span is None:  # outside any span, the common case: the invalid fields as they are
            if gate.active:
                record.__dict__.update(invalid)
        elif gate.active:  # Fields.current, inlined: this runs for every record
            last = fields.last
            record.__dict__.update(last[1] if span is last[0] else fields.refresh(span))
        return record

    return factory
