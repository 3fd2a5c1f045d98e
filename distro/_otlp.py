"""The built-in ``otlp`` exporter: its variables and the specification's rules for them.

A plugin like any other (entry point ``builtin-otlp``): it declares the ``OTEL_EXPORTER_OTLP_*``
variables (general, ``_TRACES_``, ``_LOGS_`` and ``_METRICS_``; a per-signal variable that is set
wins over the general one) and builds the gRPC or HTTP exporter for ``OTEL_TRACES_EXPORTER=otlp``
(and, through ``log_exporter``, for ``OTEL_LOGS_EXPORTER=otlp``; ``telemetry_run._metrics`` builds
the metric one from the same rules, ``otlp_settings(config, "metrics")``). Nothing of grpc,
protobuf or the HTTP client is imported here or when the exporter is built: the transport
loads at the first export.

Endpoint rules (specification, ``protocol/exporter.md``):

- HTTP: the general ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL, ``v1/traces`` (``v1/logs``,
  ``v1/metrics``) is appended to its path; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``
  (``..._LOGS_ENDPOINT``, ``..._METRICS_ENDPOINT``) is used as it is (an empty path becomes
  ``/``). Default ``http://localhost:4318/v1/traces``.
- gRPC: the endpoint is ``http://`` (plaintext) or ``https://`` (TLS) and the scheme wins over
  ``..._INSECURE``, which applies only to an endpoint without a scheme. Default
  ``http://localhost:4317``.

``..._TIMEOUT`` is integer milliseconds as the specification says (10000 by default; 0 means no
limit). Header values and the client key's path are secrets: ``--list`` and warnings mask them.

Settings the exporter cannot honour turn it off rather than send elsewhere or block: an invalid
endpoint (unparsable, no host, a scheme HTTP cannot use) never falls back to the default one,
which would receive the configured headers (an API key in plain text to localhost), headers or
not (the spans would go to the wrong place); a passphrase-protected client key is refused at
start-up, before OpenSSL could prompt for the passphrase on the terminal. One error names the
variable, and the exporter that replaces the OTLP one fails every export, so the exit line
counts each span it could not send as ``export_failed`` (``rejected`` is the receiver's word).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from telemetry_run._env import (
    InvalidValue,
    parse_bool,
    parse_enum,
    parse_key_values,
    parse_str,
    parse_timeout_ms,
)
from telemetry_run.config import Variable
from telemetry_run.hookspecs import hookimpl
from telemetry_run.sdk._log import logger
from telemetry_run.sdk._printable import mask

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.exporters import ExportResult, SpanExporter
    from telemetry_run.sdk.logs.exporter import LogExporter
    from telemetry_run.sdk.trace.span import ReadableSpan

__all__ = [
    "VARIABLES",
    "OTLPExporterOff",
    "OTLPSettings",
    "log_exporter",
    "otlp_settings",
    "telemetry_run_provides",
    "telemetry_run_span_exporter",
    "telemetry_run_variables",
]


PROTOCOLS: Final = ("grpc", "http/protobuf", "http/json")
DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318/v1/traces"
TRACES_PATH: Final = "v1/traces"


# What a plain ``http://host:port/path`` is made of (no user info, query, escapes, brackets,
# spaces): such an endpoint is checked with string operations, without importing urllib.parse
# (and ipaddress) at start-up, with the answers urlsplit would give (about 3 ms saved:
# bench/startup_parts.py, row endpoint).
_PLAIN_URL: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/"
)


def parse_endpoint(raw: str) -> str:
    """A URL with a host (``http://collector:4318``), or a gRPC target without a scheme."""
    scheme, _, rest = raw.partition("://")
    if scheme in ("http", "https") and set(rest) <= _PLAIN_URL:
        host, _, digits = rest.split("/", 1)[0].partition(":")
        if digits and not (digits.isdigit() and digits.isascii() and int(digits) < 65536):
            raise InvalidValue("has an invalid port")
        if not host:
            raise InvalidValue("has no host")
        return raw
    if "://" in raw:
        import urllib.parse  # any other URL (and ipaddress with it): not the common case

        try:
            parts = urllib.parse.urlsplit(raw)
        except ValueError as exc:  # "Invalid IPv6 URL" and the like
            raise InvalidValue(f"is not a URL ({exc})") from None
        if parts.scheme.lower() in ("http", "https"):
            try:
                port = parts.port  # raises for a port that is not a number
            except ValueError:
                raise InvalidValue("has an invalid port") from None
            if not parts.hostname:
                raise InvalidValue("has no host")
            del port
    elif any(c.isspace() for c in raw):
        raise InvalidValue("is not a URL")
    return raw


def _options(prefix: str, signal: str | None) -> list[Variable]:
    """The nine OTLP variables for ``prefix`` (``OTEL_EXPORTER_OTLP_``, or the ``..._TRACES_``,
    ``..._LOGS_`` or ``..._METRICS_`` one of ``signal``)."""
    traces = signal is not None
    what = f" {signal}" if signal else ""
    wins = " (wins over the general variable)" if traces else ""
    unset = "(unset)"
    lost = {
        "metrics": "its data points are counted as dropped",
        "logs": "its log records are counted as export_failed",
    }.get(signal or "traces", "its spans are counted as export_failed")
    off = (
        "the OTLP exporter is off"
        + ("" if traces else " unless its OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is set")
        + f" (it does not fall back to the default endpoint); {lost}"
    )
    return [
        Variable(
            f"{prefix}ENDPOINT",
            parse_endpoint,
            None,
            (
                f"OTLP{what} endpoint URL, used as is{wins}"
                if traces
                else "OTLP endpoint: base URL (v1/traces, v1/logs, v1/metrics appended for HTTP)"
            ),
            shown_default=(
                unset if traces else "http://localhost:4317 (grpc), http://localhost:4318 (http)"
            ),
            when_invalid=off,
        ),
        Variable(
            f"{prefix}PROTOCOL",
            parse_enum(*PROTOCOLS),
            None if traces else "grpc",
            f"OTLP{what} transport: grpc, http/protobuf or http/json{wins}",
        ),
        Variable(
            f"{prefix}HEADERS",
            parse_key_values,
            (),
            f"OTLP{what} request headers as k=v,k2=v2, percent-encoded (secret){wins}",
            secret=True,
        ),
        Variable(
            f"{prefix}TIMEOUT",
            parse_timeout_ms,
            None if traces else 10.0,
            f"ms one OTLP{what} export may take, retries included; 0 means no limit{wins}",
            shown_default=unset if traces else "10000",
        ),
        Variable(
            f"{prefix}COMPRESSION",
            parse_enum("gzip", "none"),
            None if traces else "none",
            f"OTLP{what} compression: gzip or none{wins}",
        ),
        Variable(
            f"{prefix}INSECURE",
            parse_bool,
            None if traces else False,
            f"gRPC{what} endpoint without a scheme: true for plaintext, false for TLS{wins}",
        ),
        Variable(
            f"{prefix}CERTIFICATE",
            parse_str,
            None,
            f"PEM file of the CA that verifies the OTLP{what} server{wins}",
        ),
        Variable(
            f"{prefix}CLIENT_KEY",
            parse_str,
            None,
            f"PEM file of the OTLP{what} mTLS client key (secret){wins}",
            secret=True,
        ),
        Variable(
            f"{prefix}CLIENT_CERTIFICATE",
            parse_str,
            None,
            f"PEM file of the OTLP{what} mTLS client certificate chain{wins}",
        ),
    ]


GENERAL: Final = "OTEL_EXPORTER_OTLP_"
TRACES: Final = "OTEL_EXPORTER_OTLP_TRACES_"
LOGS: Final = "OTEL_EXPORTER_OTLP_LOGS_"
METRICS: Final = "OTEL_EXPORTER_OTLP_METRICS_"
_PREFIXES: Final = {"traces": TRACES, "logs": LOGS, "metrics": METRICS}
VARIABLES: Final[tuple[Variable, ...]] = (
    *_options(GENERAL, None),
    *_options(TRACES, "traces"),
    *_options(LOGS, "logs"),
    *_options(METRICS, "metrics"),
)


@hookimpl
def telemetry_run_variables() -> Sequence[Variable]:
    return VARIABLES


@hookimpl
def telemetry_run_provides() -> dict[str, tuple[str, ...]]:
    return {"exporter": ("otlp",)}


class OTLPSettings:
    """The exporter's arguments, resolved from the configuration (a plain class: this module
    loads at every instrumented start-up, where a dataclass costs a little)."""

    __slots__ = (
        "certificate_file",
        "client_certificate_file",
        "client_key_file",
        "compression",
        "endpoint",
        "headers",
        "insecure",
        "off",
        "protocol",
        "timeout",
    )

    def __init__(
        self,
        *,
        protocol: str,
        endpoint: str,
        insecure: bool | None,
        headers: tuple[tuple[str, str], ...],
        timeout: float,
        compression: str,
        certificate_file: str | None,
        client_key_file: str | None,
        client_certificate_file: str | None,
        off: str | None = None,
    ) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self.insecure = insecure
        self.headers = headers
        self.timeout = timeout
        self.compression = compression
        self.certificate_file = certificate_file
        self.client_key_file = client_key_file
        self.client_certificate_file = client_certificate_file
        #: Why the exporter is off (logged once as an error), or None.
        self.off = off

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OTLPSettings) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        # Header values are secrets: their names only; the endpoint without its credentials.
        names = [key for key, _ in self.headers]
        return (
            f"OTLPSettings(protocol={self.protocol!r}, endpoint={_shown(self.endpoint)!r}, "
            f"insecure={self.insecure!r}, headers={names!r}, timeout={self.timeout!r}, "
            f"compression={self.compression!r}, off={self.off!r})"
        )

    def exporter_kwargs(self) -> dict[str, Any]:
        return {
            "headers": self.headers,
            "timeout": self.timeout,
            "compression": self.compression,
            "certificate_file": self.certificate_file,
            "client_key_file": self.client_key_file,
            "client_certificate_file": self.client_certificate_file,
        }


def _pick(config: Config, option: str, signal: str = "traces") -> tuple[str, Any]:
    """(variable name, value) for ``option``: the signal's variable if it is set, else the
    general one (its default when unset too)."""
    specific = _PREFIXES[signal] + option
    if config.is_set(specific):
        return specific, config[specific]
    return GENERAL + option, config.get(GENERAL + option)


def _shown(endpoint: str) -> str:
    from telemetry_run.sdk.exporters.otlp._common import safe_endpoint

    return safe_endpoint(endpoint)


_OFF: Final = "the OTLP exporter is off: its configuration was refused at start-up"


def otlp_settings(config: Config, signal: str = "traces") -> OTLPSettings:
    """Apply the specification's rules; a value that cannot be used warns once (here, when the
    exporter is built) and the default is used, except where that would send the spans and
    headers elsewhere or block: then ``off`` says why the exporter is off (the error is logged
    once, by the Config or here). ``signal`` is ``traces``, ``logs`` or ``metrics``: whose
    per-signal variables win, and the path appended to a general HTTP endpoint."""
    protocol = _pick(config, "PROTOCOL", signal)[1] or "grpc"
    endpoint = (
        _grpc_endpoint(config, signal) if protocol == "grpc" else _http_endpoint(config, signal)
    )
    off = None if endpoint is not None else _OFF
    timeout = _pick(config, "TIMEOUT", signal)[1]
    key_name, key_file = _pick(config, "CLIENT_KEY", signal)
    cert_file = _pick(config, "CLIENT_CERTIFICATE", signal)[1]
    if (key_file is None) != (cert_file is None):
        logger.warning(
            "OTLP mTLS needs both OTEL_EXPORTER_OTLP_CLIENT_KEY and "
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (or their TRACES_ variants); only %s is set, "
            "so no client certificate is sent",
            "the key" if key_file is not None else "the certificate",
        )
        key_file = cert_file = None
    if off is None and key_file is not None and _is_encrypted_key(key_file):
        logger.error(
            "%s=%s is a passphrase-protected (encrypted) private key, which the OTLP exporter "
            "cannot use (no variable holds a passphrase, and OpenSSL must not stop the process "
            "to ask for one): store the key decrypted, readable only by this service "
            "(openssl pkey -in key.pem -out plain-key.pem); the OTLP exporter is off; its spans "
            "are counted as export_failed",
            key_name,
            mask(key_file),
        )
        off = _OFF
    return OTLPSettings(
        protocol=protocol,
        endpoint=endpoint or "",
        insecure=_pick(config, "INSECURE", signal)[1],
        headers=tuple(_pick(config, "HEADERS", signal)[1] or ()),
        timeout=10.0 if timeout is None else float(timeout),
        compression=_pick(config, "COMPRESSION", signal)[1] or "none",
        certificate_file=_pick(config, "CERTIFICATE", signal)[1],
        client_key_file=key_file,
        client_certificate_file=cert_file,
        off=off,
    )


_OFF_NOW: Final = (
    "the OTLP exporter is off (it does not fall back to the default endpoint); its spans are "
    "counted as export_failed"
)


def _configured_endpoint(config: Config, signal: str = "traces") -> tuple[str, str | None, bool]:
    """(variable, value or None for the default, usable): the signal's variable if it is set,
    validly or not, else the general one; an invalid one is never replaced by another."""
    for name in (_PREFIXES[signal] + "ENDPOINT", GENERAL + "ENDPOINT"):
        if name in config.invalid:
            return name, None, False  # the Config logged the error
        if config.is_set(name):
            return name, str(config[name]), True
    return GENERAL + "ENDPOINT", None, True


def _is_encrypted_key(path: str) -> bool:
    """Whether the PEM file at ``path`` holds an encrypted private key (PKCS#8 or the
    traditional ``Proc-Type: 4,ENCRYPTED`` header). An unreadable file is the transport's to
    report at the first export, as before."""
    from telemetry_run.sdk.exporters.otlp._common import pem_is_encrypted

    try:
        with open(path, "rb") as pem:
            return pem_is_encrypted(pem.read(1 << 20))
    except OSError:
        return False


def _grpc_endpoint(config: Config, signal: str = "traces") -> str | None:
    _, endpoint, usable = _configured_endpoint(config, signal)
    if not usable:
        return None
    return DEFAULT_GRPC_ENDPOINT if endpoint is None else endpoint


def _http_endpoint(config: Config, signal: str = "traces") -> str | None:
    name, endpoint, usable = _configured_endpoint(config, signal)
    if not usable:
        return None
    if endpoint is None:
        return DEFAULT_HTTP_ENDPOINT.replace(TRACES_PATH, f"v1/{signal}")
    import urllib.parse  # only for a configured endpoint

    try:
        parts = urllib.parse.urlsplit(endpoint)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a gRPC target the Config accepted, not a URL ("//[::1")
        usable = False
    if not usable:
        logger.error(
            "%s=%s is not an http:// or https:// URL with a host, which OTLP/HTTP needs; %s",
            name,
            config.variables[name].shown(endpoint),
            _OFF_NOW,
        )
        return None
    if name == _PREFIXES[signal] + "ENDPOINT":  # the signal's own: used as it is
        if not parts.path:
            parts = parts._replace(path="/")
        return urllib.parse.urlunsplit(parts)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit(parts._replace(path=f"{path}v1/{signal}"))


class OTLPExporterOff:
    """What ``otlp`` is when its settings cannot be honoured: nothing is sent anywhere, and
    every export fails, so the batch processor counts the spans as ``export_failed``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def export(self, spans: Sequence[ReadableSpan], *, deadline: float) -> ExportResult:
        from telemetry_run.sdk.exporters import ExportResult

        return ExportResult(False, error=self.reason)

    def force_flush(self, *, deadline: float) -> bool:
        return True

    def shutdown(self, *, deadline: float) -> None:
        pass

    def __repr__(self) -> str:
        return f"OTLPExporterOff({self.reason!r})"


@hookimpl
def telemetry_run_span_exporter(name: str, config: Config) -> SpanExporter | None:
    if name != "otlp":
        return None
    settings = otlp_settings(config)
    if settings.off is not None:
        return OTLPExporterOff(settings.off)
    if settings.protocol == "grpc":
        from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter

        return OTLPGrpcSpanExporter(
            settings.endpoint, insecure=settings.insecure, **settings.exporter_kwargs()
        )
    from telemetry_run.sdk.exporters.otlp.http import OTLPHttpSpanExporter

    return OTLPHttpSpanExporter(
        settings.endpoint, protocol=settings.protocol, **settings.exporter_kwargs()
    )


def log_exporter(config: Config) -> LogExporter:
    """The OTLP log exporter ``OTEL_LOGS_EXPORTER=otlp`` asks for, from the
    ``OTEL_EXPORTER_OTLP_LOGS_*`` variables (falling back to the general ones), by the same
    rules as the span exporter: a configuration that cannot be honoured turns it off."""
    from telemetry_run.sdk.logs import get_log_diagnostics

    settings = otlp_settings(config, "logs")
    if settings.off is not None:
        return OTLPExporterOff(settings.off)  # type: ignore[return-value]  # fails every batch
    diagnostics = get_log_diagnostics()
    if settings.protocol == "grpc":
        from telemetry_run.sdk.exporters.otlp.grpc_logs import OTLPGrpcLogExporter

        return OTLPGrpcLogExporter(
            settings.endpoint,
            insecure=settings.insecure,
            diagnostics=diagnostics,
            **settings.exporter_kwargs(),
        )
    from telemetry_run.sdk.exporters.otlp.http_logs import OTLPHttpLogExporter

    return OTLPHttpLogExporter(
        settings.endpoint,
        protocol=settings.protocol,
        diagnostics=diagnostics,
        **settings.exporter_kwargs(),
    )
