"""The built-in instrumentor plugin: registered first, through the same hooks as third-party ones.

Each instrumentor is one ``InstrumentorSpec`` (cheap data: its module is imported only after
its target library is), and the HTTP instrumentors' variables are declared here so they join
the registry, the README table and ``--list`` like every other variable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run._env import parse_bool, parse_list
from telemetry_run.config import Variable
from telemetry_run.hookspecs import hookimpl
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.base import InstrumentorSpec

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = [
    "SPECS",
    "VARIABLES",
    "telemetry_run_configure",
    "telemetry_run_instrumentors",
    "telemetry_run_variables",
]

SPECS: Final[tuple[InstrumentorSpec, ...]] = (
    InstrumentorSpec(
        name="flask",
        modules=("flask",),
        requires="flask>=2.2,<4",
        load="telemetry_run.instrumentors.flask:FlaskInstrumentor",
        description="SERVER span per request, named from the matched URL rule",
    ),
    InstrumentorSpec(
        name="django",
        modules=("django.core.handlers.base",),  # imported by every Django server; not by django
        requires="django>=4.2,<7",
        load="telemetry_run.instrumentors.django:DjangoInstrumentor",
        description="SERVER span per request (WSGI and ASGI), named from the resolved route",
    ),
    InstrumentorSpec(
        name="requests",
        modules=("requests",),
        requires="requests>=2.28,<3",
        load="telemetry_run.instrumentors.requests:RequestsInstrumentor",
        description="CLIENT span per Session.send, trace context injected",
    ),
    InstrumentorSpec(
        name="grpc",
        modules=("grpc",),
        requires="grpcio>=1.66,<2",
        load="telemetry_run.instrumentors.grpc:GrpcInstrumentor",
        description="CLIENT and SERVER spans for every gRPC call, context in metadata",
    ),
)

_HEADERS_DOC: Final = "{} headers recorded on {} spans: names or regexes, comma-separated"

VARIABLES: Final[tuple[Variable, ...]] = (
    Variable(
        _http.EXCLUDED_URLS,
        _http.parse_url_patterns,
        (),
        "regexes of URLs that get no span, comma-separated (every HTTP instrumentor)",
    ),
    *(
        Variable(
            _http.excluded_urls_variable(name),
            _http.parse_url_patterns,
            (),
            f"as {_http.EXCLUDED_URLS}, for {name} only (wins over it)",
        )
        for name in ("flask", "django", "requests")
    ),
    Variable(
        _http.CAPTURE_SERVER_REQUEST,
        parse_list,
        (),
        _HEADERS_DOC.format("request", "SERVER"),
    ),
    Variable(
        _http.CAPTURE_SERVER_RESPONSE,
        parse_list,
        (),
        _HEADERS_DOC.format("response", "SERVER"),
    ),
    Variable(
        _http.CAPTURE_CLIENT_REQUEST,
        parse_list,
        (),
        _HEADERS_DOC.format("request", "CLIENT"),
    ),
    Variable(
        _http.CAPTURE_CLIENT_RESPONSE,
        parse_list,
        (),
        _HEADERS_DOC.format("response", "CLIENT"),
    ),
    Variable(
        _http.SANITIZE_FIELDS,
        parse_list,
        (),
        "captured header names (or regexes) whose values are recorded as [REDACTED]",
    ),
    Variable(
        _http.CAPTURE_SENSITIVE,
        parse_bool,
        False,
        "true records captured Authorization, Cookie, Set-Cookie values instead of [REDACTED]",
    ),
    Variable(
        _http.SENSITIVE_QUERY_KEYS_VARIABLE,
        parse_list,
        (),
        "query keys whose values are recorded as REDACTED (URLs and exception text), "
        "comma-separated, added to the built-in list; -key removes a built-in one",
        shown_default="(the built-in list)",
    ),
)


@hookimpl
def telemetry_run_configure(config: Config, tracer_provider: TracerProvider) -> None:
    """The sensitive query keys every span scrubs, before any instrumentor records a URL."""
    from telemetry_run.sdk import _redaction  # in the app's process only, with the SDK

    spec = config.get(_http.SENSITIVE_QUERY_KEYS_VARIABLE)
    _redaction.configure_query_keys(_redaction.query_keys(spec or ()))


@hookimpl
def telemetry_run_instrumentors() -> tuple[InstrumentorSpec, ...]:
    return SPECS


@hookimpl
def telemetry_run_variables() -> tuple[Variable, ...]:
    return VARIABLES
