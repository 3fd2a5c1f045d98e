"""The OpenTelemetry API bridge: spans a library makes through ``opentelemetry.trace`` are ours.

Triggered when the application or a library imports ``opentelemetry.trace`` or
``opentelemetry.propagate`` (the API package is the user's, never a dependency of ours, and never
imported by us otherwise). Three globals of the API then point at telemetry-run:

- its runtime context becomes a view of our context (``_otel_bridge.BridgeRuntimeContext``; the
  reasoning is in that module's docstring), so both sides see one current span;
- its tracer provider, when nothing set one, is a ``BridgeTracerProvider`` over ours. It is set
  without the API's set-once latch, so an application that then calls
  ``opentelemetry.trace.set_tracer_provider`` with its own SDK provider keeps it, with one
  warning naming the conflict (opentelemetry-python#3275), and the tracers handed out before
  follow it, as the API's proxies would; the trace context stays shared either way;
- ``opentelemetry.propagate``'s global propagator is ours (``BridgePropagator``).

``uninstrument`` puts the three back.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any

from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.sdk._log import logger

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["OpenTelemetryApiInstrumentor"]

_CONFLICT = (
    "the application set its own OpenTelemetry tracer provider (%r) with "
    "opentelemetry.trace.set_tracer_provider: it keeps it, so the spans it makes through the "
    "OpenTelemetry API go to its own pipeline, not telemetry-run's (same traces, since the "
    "context is shared); remove that call to send them with the others "
    "(opentelemetry-python#3275)"
)


class OpenTelemetryApiInstrumentor(Instrumentor):
    """Points the OpenTelemetry API's tracer provider, context and propagator at ours."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._warned = False
        self._saved: dict[str, Any] = {}
        self._bridge: Any = None

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry import trace as otel_trace

        from telemetry_run.instrumentors import _otel_bridge as bridge
        from telemetry_run.plugin import register_post_import_hook

        runtime = otel_context._RUNTIME_CONTEXT
        self._saved["runtime"] = runtime
        otel_context._RUNTIME_CONTEXT = bridge.BridgeRuntimeContext(runtime)

        self._bridge = bridge.BridgeTracerProvider(tracer_provider)
        current = otel_trace._TRACER_PROVIDER
        self._saved["provider"] = current
        if current is None:
            # Not through set_tracer_provider: its set-once latch stays open for the application.
            otel_trace._TRACER_PROVIDER = self._bridge
        else:  # set before the launcher ran (telemetry-run started late): theirs stays
            self._warn_conflict(current)
        self.patcher.wrap(otel_trace, "set_tracer_provider", self._set_tracer_provider)
        register_post_import_hook(self._bridge_propagate, "opentelemetry.propagate")

    def _set_tracer_provider(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = wrapped(*args, **kwargs)
        if self.active:
            with guard("opentelemetry-api set_tracer_provider"):
                self._follow_application_provider()
        return result

    def _follow_application_provider(self) -> None:
        from opentelemetry import trace as otel_trace

        current = otel_trace._TRACER_PROVIDER
        bridge = self._bridge
        if current is None or current is bridge or bridge is None:
            return
        bridge.replaced_by = current
        self._warn_conflict(current)

    def _warn_conflict(self, provider: object) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        logger.warning(_CONFLICT, provider)

    @guard("opentelemetry-api propagate")
    def _bridge_propagate(self, module: ModuleType) -> None:
        if not self.active:
            return
        from telemetry_run.instrumentors._otel_bridge import BridgePropagator

        self._saved["textmap"] = module.get_global_textmap()
        module.set_global_textmap(BridgePropagator())

    def _uninstrument(self) -> None:
        import sys

        from opentelemetry import context as otel_context
        from opentelemetry import trace as otel_trace

        saved = self._saved
        if "runtime" in saved:
            otel_context._RUNTIME_CONTEXT = saved.pop("runtime")
        if otel_trace._TRACER_PROVIDER is self._bridge:
            otel_trace._TRACER_PROVIDER = saved.get("provider")
        saved.pop("provider", None)
        propagate = sys.modules.get("opentelemetry.propagate")
        if "textmap" in saved and propagate is not None:
            propagate.set_global_textmap(saved.pop("textmap"))
