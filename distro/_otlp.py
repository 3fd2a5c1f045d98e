"""The built-in ``otlp`` exporter: its variables and the specification's rules for them.

A plugin like any other (entry point ``builtin-otlp``): it declares the ``OTEL_EXPORTER_OTLP_*``
variables (general and ``_TRACES_``; a per-signal variable that is set wins over the general
one) and builds the gRPC or HTTP exporter for ``OTEL_TRACES_EXPORTER=otlp``. Nothing of grpc,
protobuf or the HTTP client is imported here or when the exporter is built: the transport
loads at the first export.

Endpoint rules (specification, ``protocol/exporter.md``):

- HTTP: the general ``OTEL_EXPORTER_OTLP_ENDPOINT`` is a base URL, ``v1/traces`` is appended to
  its path; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as it is (an empty path becomes
  ``/``). Default ``http://localhost:4318/v1/traces``.
- gRPC: the endpoint is ``http://`` (plaintext) or ``https://`` (TLS) and the scheme wins over
  ``..._INSECURE``, which applies only to an endpoint without a scheme. Default
  ``http://localhost:4317``.

``..._TIMEOUT`` is integer milliseconds as the specification says (10000 by default; 0 means no
limit). Header values and the client key's path are secrets: ``--list`` and warnings mask them.
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
from telemetry_run._log import logger
from telemetry_run.config import Variable
from telemetry_run.hookspecs import hookimpl

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.exporters import SpanExporter

__all__ = [
    "VARIABLES",
    "OTLPSettings",
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
# (and ipaddress) at start-up, with the answers urlsplit would give.
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


def _options(prefix: str, traces: bool) -> list[Variable]:
    """The nine OTLP variables for ``prefix`` (``OTEL_EXPORTER_OTLP_`` or ``..._TRACES_``)."""
    what = " traces" if traces else ""
    wins = " (wins over the general variable)" if traces else ""
    unset = "(unset)"
    return [
        Variable(
            f"{prefix}ENDPOINT",
            parse_endpoint,
            None,
            (
                f"OTLP{what} endpoint URL, used as is{wins}"
                if traces
                else "OTLP endpoint: base URL (v1/traces is appended for HTTP)"
            ),
            shown_default=(
                unset if traces else "http://localhost:4317 (grpc), http://localhost:4318 (http)"
            ),
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
VARIABLES: Final[tuple[Variable, ...]] = (*_options(GENERAL, False), *_options(TRACES, True))


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

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OTLPSettings) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        # Header values are secrets: their names only.
        names = [key for key, _ in self.headers]
        return (
            f"OTLPSettings(protocol={self.protocol!r}, endpoint={self.endpoint!r}, "
            f"insecure={self.insecure!r}, headers={names!r}, timeout={self.timeout!r}, "
            f"compression={self.compression!r})"
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


def _pick(config: Config, option: str) -> tuple[str, Any]:
    """(variable name, value) for ``option``: the traces variable if it is set, else the
    general one (its default when unset too)."""
    if config.is_set(TRACES + option):
        return TRACES + option, config[TRACES + option]
    return GENERAL + option, config.get(GENERAL + option)


def _shown(endpoint: str) -> str:
    from telemetry_run.sdk.exporters.otlp._common import safe_endpoint

    return safe_endpoint(endpoint)


def otlp_settings(config: Config) -> OTLPSettings:
    """Apply the specification's rules; a value that cannot be used warns once (here, when the
    exporter is built) and the default is used."""
    protocol = _pick(config, "PROTOCOL")[1] or "grpc"
    endpoint = _grpc_endpoint(config) if protocol == "grpc" else _http_endpoint(config)
    timeout = _pick(config, "TIMEOUT")[1]
    key_file = _pick(config, "CLIENT_KEY")[1]
    cert_file = _pick(config, "CLIENT_CERTIFICATE")[1]
    if (key_file is None) != (cert_file is None):
        logger.warning(
            "OTLP mTLS needs both OTEL_EXPORTER_OTLP_CLIENT_KEY and "
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE (or their TRACES_ variants); only %s is set, "
            "so no client certificate is sent",
            "the key" if key_file is not None else "the certificate",
        )
        key_file = cert_file = None
    return OTLPSettings(
        protocol=protocol,
        endpoint=endpoint,
        insecure=_pick(config, "INSECURE")[1],
        headers=tuple(_pick(config, "HEADERS")[1] or ()),
        timeout=10.0 if timeout is None else float(timeout),
        compression=_pick(config, "COMPRESSION")[1] or "none",
        certificate_file=_pick(config, "CERTIFICATE")[1],
        client_key_file=key_file,
        client_certificate_file=cert_file,
    )


def _grpc_endpoint(config: Config) -> str:
    endpoint = _pick(config, "ENDPOINT")[1]
    if endpoint is None:
        return DEFAULT_GRPC_ENDPOINT
    return str(endpoint)


def _http_endpoint(config: Config) -> str:
    name, endpoint = _pick(config, "ENDPOINT")
    if endpoint is None:
        return DEFAULT_HTTP_ENDPOINT
    import urllib.parse  # only for a configured endpoint

    parts = urllib.parse.urlsplit(str(endpoint))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        logger.warning(
            "%s=%r is not an http:// or https:// URL, which OTLP/HTTP needs; using the default "
            "(%s)",
            name,
            _shown(str(endpoint)),
            DEFAULT_HTTP_ENDPOINT,
        )
        return DEFAULT_HTTP_ENDPOINT
    if name == TRACES + "ENDPOINT":
        if not parts.path:
            parts = parts._replace(path="/")
        return urllib.parse.urlunsplit(parts)
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit(parts._replace(path=path + TRACES_PATH))


@hookimpl
def telemetry_run_span_exporter(name: str, config: Config) -> SpanExporter | None:
    if name != "otlp":
        return None
    settings = otlp_settings(config)
    if settings.protocol == "grpc":
        from telemetry_run.sdk.exporters.otlp.grpc import OTLPGrpcSpanExporter

        return OTLPGrpcSpanExporter(
            settings.endpoint, insecure=settings.insecure, **settings.exporter_kwargs()
        )
    from telemetry_run.sdk.exporters.otlp.http import OTLPHttpSpanExporter

    return OTLPHttpSpanExporter(
        settings.endpoint, protocol=settings.protocol, **settings.exporter_kwargs()
    )
