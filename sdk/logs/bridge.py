"""The ``logging`` side of logs export: each record that reaches the root logger's handlers
becomes a ``LogData`` handed to the ``LoggerProvider``.

Not a handler in ``root.handlers``: one there would make the application's later
``logging.basicConfig(...)`` a no-op (it configures only a root without handlers), silence
``logging.lastResort`` (the stderr output of an application that configured nothing), and be
removed by ``dictConfig``. So ``Logger.callHandlers`` is wrapped instead: a record is exported
when it would reach the root logger's handlers (every logger on its way propagates), as a
handler attached to the root at level NOTSET would see it, and the application's handlers,
formatters, levels and ``basicConfig`` stay as they are. The loggers' levels decide what is
exported, as with the OpenTelemetry SDK's ``LoggingHandler`` on the root logger.

Never re-entered and never a loop: records of our own logger (``telemetry_run``, our
diagnostics), records made on our own threads (the batch workers, where the exporters and the
libraries they use run) and records made while this thread is inside our export path are not
exported. ``emit`` is an append to a bounded queue: it never blocks the application and never
raises into it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk.context import _span_get
from telemetry_run.sdk.logs import LogData, severity_number
from telemetry_run.sdk.logs._guard import _local
from telemetry_run.sdk.trace.span import _INVALID, clean_attribute_value

if TYPE_CHECKING:
    import logging
    from types import ModuleType

    from telemetry_run.sdk.logs.provider import LoggerProvider

__all__ = ["attach", "detach"]

_time_ns = time.time_ns
_severity = severity_number
_OUR_LOGGER: Final = "telemetry_run"
_OUR_THREADS: Final = "telemetry-run"
_WRAPPED: Final = "__telemetry_run_logs__"

#: ``LogRecord`` attributes that are not the application's ``extra=``: the record's own, and
#: those the log correlation factories add (ours and OpenTelemetry's logging instrumentation).
_RECORD_ATTRIBUTES: Final = frozenset(
    (
        "name",
        "msg",
        "args",
        "levelname",
        "levelno",
        "pathname",
        "filename",
        "module",
        "exc_info",
        "exc_text",
        "stack_info",
        "lineno",
        "funcName",
        "created",
        "msecs",
        "relativeCreated",
        "thread",
        "threadName",
        "processName",
        "process",
        "taskName",
        "message",
        "asctime",
        "otelTraceID",
        "otelSpanID",
        "otelTraceSampled",
        "otelServiceName",
    )
)


class _Bridge:
    __slots__ = ("diagnostics", "logging", "plain_size", "provider")

    def __init__(self, provider: LoggerProvider, logging_module: ModuleType) -> None:
        self.provider = provider
        self.diagnostics = provider.diagnostics
        self.logging = logging_module
        # How many attributes a record made without ``extra=`` has: a record with more may
        # carry the application's fields (the set difference is left out otherwise).
        plain = logging_module.LogRecord("", 0, "", 0, "", (), None)
        self.plain_size = len(plain.__dict__)

    def offer(self, logger: logging.Logger, record: logging.LogRecord) -> None:
        """Export ``record`` if a handler on the root logger would see it (module docstring)."""
        name = record.name
        if name == _OUR_LOGGER or name.startswith("telemetry_run."):
            return
        thread_name = record.threadName
        if (thread_name and thread_name.startswith(_OUR_THREADS)) or _local.exporting:
            return
        node: Any = logger
        while node.propagate:
            parent = node.parent
            if parent is None:
                break
            node = parent
        if node is not self.logging.root:
            return  # a logger that does not propagate stops the record before the root
        _local.exporting = True  # whatever runs below logs, it is not exported
        try:
            self.provider.emit(self.capture(record))
        finally:
            _local.exporting = False

    def capture(self, record: logging.LogRecord) -> LogData:
        try:
            body = record.getMessage()
        except Exception:  # noqa: BLE001  # bad arguments: the app's handler reports it
            body = str(record.msg)
        attributes: dict[str, object] = {
            "code.file.path": record.pathname,
            "code.function.name": record.funcName,
            "code.line.number": record.lineno,
        }
        fields = record.__dict__
        if len(fields) > self.plain_size:
            for key in fields.keys() - _RECORD_ATTRIBUTES:
                value = clean_attribute_value(fields[key])
                attributes[key] = str(fields[key]) if value is _INVALID else value
        exc_info = record.exc_info
        if exc_info and exc_info[0] is not None:
            _exception_attributes(attributes, exc_info)
        provider = self.provider
        dropped = 0
        if len(attributes) > provider.max_attributes or provider.max_attribute_length is not None:
            attributes, dropped = _limited(attributes, provider)
        span = _span_get()
        if span is not None:
            try:
                context = span.get_span_context()  # type: ignore[attr-defined]
                if context.is_valid:
                    return LogData(
                        int(record.created * 1e9),
                        _time_ns(),
                        _severity(record.levelno),
                        record.levelname,
                        body,
                        record.name,
                        provider.resource,
                        attributes,
                        context.trace_id,
                        context.span_id,
                        int(context.trace_flags),
                        dropped,
                    )
            except Exception:  # noqa: BLE001  # not a span: the record carries no ids
                pass
        return LogData(
            int(record.created * 1e9),
            _time_ns(),
            _severity(record.levelno),
            record.levelname,
            body,
            record.name,
            provider.resource,
            attributes,
            dropped_attributes=dropped,
        )


def _limited(
    attributes: dict[str, object], provider: LoggerProvider
) -> tuple[dict[str, object], int]:
    """The attributes within the provider's limits (the first ones are kept, strings cut to
    the length limit) and how many were left out."""
    count = provider.max_attributes
    dropped = max(0, len(attributes) - count)
    if dropped:
        attributes = dict(list(attributes.items())[:count])
    length = provider.max_attribute_length
    if length is not None:
        for key, value in attributes.items():
            if isinstance(value, str | tuple):
                attributes[key] = clean_attribute_value(value, length)
    return attributes, dropped


def _exception_attributes(attributes: dict[str, object], exc_info: Any) -> None:
    """``exception.type``, ``.message`` and ``.stacktrace`` (semantic conventions), formatted
    now: the traceback's frames are not kept alive until the export."""
    import traceback

    kind, value = exc_info[0], exc_info[1]
    module = getattr(kind, "__module__", "builtins")
    qualname = getattr(kind, "__qualname__", str(kind))
    attributes["exception.type"] = qualname if module == "builtins" else f"{module}.{qualname}"
    attributes["exception.message"] = str(value) if value is not None else ""
    attributes["exception.stacktrace"] = "".join(traceback.format_exception(*exc_info))


def attach(logging_module: ModuleType, provider: LoggerProvider) -> None:
    """Send every record that reaches the root logger's handlers to ``provider``; attaching
    again sends them to the new provider instead (``Logger.callHandlers`` is wrapped once)."""
    bridge = _Bridge(provider, logging_module)
    logger_class = logging_module.Logger
    current = logger_class.callHandlers
    if getattr(current, _WRAPPED, None) is not None:
        current.__telemetry_run_bridge__ = bridge
        return
    original = current

    def callHandlers(self: logging.Logger, record: logging.LogRecord) -> None:
        bridge = callHandlers.__telemetry_run_bridge__  # type: ignore[attr-defined]
        try:
            bridge.offer(self, record)
        except Exception as exc:  # noqa: BLE001  # the application's logging goes on
            bridge.diagnostics.internal_error("logs export", exc)
        original(self, record)

    callHandlers.__doc__ = original.__doc__
    callHandlers.__telemetry_run_bridge__ = bridge  # type: ignore[attr-defined]
    setattr(callHandlers, _WRAPPED, original)
    logger_class.callHandlers = callHandlers


def detach(logging_module: ModuleType) -> None:
    """Undo ``attach``: ``logging`` as it was (tests, benchmarks)."""
    logger_class = logging_module.Logger
    original = getattr(logger_class.callHandlers, _WRAPPED, None)
    if original is not None:
        logger_class.callHandlers = original
