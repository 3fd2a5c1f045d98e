"""pytest helpers for telemetry-run and its plugins: the in-memory span recorder and a real
OTLP receiver (``otlp_receiver``, from ``telemetry_run.testing.otlp``).

Opt in with ``pytest_plugins = ["telemetry_run.testing"]`` in a ``conftest.py`` (import from
it only inside tests or under ``TYPE_CHECKING`` there: pytest rewrites a plugin's asserts only if
it imports it first). It is not a ``pytest11`` entry point on purpose: installing telemetry-run
must not change anyone else's test runs. The instrumentor conformance suite is in
``telemetry_run.testing.contract``; ``config_for`` builds a Config with a plugin's variables.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import pytest

from telemetry_run.config import Config
from telemetry_run.sdk import (
    Diagnostics,
    InMemorySpanExporter,
    Resource,
    Sampler,
    SimpleSpanProcessor,
    TracerProvider,
)
from telemetry_run.sdk.diagnostics import InternalError, get_diagnostics
from telemetry_run.sdk.trace import ReadableSpan, Tracer

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

__all__ = ["SpanRecorder", "config_for", "otlp_receiver", "span_recorder"]


def config_for(plugin: object, environ: Mapping[str, str] | None = None) -> Config:
    """The Config a plugin sees under the launcher: ours plus its declared variables and
    those of its instrumentors (``InstrumentorSpec.declared_variables``)."""
    hook = getattr(plugin, "telemetry_run_variables", None)
    extra = list(hook() or ()) if hook is not None else []
    specs = getattr(plugin, "telemetry_run_instrumentors", None)
    for spec in (specs() or ()) if specs is not None else ():
        extra += spec.declared_variables()
    return Config.from_env(environ or {}, extra)


class SpanRecorder:
    """A tracer provider whose ended spans land in memory, synchronously.

    ``provider`` is what an instrumentor under test gets; ``spans`` the finished spans in end
    order. The provider has its own ``Diagnostics``: internal errors the SDK reports through it
    are kept in ``internal_errors`` (the ``span_recorder`` fixture fails the test on them).
    """

    def __init__(self, *, sampler: Sampler | None = None, service_name: str = "test") -> None:
        self.diagnostics = Diagnostics()
        self.internal_errors: list[InternalError] = []
        self.diagnostics.on_internal_error = self.internal_errors.append
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource({"service.name": service_name}),
            sampler=sampler,
            diagnostics=self.diagnostics,
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(
            SimpleSpanProcessor(self.exporter, diagnostics=self.diagnostics)
        )
        self.tracer: Tracer = self.provider.get_tracer("telemetry_run.testing")

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def by_name(self, name: str) -> list[ReadableSpan]:
        """The finished spans called ``name``, in end order."""
        return [span for span in self.spans if span.name == name]

    def one(self, name: str) -> ReadableSpan:
        """The only finished span called ``name``; fails naming what was recorded otherwise."""
        found = self.by_name(name)
        if len(found) != 1:
            names = [span.name for span in self.spans]
            raise AssertionError(f"expected one span {name!r}, found {len(found)} in {names}")
        return found[0]

    def clear(self) -> None:
        self.exporter.clear()

    def shutdown(self) -> None:
        self.provider.shutdown(timeout=5.0)


@pytest.fixture
def span_recorder() -> Iterator[SpanRecorder]:
    """A fresh ``SpanRecorder``; the test fails if an internal error was reported, by the SDK
    or by an instrumentor's ``guard`` (which reports to the process-wide diagnostics)."""
    recorder = SpanRecorder()
    process_wide = get_diagnostics()
    previous = process_wide.on_internal_error
    process_wide.on_internal_error = recorder.internal_errors.append
    try:
        yield recorder
    finally:
        process_wide.on_internal_error = previous
        recorder.shutdown()
    if recorder.internal_errors:
        pytest.fail(f"internal errors were reported: {recorder.internal_errors!r}")


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    """A started ``telemetry_run.testing.otlp.OTLPReceiver`` (gRPC and HTTP on 127.0.0.1),
    stopped after the test."""
    from telemetry_run.testing.otlp import OTLPReceiver

    receiver = OTLPReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
