"""The instrumentors' duration metrics: one histogram measurement per traced call.

A site made with ``metric="http.server.request.duration"`` (or another name of ``KINDS``) has
each call's duration recorded by ``CallMetrics``, the toolkit's ``CALL_END_HOOKS`` entry, with
the conventions' low-cardinality attributes only (never the path, the query or the statement)
and their advisory bucket boundaries. Every call the gate traced is counted, sampled or not, so
the request rate is right at any sampling ratio; the duration is measured by ``perf_counter``
(a sampled-out span has no times). The call's context is current while recording, so a sampled
call's measurement carries its trace as an exemplar.

Off costs nothing: the meter provider is looked up at the first call's end (under the launcher
that builds the pipeline, lazily); a provider without readers (``OTEL_METRICS_EXPORTER=none``,
or none set) turns the recorder into one attribute check. Instruments are created once per
site, and the attribute sets of a kind are interned, so the stream's fast path (one identity
check) serves every repeated (method, route, status) combination.

The gRPC duration follows the RPC conventions our spans follow (v1.37: ``rpc.system``,
``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``): ``rpc.server.duration`` and
``rpc.client.duration`` in milliseconds, with the SDK's default buckets (which are in
milliseconds' range); the newer ``rpc.*.call.duration`` in seconds renames those attributes too.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors import _http, _rpc
from telemetry_run.sdk.context import _span_get, attach, detach

if TYPE_CHECKING:
    from telemetry_run.instrumentors.toolkit import Call, CallSite
    from telemetry_run.sdk.metrics.attributes import AttributeSet
    from telemetry_run.sdk.metrics.instruments import Histogram
    from telemetry_run.sdk.metrics.provider import MeterProvider

__all__ = [
    "DB_CLIENT",
    "HTTP_CLIENT",
    "HTTP_SERVER",
    "KINDS",
    "RPC_CLIENT",
    "RPC_SERVER",
    "CallMetrics",
    "MetricKind",
    "install",
]

HTTP_SERVER: Final = "http.server.request.duration"
HTTP_CLIENT: Final = "http.client.request.duration"
RPC_SERVER: Final = "rpc.server.duration"
RPC_CLIENT: Final = "rpc.client.duration"
DB_CLIENT: Final = "db.client.operation.duration"

#: The HTTP conventions' advisory boundaries (seconds).
_HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
#: The database conventions' advisory boundaries (seconds).
_DB_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10)

#: Interned attribute sets per kind before new combinations are built per call instead.
_INTERNED_LIMIT: Final = 1024

Values = tuple[Any, ...]


class MetricKind:
    """One convention's histogram: its name, unit, advice, and how a call's attributes are
    chosen (``values(call)``: a tuple, in ``names``' order, None for an absent attribute)."""

    __slots__ = ("boundaries", "description", "name", "names", "scale", "unit", "values")

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        names: tuple[str, ...],
        values: Callable[[Call], Values],
        boundaries: tuple[float, ...] | None = None,
        scale: float = 1.0,
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.names = names
        self.values = values
        self.boundaries = boundaries
        #: Seconds to the unit (1000 for milliseconds).
        self.scale = scale


def _exception_type(call: Call) -> str | None:
    exc = call.exception
    return None if exc is None else _http.exception_type(exc)


def _http_server(call: Call) -> Values:
    attributes = call.attributes
    code = call.status_code
    error = str(code) if isinstance(code, int) and code >= 500 else _exception_type(call)
    return (
        attributes.get("http.request.method"),
        attributes.get("url.scheme"),
        call.route,
        code,
        error,
        attributes.get("network.protocol.version"),
    )


def _http_client(call: Call) -> Values:
    attributes = call.attributes
    code = call.status_code
    error = str(code) if isinstance(code, int) and code >= 400 else _exception_type(call)
    return (
        attributes.get("http.request.method"),
        attributes.get("server.address"),
        attributes.get("server.port"),
        code,
        error,
    )


def _rpc_values(call: Call, *, server: bool) -> Values:
    """As the span has them: a server's call without a code is OK (UNKNOWN if its handler
    raised); a client's exception (no status from the server) is its ``error.type``."""
    attributes = call.attributes
    code = _rpc.code_value(call.status_code) if call.status_code is not None else None
    exc = call.exception
    if server and code is None:
        code = _rpc.OK if exc is None else _rpc.UNKNOWN
    error = None
    if exc is not None and not server:
        error = _http.exception_type(exc)
    elif code is not None and _rpc.is_error(code, server=server):
        error = _rpc.CODE_NAMES.get(code, str(code))
    return (
        attributes.get("rpc.system"),
        attributes.get("rpc.service"),
        attributes.get("rpc.method"),
        None if server else attributes.get("server.address"),
        None if server else attributes.get("server.port"),
        code,
        error,
    )


def _rpc_server(call: Call) -> Values:
    return _rpc_values(call, server=True)


def _rpc_client(call: Call) -> Values:
    return _rpc_values(call, server=False)


def _db_status(exc: BaseException | None) -> str | None:
    """The database's own code for the failure (SQLSTATE, SQLite's, a Redis error prefix)."""
    if exc is None:
        return None
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if code is None:
        code = getattr(exc, "sqlite_errorcode", None)
    reply = getattr(sys.modules.get("redis.exceptions"), "ResponseError", None)
    if code is None and reply is not None and isinstance(exc, reply):  # ``WRONGTYPE ...``
        prefix = str(exc).split(" ", 1)[0]
        code = prefix if prefix.isupper() else None
    return None if code is None else str(code)


def _db_client(call: Call) -> Values:
    attributes = call.attributes
    return (
        attributes.get("db.system.name"),
        attributes.get("db.namespace"),
        attributes.get("db.operation.name"),
        attributes.get("db.collection.name"),
        attributes.get("db.stored_procedure.name"),
        attributes.get("server.address"),
        attributes.get("server.port"),
        _db_status(call.exception),
        _exception_type(call),
    )


_RPC_NAMES: Final = (
    "rpc.system",
    "rpc.service",
    "rpc.method",
    "server.address",
    "server.port",
    "rpc.grpc.status_code",
    "error.type",
)

#: The kinds by metric name: what a site's ``metric`` may be.
KINDS: Final[Mapping[str, MetricKind]] = {
    kind.name: kind
    for kind in (
        MetricKind(
            HTTP_SERVER,
            "s",
            "Duration of HTTP server requests.",
            (
                "http.request.method",
                "url.scheme",
                "http.route",
                "http.response.status_code",
                "error.type",
                "network.protocol.version",
            ),
            _http_server,
            _HTTP_BUCKETS,
        ),
        MetricKind(
            HTTP_CLIENT,
            "s",
            "Duration of HTTP client requests.",
            (
                "http.request.method",
                "server.address",
                "server.port",
                "http.response.status_code",
                "error.type",
            ),
            _http_client,
            _HTTP_BUCKETS,
        ),
        MetricKind(
            RPC_SERVER,
            "ms",
            "Measures the duration of inbound RPC.",
            _RPC_NAMES,
            _rpc_server,
            scale=1000.0,
        ),
        MetricKind(
            RPC_CLIENT,
            "ms",
            "Measures the duration of outbound RPC.",
            _RPC_NAMES,
            _rpc_client,
            scale=1000.0,
        ),
        MetricKind(
            DB_CLIENT,
            "s",
            "Duration of database client operations.",
            (
                "db.system.name",
                "db.namespace",
                "db.operation.name",
                "db.collection.name",
                "db.stored_procedure.name",
                "server.address",
                "server.port",
                "db.response.status_code",
                "error.type",
            ),
            _db_client,
            _DB_BUCKETS,
        ),
    )
}


class _Recorder:
    """One site's histogram, and its kind's interned attribute sets."""

    __slots__ = ("histogram", "interned", "kind")

    def __init__(
        self, kind: MetricKind, histogram: Histogram, interned: dict[Values, AttributeSet]
    ) -> None:
        self.kind = kind
        self.histogram = histogram
        self.interned = interned


class CallMetrics:
    """The ``CALL_END_HOOKS`` entry recording each call of a site with a ``metric``.

    ``provider``: the meter provider (by default the process's, looked up at the first call).
    """

    def __init__(self, provider: MeterProvider | None = None) -> None:
        self._provider = provider
        self._resolved = provider is not None
        #: No provider with readers: every call returns at once.
        self.off = provider is not None and not provider.readers
        self._recorders: dict[CallSite, _Recorder] = {}
        self._interned: dict[str, dict[Values, AttributeSet]] = {name: {} for name in KINDS}
        self._lock = threading.Lock()

    def __call__(self, call: Call) -> None:
        if self.off:
            return
        site = call.site
        if site.metric is None:
            return
        duration = perf_counter() - call.started
        recorder = self._recorders.get(site)
        if recorder is None:
            recorder = self._recorder(site)
            if recorder is None:
                return
        kind = recorder.kind
        attributes = self._attributes(recorder, kind.values(call))
        if kind.scale != 1.0:
            duration *= kind.scale
        if _span_get() is call.span:
            recorder.histogram.record(duration, attributes)
            return
        # Ended in another frame (a callback, a closed stream): the call's context makes a
        # sampled call's measurement an exemplar of its trace.
        token = attach(call.context)
        try:
            recorder.histogram.record(duration, attributes)
        finally:
            detach(token)

    def _attributes(self, recorder: _Recorder, values: Values) -> AttributeSet:
        interned = recorder.interned
        attributes = interned.get(values)
        if attributes is not None:
            return attributes
        from telemetry_run.sdk.metrics.attributes import AttributeSet

        built = AttributeSet(
            {
                name: value
                for name, value in zip(recorder.kind.names, values, strict=True)
                if value is not None
            }
        )
        if len(interned) < _INTERNED_LIMIT:
            interned[values] = built
        return built

    def _recorder(self, site: CallSite) -> _Recorder | None:
        """The site's histogram, created once; None (and ``off``) without a provider."""
        kind = KINDS.get(site.metric or "")
        if kind is None:
            raise ValueError(f"{site.name}: no duration metric named {site.metric!r}")
        with self._lock:
            recorder = self._recorders.get(site)
            if recorder is not None:
                return recorder
            provider = self._meter_provider()
            if provider is None:
                return None
            scope = getattr(site.tracer, "scope", None)
            meter = provider.get_meter(
                getattr(scope, "name", None) or "telemetry_run.instrumentors",
                getattr(scope, "version", None),
            )
            histogram = meter.create_histogram(
                kind.name,
                kind.unit,
                kind.description,
                explicit_bucket_boundaries_advisory=kind.boundaries,
            )
            recorder = _Recorder(kind, histogram, self._interned[kind.name])
            self._recorders[site] = recorder
            return recorder

    def _meter_provider(self) -> MeterProvider | None:
        if not self._resolved:
            from telemetry_run.sdk.metrics.global_provider import get_meter_provider

            self._provider = get_meter_provider()  # under the launcher: built now, once
            self._resolved = True
            if not self._provider.readers:
                self.off = True
        return None if self.off else self._provider


_installed: CallMetrics | None = None


def install(metric: str) -> None:
    """Append the process's ``CallMetrics`` to ``CALL_END_HOOKS``, once, for a site that
    records ``metric`` (one of ``KINDS``: anything else is our bug, raised at once)."""
    global _installed
    from telemetry_run.instrumentors.toolkit import CALL_END_HOOKS

    if metric not in KINDS:
        raise ValueError(f"no duration metric named {metric!r} (known: {', '.join(KINDS)})")
    if _installed is None:
        _installed = CallMetrics()
    if _installed not in CALL_END_HOOKS:
        CALL_END_HOOKS.append(_installed)
