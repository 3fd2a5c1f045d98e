"""The bootstrap, run in each Python process the launcher starts (from sitecustomize).

Order: plugins (their variables and their instrumentors' join the registry) -> Config -> SDK
(resource, sampler, limits, exporters behind batch processors) -> global provider and propagator
-> configure hooks -> import hooks for the enabled instrumentors -> exit hook. Any exception
here prints one warning line and the application runs uninstrumented: we never stop a program
from starting and never change its exit code (unless TELEMETRY_RUN_STRICT asks for failures to
be loud).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from telemetry_run.sdk._log import logger
from telemetry_run.sdk._printable import escape, quote
from telemetry_run.sdk._record import Record

if TYPE_CHECKING:
    from types import ModuleType

    from telemetry_run.config import Config
    from telemetry_run.exit import ExitHook
    from telemetry_run.instrumentation import InstrumentorStatus
    from telemetry_run.plugins import Plugins
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.logs.provider import LoggerProvider
    from telemetry_run.sdk.metrics.provider import MeterProvider
    from telemetry_run.sdk.propagation import TextMapPropagator
    from telemetry_run.sdk.trace.provider import TracerProvider
    from telemetry_run.sdk.trace.sampling import Sampler

__all__ = ["Bootstrapped", "bootstrap", "run_once"]


_state: Bootstrapped | None = None
_ran_in: int | None = None


class Bootstrapped(Record):
    """What the bootstrap built, for ``--list``, tests and the uWSGI post-fork hook."""

    __match_args__ = ("config", "plugins", "provider", "exit_hook", "instrumentors")
    __slots__ = __match_args__

    config: Config
    plugins: Plugins
    provider: TracerProvider | None
    exit_hook: ExitHook | None
    instrumentors: list[InstrumentorStatus]

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        provider: TracerProvider | None = None,
        exit_hook: ExitHook | None = None,
        instrumentors: list[InstrumentorStatus] | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.provider = provider
        self.exit_hook = exit_hook
        self.instrumentors = [] if instrumentors is None else instrumentors


def run_once() -> Bootstrapped | None:
    """Bootstrap this process unless it already was (sitecustomize plus ``telemetry_run.auto``).

    A forked child inherits the parent's bootstrap (the SDK is fork-safe), so this is per pid.
    """
    global _state, _ran_in
    if _ran_in is not None:
        return _state
    _ran_in = os.getpid()
    try:
        _state = bootstrap(os.environ)
    except Exception as exc:
        if _strict_requested(os.environ):
            raise
        print(
            f"telemetry-run: instrumentation is off for this process: bootstrap failed "
            f"({type(exc).__name__}: {escape(str(exc))})",
            file=sys.stderr,
        )
        _state = None
    return _state


def _strict_requested(environ: Mapping[str, str]) -> bool:
    # Before the Config exists (it may be what failed): the same parse as the registry's.
    return environ.get("TELEMETRY_RUN_STRICT", "").strip().lower() == "true"


def _configure_logging(level: int) -> None:
    """Our own log lines go to stderr, prefixed, at ``level``; applied when ``logging`` is
    imported (``telemetry_run.sdk._log``), at once if it already is."""
    from telemetry_run.sdk import _log

    if _log.configure(level, sys.stderr):
        from telemetry_run._import_hooks import register_post_import_hook

        register_post_import_hook(lambda _module: _log.apply_pending(), "logging")


def bootstrap(environ: Mapping[str, str]) -> Bootstrapped:
    """Build and install everything from ``environ``; raises only on our own bugs."""
    from telemetry_run.config import Config
    from telemetry_run.plugins import Plugins
    from telemetry_run.sdk._log import ERROR, WARNING

    _configure_logging(WARNING)  # a plugin failing to load is told before the config exists
    plugins = Plugins.load()
    specs = plugins.instrumentor_specs()
    warnings: list[tuple[int, str]] = []
    config = Config.from_env(
        environ,
        [*plugins.variables(), *(v for _, spec in specs for v in spec.declared_variables())],
        warn=lambda message: warnings.append((WARNING, message)),
        error=lambda message: warnings.append((ERROR, message)),
    )
    _configure_logging(config.log_level)
    for level, message in warnings:
        logger.log(level, "%s", message)
    plugins.strict = config.strict
    state = Bootstrapped(config, plugins)
    if config.sdk_disabled:
        logger.debug("OTEL_SDK_DISABLED=true: nothing is instrumented")
        return state

    from telemetry_run._servers import setup as setup_servers
    from telemetry_run.exit import ExitHook
    from telemetry_run.instrumentation import install, plan
    from telemetry_run.plugins import make_strict
    from telemetry_run.sdk.diagnostics import get_diagnostics
    from telemetry_run.sdk.propagation import set_global_textmap
    from telemetry_run.sdk.trace.globals import set_tracer_provider

    diagnostics = get_diagnostics()
    if config.strict:
        make_strict(diagnostics)
    provider = build_provider(config, plugins)
    set_global_textmap(build_propagator(config, plugins))
    set_tracer_provider(provider)
    plugins.configure(config, provider)
    state.provider = provider
    state.instrumentors = plan(specs, config)
    install(state.instrumentors, config, provider)
    _offer_metrics(config, provider, diagnostics)
    logs = build_logs(config, provider)
    from telemetry_run.sdk.metrics.global_provider import built_meter_provider

    state.exit_hook = ExitHook(
        provider,
        diagnostics,
        config.shutdown_timeout,
        always_report=config.debug,
        meter_provider=built_meter_provider,
        logs=logs,
    )
    state.exit_hook.install()
    setup_servers(state)  # uWSGI's C-level forks, the dev servers' reloaders
    logger.debug(
        "instrumented process %d: exporters=%s sampler=%s",
        os.getpid(),
        ",".join(config.traces_exporters) or "none",
        provider.sampler.description(),
    )
    return state


def _offer_metrics(config: Config, provider: TracerProvider, diagnostics: Diagnostics) -> None:
    """Metrics are built when code first asks for a meter (``telemetry_run._metrics``): a
    process that records none pays nothing for them."""
    from telemetry_run.sdk.metrics.global_provider import set_meter_provider_factory

    def build() -> MeterProvider | None:
        from telemetry_run._metrics import build_meter_provider

        return build_meter_provider(config, provider.resource, diagnostics)

    set_meter_provider_factory(build)


def build_provider(config: Config, plugins: Plugins) -> TracerProvider:
    """The TracerProvider the configuration describes, with one batch processor per exporter."""
    from telemetry_run.sdk.processors.batch import BatchSpanProcessor
    from telemetry_run.sdk.resources import Resource
    from telemetry_run.sdk.trace.limits import SpanLimits
    from telemetry_run.sdk.trace.provider import TracerProvider

    attributes: dict[str, object] = dict(config["OTEL_RESOURCE_ATTRIBUTES"])
    if config["OTEL_SERVICE_NAME"]:
        attributes["service.name"] = config["OTEL_SERVICE_NAME"]
    limits = SpanLimits(
        max_attributes=config.attribute_count("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT"),
        max_attribute_length=config.attribute_length(),
        max_events=config["OTEL_SPAN_EVENT_COUNT_LIMIT"],
        max_links=config["OTEL_SPAN_LINK_COUNT_LIMIT"],
        max_event_attributes=config.attribute_count("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT"),
        max_link_attributes=config.attribute_count("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT"),
    )
    provider = TracerProvider(
        resource=Resource.create(attributes),  # type: ignore[arg-type]  # strings from the env
        sampler=build_sampler(config, plugins),
        span_limits=limits,
        shutdown_on_exit=False,  # the exit hook owns the one bounded shutdown
    )
    for name in config.traces_exporters:
        exporter = plugins.span_exporter(name, config)
        if exporter is None:
            available = ", ".join(sorted(plugins.provides().get("exporter", {}))) or "none"
            logger.warning(
                "OTEL_TRACES_EXPORTER: no exporter named %s is installed (available: %s); "
                "spans are not exported there",
                quote(name),
                available,
            )
            continue
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=config["OTEL_BSP_MAX_QUEUE_SIZE"],
                schedule_delay=config["OTEL_BSP_SCHEDULE_DELAY"],
                max_export_batch_size=config["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"],
                export_timeout=config["OTEL_BSP_EXPORT_TIMEOUT"],
            )
        )
    return provider


def build_logs(config: Config, provider: TracerProvider) -> LoggerProvider | None:
    """The logs pipeline ``OTEL_LOGS_EXPORTER`` asks for (None when it is off), sent the
    ``logging`` records once the application imports ``logging`` (not imported here)."""
    names = config.logs_exporters
    if not names:
        return None
    from telemetry_run._import_hooks import register_post_import_hook
    from telemetry_run.sdk.logs import get_log_diagnostics
    from telemetry_run.sdk.logs.processor import BatchLogRecordProcessor
    from telemetry_run.sdk.logs.provider import LoggerProvider

    logs = LoggerProvider(
        lambda: provider.resource,
        get_log_diagnostics(),
        max_attributes=config.attribute_count("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT"),
        max_attribute_length=config.attribute_length("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT"),
    )
    for name in names:
        if name == "otlp":
            from telemetry_run._otlp import log_exporter

            exporter = log_exporter(config)
        else:
            from telemetry_run.sdk.logs.console import ConsoleLogExporter

            exporter = ConsoleLogExporter()
        logs.add_log_record_processor(
            BatchLogRecordProcessor(
                exporter,
                max_queue_size=config["OTEL_BLRP_MAX_QUEUE_SIZE"],
                schedule_delay=config["OTEL_BLRP_SCHEDULE_DELAY"],
                max_export_batch_size=config["OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"],
                export_timeout=config["OTEL_BLRP_EXPORT_TIMEOUT"],
                diagnostics=logs.diagnostics,
            )
        )

    def attach(module: ModuleType) -> None:
        from telemetry_run.sdk.logs.bridge import attach

        try:
            attach(module, logs)
        except Exception as exc:  # logging as it was, one warning
            if config.strict:
                raise
            logger.warning("logs export is off: attaching to logging failed (%s)", exc)

    register_post_import_hook(attach, "logging")
    return logs


def build_sampler(config: Config, plugins: Plugins) -> Sampler:
    name = config["OTEL_TRACES_SAMPLER"]
    sampler = plugins.sampler(name, config["OTEL_TRACES_SAMPLER_ARG"], config)
    if sampler is None:
        available = ", ".join(sorted(plugins.provides().get("sampler", {})))
        logger.warning(
            "OTEL_TRACES_SAMPLER=%s is not a known sampler (available: %s); "
            "using the default (parentbased_always_on)",
            quote(name),
            available,
        )
        sampler = plugins.sampler("parentbased_always_on", None, config)
        assert sampler is not None, "the built-in plugin provides parentbased_always_on"
    return sampler


def build_propagator(config: Config, plugins: Plugins) -> TextMapPropagator:
    from telemetry_run.sdk.propagation import CompositePropagator

    found = []
    for name in config.propagators:
        propagator = plugins.propagator(name, config)
        if propagator is None:
            available = ", ".join(sorted(plugins.provides().get("propagator", {})))
            logger.warning(
                "OTEL_PROPAGATORS: no propagator named %s is installed (available: %s); "
                "skipping it",
                quote(name),
                available,
            )
            continue
        found.append(propagator)
    return CompositePropagator(found)


def current() -> Bootstrapped | None:
    """The bootstrap of this process, if it ran."""
    return _state
