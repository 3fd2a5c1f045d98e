"""The global tracer provider, with proxies so early tracers are never stuck as no-ops.

A library that calls ``get_tracer(__name__)`` at import time, before anything set a provider,
gets a ProxyTracer. Once a provider is set, that tracer records through it (the OpenTelemetry
Go seed's "no-op until registered" trap, fixed). The first provider set wins: a second
``set_tracer_provider`` (an application's own provider under the launcher) is ignored with one
warning naming both, so spans never split across two pipelines.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from telemetry_run.sdk import forking
from telemetry_run.sdk._log import logger as _logger
from telemetry_run.sdk.context import Context
from telemetry_run.sdk.trace import api
from telemetry_run.sdk.trace.api import (
    INVALID_SPAN_CONTEXT,
    Attributes,
    Link,
    NonRecordingSpan,
    Span,
    SpanKind,
)
from telemetry_run.sdk.trace.current import get_current_span
from telemetry_run.sdk.trace.scoped import StartsCurrentSpans

__all__ = [
    "NoOpTracer",
    "ProxyTracer",
    "ProxyTracerProvider",
    "get_tracer",
    "get_tracer_provider",
    "set_tracer_provider",
]

_lock = threading.Lock()
_provider: api.TracerProvider | None = None


def _reinit_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


forking.register(_reinit_lock_after_fork)


class NoOpTracer(StartsCurrentSpans, api.Tracer):
    """Starts non-recording spans that carry the parent's context onward."""

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        parent = get_current_span(context).get_span_context()
        return NonRecordingSpan(parent if parent.is_valid else INVALID_SPAN_CONTEXT)


_NOOP = NoOpTracer()


class ProxyTracer(NoOpTracer):
    """A tracer handed out before a provider was set; it follows the provider once set."""

    def __init__(
        self,
        name: str,
        version: str | None,
        schema_url: str | None,
        attributes: Attributes,
    ):
        self._args = (name, version, schema_url, attributes)
        self._real: api.Tracer | None = None

    def _delegate(self) -> api.Tracer:
        real = self._real
        if real is None:
            provider = _provider
            if provider is None:
                return _NOOP
            real = self._real = provider.get_tracer(*self._args)
        return real

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        return self._delegate().start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )


class ProxyTracerProvider(api.TracerProvider):
    """What ``get_tracer_provider()`` returns until a provider is set."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> api.Tracer:
        provider = _provider
        if provider is not None:
            return provider.get_tracer(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
        return ProxyTracer(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )


_PROXY_PROVIDER = ProxyTracerProvider()


def get_tracer_provider() -> api.TracerProvider:
    return _provider if _provider is not None else _PROXY_PROVIDER


def set_tracer_provider(tracer_provider: api.TracerProvider) -> None:
    """Set the global provider once; later calls are ignored with a warning naming both."""
    global _provider
    with _lock:
        current = _provider
        if current is None:
            _provider = tracer_provider
            return
    if current is not tracer_provider:
        _logger.warning(
            "set_tracer_provider(%r) ignored: the global tracer provider is already %r "
            "(set by telemetry-run or earlier code); spans keep going to the first one",
            tracer_provider,
            current,
        )


def get_tracer(
    instrumenting_module_name: str,
    instrumenting_library_version: str | None = None,
    tracer_provider: api.TracerProvider | None = None,
    schema_url: str | None = None,
    attributes: Attributes = None,
) -> api.Tracer:
    provider = tracer_provider if tracer_provider is not None else get_tracer_provider()
    return provider.get_tracer(
        instrumenting_module_name, instrumenting_library_version, schema_url, attributes
    )


def _reset_for_tests() -> None:
    """Forget the global provider (tests only; an application never unsets it)."""
    global _provider
    with _lock:
        _provider = None
