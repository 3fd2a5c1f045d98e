"""The current span lives in the context under one key; these read and set it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from telemetry_run.sdk._log import logger as _logger
from telemetry_run.sdk.context import _SPAN, SPAN_KEY, Context, _span_get, set_value
from telemetry_run.sdk.trace.api import INVALID_SPAN, Span, Status, StatusCode

__all__ = ["SPAN_KEY", "get_current_span", "set_span_in_context", "use_span"]


def get_current_span(context: Context | None = None) -> Span:
    span = context.get(SPAN_KEY) if context is not None else _span_get()
    return span if isinstance(span, Span) else INVALID_SPAN


def set_span_in_context(span: Span, context: Context | None = None) -> Context:
    return set_value(SPAN_KEY, span, context)


@contextmanager
def use_span(
    span: Span,
    end_on_exit: bool = False,
    record_exception: bool = True,
    set_status_on_exception: bool = True,
) -> Iterator[Span]:
    """Make ``span`` current for the block; an exception escaping it is recorded on the span."""
    token = _SPAN.set(span)
    try:
        yield span
    except BaseException as exc:
        if span.is_recording() and not isinstance(exc, GeneratorExit):
            if record_exception:
                span.record_exception(exc, escaped=True)
            if set_status_on_exception:
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        try:
            _SPAN.reset(token)
        except (ValueError, RuntimeError):
            _logger.debug("use_span: context left in another context than it was entered in")
        if end_on_exit:
            span.end()
