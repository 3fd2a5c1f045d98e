"""Everything a plugin author needs, from one module: ``from telemetry_run.plugin import ...``.

Names resolve on first use: a plugin module that imports only ``hookimpl`` and
``InstrumentorSpec`` (all a spec-declaring plugin needs at start-up) does not import the SDK's
tracing, which keeps ``telemetry-run --list`` and interpreter start-up cheap. The instrumentor
toolkit is here too (``client_call``, ``server_call``, ``StatusRules``, ...: the home of the
built-ins, ``telemetry_run.instrumentors.toolkit``), imported when an instrumentor first asks.

Log through ``logging.getLogger("telemetry_run.<your plugin>")``: its lines get the
``telemetry-run:`` prefix and follow ``OTEL_LOG_LEVEL``/``TELEMETRY_RUN_DEBUG`` like ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run.sdk._lazy import lazy_exports

if TYPE_CHECKING:
    from telemetry_run._env import (
        InvalidValue,
        parse_bool,
        parse_duration_ms,
        parse_enum,
        parse_int,
        parse_key_values,
        parse_list,
        parse_str,
        parse_timeout_ms,
    )
    from telemetry_run._import_hooks import register_post_import_hook
    from telemetry_run.config import Config, Variable
    from telemetry_run.hookspecs import hookimpl
    from telemetry_run.instrumentors.base import (
        Instrumentor,
        InstrumentorSpec,
        NotApplicable,
        Patcher,
        ReleaseLine,
        guard,
    )
    from telemetry_run.instrumentors.toolkit import (
        CALL_END_HOOKS,
        HTTP_CLIENT,
        HTTP_SERVER,
        PLAIN,
        RPC_CLIENT,
        RPC_SERVER,
        Call,
        CallSite,
        SiteOptions,
        StatusRules,
        client_call,
        server_call,
    )
    from telemetry_run.sdk.exporters import ExportResult, SpanExporter
    from telemetry_run.sdk.propagation import TextMapPropagator
    from telemetry_run.sdk.trace.api import Attributes
    from telemetry_run.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
        parse_ratio,
    )

__all__ = [
    "ALWAYS_OFF",
    "ALWAYS_ON",
    "CALL_END_HOOKS",
    "HTTP_CLIENT",
    "HTTP_SERVER",
    "PLAIN",
    "RPC_CLIENT",
    "RPC_SERVER",
    "Attributes",
    "Call",
    "CallSite",
    "Config",
    "Decision",
    "ExportResult",
    "Instrumentor",
    "InstrumentorSpec",
    "InvalidValue",
    "NotApplicable",
    "ParentBased",
    "Patcher",
    "ReleaseLine",
    "Sampler",
    "SamplingResult",
    "SiteOptions",
    "SpanExporter",
    "StatusRules",
    "TextMapPropagator",
    "TraceIdRatioBased",
    "Variable",
    "client_call",
    "guard",
    "hookimpl",
    "parse_bool",
    "parse_duration_ms",
    "parse_enum",
    "parse_int",
    "parse_key_values",
    "parse_list",
    "parse_ratio",
    "parse_str",
    "parse_timeout_ms",
    "register_post_import_hook",
    "server_call",
]

_HOME: Final = {
    "hookimpl": "telemetry_run.hookspecs",
    "Config": "telemetry_run.config",
    "Variable": "telemetry_run.config",
    "Instrumentor": "telemetry_run.instrumentors.base",
    "InstrumentorSpec": "telemetry_run.instrumentors.base",
    "NotApplicable": "telemetry_run.instrumentors.base",
    "Patcher": "telemetry_run.instrumentors.base",
    "ReleaseLine": "telemetry_run.instrumentors.base",
    "guard": "telemetry_run.instrumentors.base",
    # The toolkit: one CLIENT or SERVER span per call, the sequence in one place.
    "client_call": "telemetry_run.instrumentors.toolkit",
    "server_call": "telemetry_run.instrumentors.toolkit",
    "Call": "telemetry_run.instrumentors.toolkit",
    "CallSite": "telemetry_run.instrumentors.toolkit",
    "SiteOptions": "telemetry_run.instrumentors.toolkit",
    "StatusRules": "telemetry_run.instrumentors.toolkit",
    "PLAIN": "telemetry_run.instrumentors.toolkit",
    "HTTP_CLIENT": "telemetry_run.instrumentors.toolkit",
    "HTTP_SERVER": "telemetry_run.instrumentors.toolkit",
    "RPC_CLIENT": "telemetry_run.instrumentors.toolkit",
    "RPC_SERVER": "telemetry_run.instrumentors.toolkit",
    "CALL_END_HOOKS": "telemetry_run.instrumentors.toolkit",
    "ExportResult": "telemetry_run.sdk.exporters",
    "SpanExporter": "telemetry_run.sdk.exporters",
    "TextMapPropagator": "telemetry_run.sdk.propagation",
    "Decision": "telemetry_run.sdk.trace.sampling",
    "Sampler": "telemetry_run.sdk.trace.sampling",
    "SamplingResult": "telemetry_run.sdk.trace.sampling",
    "ParentBased": "telemetry_run.sdk.trace.sampling",
    "TraceIdRatioBased": "telemetry_run.sdk.trace.sampling",
    "ALWAYS_ON": "telemetry_run.sdk.trace.sampling",
    "ALWAYS_OFF": "telemetry_run.sdk.trace.sampling",
    "Attributes": "telemetry_run.sdk.trace.api",
    "parse_ratio": "telemetry_run.sdk.trace.sampling",
    "InvalidValue": "telemetry_run._env",
    "parse_bool": "telemetry_run._env",
    "parse_duration_ms": "telemetry_run._env",
    "parse_enum": "telemetry_run._env",
    "parse_int": "telemetry_run._env",
    "parse_key_values": "telemetry_run._env",
    "parse_list": "telemetry_run._env",
    "parse_str": "telemetry_run._env",
    "parse_timeout_ms": "telemetry_run._env",
    "register_post_import_hook": "telemetry_run._import_hooks",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)
