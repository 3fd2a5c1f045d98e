"""The plugin contract: every hook a ``telemetry_run`` plugin may implement.

Built-in and third-party plugins answer the same hooks (pytest's rule), so anything the
distro does by name (an exporter, a sampler, a propagator, an instrumentor) a plugin can add or
replace. A plugin is a module (or object) named by an entry point in the ``telemetry_run``
group whose functions carry ``@hookimpl``. Plugins registered later are asked first, so a
third-party plugin answering a name the built-ins also answer wins.

Hooks are called one implementation at a time (pluggy's implementations, in pluggy's call
order) and each call is guarded: a plugin that raises is reported once and treated as having
answered ``None`` (``TELEMETRY_RUN_STRICT=true`` makes it raise instead). Hook wrappers are
therefore not supported on these hooks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

import pluggy

if TYPE_CHECKING:
    from telemetry_run.config import Config, Variable
    from telemetry_run.instrumentors.base import InstrumentorSpec
    from telemetry_run.sdk.exporters import SpanExporter
    from telemetry_run.sdk.propagation import TextMapPropagator
    from telemetry_run.sdk.trace.provider import TracerProvider
    from telemetry_run.sdk.trace.sampling import Sampler

__all__ = ["PROJECT", "hookimpl", "hookspec"]

#: The pluggy project name and the entry-point group.
PROJECT: Final = "telemetry_run"

hookspec: Final = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementations: pluggy's own marker for our project, so
#: ``pluggy.HookimplMarker("telemetry_run")`` is the same thing. The one definition,
#: re-exported by ``telemetry_run.plugin`` and ``telemetry_run``.
hookimpl: Final = pluggy.HookimplMarker(PROJECT)


@hookspec
def telemetry_run_variables() -> Sequence[Variable] | None:
    """Declare the environment variables this plugin reads.

    Called once, right after the plugins are loaded and before the configuration is built:
    the variables join the registry, so they are parsed (one warning and the default for a bad
    value), shown by ``--list`` and read from ``Config`` like the built-in ones. A plugin never
    reads the environment itself. A variable that the built-ins (or an earlier plugin) already
    declare keeps the first declaration.

    Every plugin is asked; return an empty sequence (or ``None``) to declare nothing.
    """


@hookspec
def telemetry_run_provides() -> Mapping[str, Sequence[str]] | None:
    """The names this plugin can build, by kind: ``{"exporter": [...], "sampler": [...],
    "propagator": [...]}``.

    Used by ``--list`` and to say which plugin provides a name; it must agree with what the
    factory hooks below answer. Called without a configuration, so it must be cheap and must not
    build anything. Every plugin is asked; ``None`` means it provides nothing by name.
    """


@hookspec(firstresult=True)
def telemetry_run_span_exporter(name: str, config: Config) -> SpanExporter | None:
    """Build the span exporter called ``name`` (one entry of ``OTEL_TRACES_EXPORTER``).

    Called once per configured exporter name while the SDK is built, in the application's
    process. Return ``None`` when this plugin does not know ``name``: the next plugin is asked,
    and when nobody answers the name is reported as unknown. The first non-``None`` result
    wins. Import heavy transports here, not at module import.
    """


@hookspec(firstresult=True)
def telemetry_run_sampler(name: str, arg: str | None, config: Config) -> Sampler | None:
    """Build the sampler called ``name`` (``OTEL_TRACES_SAMPLER``).

    ``arg`` is the raw ``OTEL_TRACES_SAMPLER_ARG`` (``None`` when unset); a sampler that cannot
    use it logs one warning naming the variable and the value and falls back to its default.
    Return ``None`` when this plugin does not know ``name``; the first non-``None`` result
    wins.
    """


@hookspec(firstresult=True)
def telemetry_run_propagator(name: str, config: Config) -> TextMapPropagator | None:
    """Build the propagator called ``name`` (one entry of ``OTEL_PROPAGATORS``).

    Return ``None`` when this plugin does not know ``name``; the first non-``None`` result
    wins.
    """


@hookspec
def telemetry_run_instrumentors() -> Sequence[InstrumentorSpec] | None:
    """Declare the instrumentors this plugin offers, as cheap data.

    Called at start-up in every process and by ``--list``: build the ``InstrumentorSpec``
    values and import nothing else (the instrumentor's own module is named by ``spec.load``
    and imported only once its target library is). Every plugin is asked and the lists are
    joined; when two plugins declare the same instrumentor name the later-registered one wins.
    Return an empty sequence (or ``None``) to declare none.
    """


@hookspec
def telemetry_run_configure(config: Config, tracer_provider: TracerProvider) -> None:
    """Adjust the freshly built SDK.

    Called once in the application's process after the tracer provider is built and before
    any instrumentor is installed: add span processors, read this plugin's variables, start
    what the plugin needs. Every plugin is called; the return value
    is ignored.
    """
