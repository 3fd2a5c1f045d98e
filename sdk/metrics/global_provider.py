"""The process's MeterProvider: set by the application, or built on first use by the launcher.

Under ``telemetry-run`` the launcher registers a factory instead of a provider, so a process
that never records a metric never builds the pipeline (no imports, no export thread). The
first provider set or built wins; a later ``set_meter_provider`` is ignored with one warning.
Before anything is set, ``get_meter_provider()`` gives a provider without readers, whose
instruments record nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from telemetry_run.sdk import forking
from telemetry_run.sdk._log import logger as _logger

if TYPE_CHECKING:
    from telemetry_run.sdk.metrics.provider import Meter, MeterProvider

__all__ = [
    "built_meter_provider",
    "get_meter",
    "get_meter_provider",
    "set_meter_provider",
    "set_meter_provider_factory",
]

_lock = threading.Lock()
_provider: MeterProvider | None = None
_factory: Callable[[], MeterProvider | None] | None = None
_idle: MeterProvider | None = None


def _reinit_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()


forking.register(_reinit_lock_after_fork)


def set_meter_provider(provider: MeterProvider) -> None:
    """Make ``provider`` the process's; ignored, with a warning, once one is set or built."""
    global _provider
    with _lock:
        if _provider is None:
            _provider = provider
            return
    _logger.warning(
        "set_meter_provider ignored: a MeterProvider is already in use in this process (under "
        "telemetry-run, the launcher's); metrics would otherwise split across two pipelines"
    )


def set_meter_provider_factory(factory: Callable[[], MeterProvider | None]) -> None:
    """Build the provider with ``factory`` when code first asks for one (the launcher's way)."""
    global _factory
    with _lock:
        _factory = factory


def get_meter_provider() -> MeterProvider:
    """The process's provider, built now if the launcher left a factory."""
    global _provider, _idle
    with _lock:
        if _provider is None and _factory is not None:
            factory = _factory
            try:
                _provider = factory()
            except Exception as exc:  # noqa: BLE001  # never into the app: metrics stay off
                from telemetry_run.sdk.diagnostics import get_diagnostics

                get_diagnostics().internal_error("building the MeterProvider", exc)
            if _provider is None:  # metrics off (OTEL_METRICS_EXPORTER=none, or a failure)
                _set_factory_done()
        if _provider is not None:
            return _provider
        if _idle is None:
            from telemetry_run.sdk.metrics.provider import MeterProvider
            from telemetry_run.sdk.resources import Resource

            _idle = MeterProvider(resource=Resource({}))
        return _idle


def _set_factory_done() -> None:
    global _factory
    _factory = None


def get_meter(name: str, version: str | None = None, schema_url: str | None = None) -> Meter:
    """``get_meter_provider().get_meter(...)``."""
    return get_meter_provider().get_meter(name, version, schema_url)


def built_meter_provider() -> MeterProvider | None:
    """The provider set or built so far, or None (the exit hook flushes only a real one)."""
    return _provider


def _reset_for_tests() -> None:
    global _provider, _factory, _idle
    with _lock:
        _provider = _factory = _idle = None
