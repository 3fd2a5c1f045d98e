"""The ``logging`` instrumentor: every ``LogRecord`` carries the ids of the span current when it
was made (``telemetry_run.log_correlation`` says which fields, in which format).

It installs a record factory (``logging.setLogRecordFactory``) that calls the factory set
before it and adds the fields; handlers, formatters and the root logger's configuration are
left as they are. A factory the application sets later replaces ours: one written as logging
documents it (calling the factory ``logging.getLogRecordFactory()`` returned) calls ours and
records keep their fields; one that does not call it ends the correlation. Loaded when the
application imports ``logging``, never at start-up; off with
``OTEL_PYTHON_LOG_CORRELATION=false`` or by name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors.base import Instrumentor, NotApplicable
from telemetry_run.sdk.log_correlation import record_factory

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["LOG_CORRELATION", "LogCorrelationInstrumentor"]

LOG_CORRELATION: Final = "OTEL_PYTHON_LOG_CORRELATION"


class LogCorrelationInstrumentor(Instrumentor):
    """Adds the four ``otel*`` fields of ``telemetry_run.log_correlation`` to every record."""

    def __init__(self) -> None:
        super().__init__()
        self.previous: Callable[..., Any] | None = None
        self.factory: Callable[..., Any] | None = None

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        if not config.get(LOG_CORRELATION, True):
            raise NotApplicable(f"{LOG_CORRELATION}=false")
        resource = getattr(tracer_provider, "resource", None)
        name = resource.attributes.get("service.name") if resource is not None else None
        self.previous = logging.getLogRecordFactory()
        self.factory = record_factory(self.previous, name if isinstance(name, str) else "", self)
        logging.setLogRecordFactory(self.factory)

    def _uninstrument(self) -> None:
        # Only while ours is the factory: a later one that chains to ours keeps working, ours
        # passing records through (``active`` is False now).
        if self.previous is not None and logging.getLogRecordFactory() is self.factory:
            logging.setLogRecordFactory(self.previous)
