"""The built-in instrumentor plugin: registered first, through the same hooks as third-party ones.

Each instrumentor is one ``InstrumentorSpec`` (cheap data: its module is imported only after
its target library is) carrying everything about its library: the registry's per-instrumentor
variables, ``--list``, the README tables and the version matrix are derived from it. The
variables all HTTP instrumentors share are declared here, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from telemetry_run._env import parse_bool, parse_list
from telemetry_run.config import Variable
from telemetry_run.hookspecs import hookimpl
from telemetry_run.instrumentors import _http
from telemetry_run.instrumentors.base import InstrumentorSpec, ReleaseLine

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = [
    "SPECS",
    "SQLCOMMENTER",
    "VARIABLES",
    "telemetry_run_configure",
    "telemetry_run_instrumentors",
    "telemetry_run_variables",
]

#: true appends the traceparent to SQL statements (every database instrumentor, ``dbapi``).
SQLCOMMENTER: Final = "TELEMETRY_RUN_SQLCOMMENTER"

SPECS: Final[tuple[InstrumentorSpec, ...]] = (
    InstrumentorSpec(
        name="flask",
        modules=("flask",),
        requires="flask>=2.2,<4",
        load="telemetry_run.instrumentors.flask:FlaskInstrumentor",
        description="a SERVER span per request, `GET /users/<int:user_id>` from the matched rule",
        kind="http",
        # Flask 2.2 imports werkzeug.urls.url_quote, which Werkzeug 3 removed.
        matrix=(ReleaseLine("2.2", companions=("werkzeug<3",)), "2.3", "3.0", "3.1", "latest"),
    ),
    InstrumentorSpec(
        name="django",
        modules=("django.core.handlers.base",),  # imported by every Django server; not by django
        requires="django>=4.2,<7",
        load="telemetry_run.instrumentors.django:DjangoInstrumentor",
        description="a SERVER span per request under WSGI and ASGI, `GET items/<int:pk>/` "
        "from the resolved route",
        kind="http",
        # Django 4.2 supports Python up to 3.12; Django 6 needs Python 3.12 or newer.
        matrix=(
            ReleaseLine("4.2", python="<3.13"),
            "5.2",
            ReleaseLine("6.0", python=">=3.12"),
            ReleaseLine("latest", python=">=3.12"),
        ),
    ),
    InstrumentorSpec(
        name="asgi",
        modules=("uvicorn.config",),  # imported by uvicorn and by gunicorn's UvicornWorker
        requires="uvicorn>=0.30,<1",
        load="telemetry_run.instrumentors.asgi:AsgiInstrumentor",
        description="a SERVER span per HTTP request and websocket connection for any ASGI app "
        "uvicorn serves (alone, `--workers`, `--reload`, gunicorn's `UvicornWorker`)",
        kind="http",
        matrix=("0.30", "latest"),
    ),
    InstrumentorSpec(
        name="starlette",
        modules=("starlette.applications",),  # FastAPI's application is a Starlette one
        requires="starlette>=0.40,<2",
        load="telemetry_run.instrumentors.starlette:StarletteInstrumentor",
        description="Starlette and FastAPI: the SERVER span named from the matched route, "
        "`GET /items/{item_id}`, under any server or test client",
        kind="http",
        # Each line with the FastAPI of its time (FastAPI pins its Starlette).
        matrix=(
            ReleaseLine("0.40", companions=("fastapi==0.115.3", "httpx")),
            ReleaseLine("latest", companions=("fastapi", "httpx")),
        ),
    ),
    InstrumentorSpec(
        name="requests",
        modules=("requests",),
        requires="requests>=2.28,<3",
        load="telemetry_run.instrumentors.requests:RequestsInstrumentor",
        description="a CLIENT span per `Session.send`, named `GET`, trace context injected",
        kind="http",
        matrix=("2.28", "2.32", "latest"),
    ),
    InstrumentorSpec(
        name="httpx",
        modules=("httpx",),
        requires="httpx>=0.24,<1",
        load="telemetry_run.instrumentors.httpx:HttpxInstrumentor",
        description="a CLIENT span per `Client.send`/`AsyncClient.send`, named `GET`, trace "
        "context injected; a streamed response's span ends when it is closed",
        kind="http",
        # One Python per line keeps CI short: the floor on the oldest, the latest on the newest.
        matrix=(ReleaseLine("0.24", python="<3.12"), ReleaseLine("latest", python=">=3.13")),
    ),
    InstrumentorSpec(
        name="urllib3",
        modules=("urllib3",),
        requires="urllib3>=1.26,<3",
        load="telemetry_run.instrumentors.urllib3:Urllib3Instrumentor",
        description="a CLIENT span per `PoolManager.urlopen`/`HTTPConnectionPool.urlopen`, named "
        "`GET`, trace context injected; none of its own under requests (one span per call)",
        kind="http",
        matrix=(ReleaseLine("1.26", python="<3.12"), ReleaseLine("latest", python=">=3.13")),
    ),
    InstrumentorSpec(
        name="aiohttp_client",
        modules=("aiohttp",),
        requires="aiohttp>=3.9,<4",
        load="telemetry_run.instrumentors.aiohttp_client:AiohttpClientInstrumentor",
        description="a CLIENT span per `ClientSession` request (redirects included), named "
        "`GET`, trace context injected",
        kind="http",
        # One Python per line keeps CI short: the floor on the oldest, the latest on the newest.
        matrix=(ReleaseLine("3.9", python="<3.12"), ReleaseLine("latest", python=">=3.13")),
    ),
    InstrumentorSpec(
        name="grpc",
        modules=("grpc",),
        requires="grpcio>=1.66,<2",
        load="telemetry_run.instrumentors.grpc:GrpcInstrumentor",
        description="CLIENT and SERVER spans per call, all four call kinds, "
        "`package.Service/Method`, context in metadata",
        kind="rpc",
        matrix=("1.66", "latest"),
    ),
    InstrumentorSpec(
        name="redis",
        modules=("redis",),  # whole: the hook imports redis.asyncio, which imports redis
        requires="redis>=5.0,<9",
        load="telemetry_run.instrumentors.redis:RedisInstrumentor",
        description="a CLIENT span per command (`GET`), sync and asyncio; a pipeline is one span "
        "with its command count; arguments recorded as `?`",
        variables=(
            Variable(
                "TELEMETRY_RUN_REDIS_CAPTURE_KEYS",
                parse_bool,
                False,
                "true keeps the keys in redis spans' db.query.text (values stay ?)",
            ),
            Variable(
                "TELEMETRY_RUN_REDIS_BROKER_ROOT_SPANS",
                parse_bool,
                False,
                "true traces a message broker's own redis commands (kombu's polling) outside any "
                "span too",
            ),
        ),
        # One Python per line (CI time): the floor on the oldest, the latest on the newest.
        matrix=(ReleaseLine("5.0", python="<3.12"), ReleaseLine("latest", python=">=3.13")),
    ),
    InstrumentorSpec(
        name="celery",
        modules=("celery",),
        requires="celery>=5.3,<6",
        load="telemetry_run.instrumentors.celery:CeleryInstrumentor",
        description="a PRODUCER span per task sent (`send tasks.add`), a CONSUMER span per task "
        "run in the worker as its child (context in the message headers); failures, retries",
        # One Python per line (CI time): the floor on the oldest, the latest on the newest.
        matrix=(ReleaseLine("5.3", python="<3.12"), ReleaseLine("latest", python=">=3.13")),
    ),
    InstrumentorSpec(
        name="opentelemetry_api",
        # opentelemetry.propagate imports opentelemetry.trace (its default propagator does).
        modules=("opentelemetry.trace", "opentelemetry.propagate"),
        requires="opentelemetry-api>=1.27,<2",
        load="telemetry_run.instrumentors.opentelemetry_api:OpenTelemetryApiInstrumentor",
        description="spans made through `opentelemetry.trace.get_tracer(...)` are ours, in the "
        "same trace; `get_current_span()` and `opentelemetry.propagate` are ours too",
        # The tests set an opentelemetry-sdk provider of the same release (the conflict).
        matrix=(
            ReleaseLine("1.27", companions=("opentelemetry-sdk==1.27.*",)),
            ReleaseLine("latest", companions=("opentelemetry-sdk",)),
        ),
    ),
    InstrumentorSpec(
        name="sqlite3",
        modules=("sqlite3",),
        requires="",
        load="telemetry_run.instrumentors.sqlite3:Sqlite3Instrumentor",
        description="a CLIENT span per `execute`/`executemany`, `SELECT users`, "
        "`db.query.text` with literals replaced by `?`",
    ),
    InstrumentorSpec(
        name="psycopg",
        modules=("psycopg",),
        requires="psycopg>=3.1,<4",
        load="telemetry_run.instrumentors.psycopg:PsycopgInstrumentor",
        description="a CLIENT span per statement, sync and asyncio cursors and pools, "
        "`db.query.text` with literals replaced by `?`",
        # psycopg-binary 3.1 has no wheels for Python 3.13.
        matrix=(
            ReleaseLine("3.1", python="<3.13", companions=("psycopg-binary==3.1.*",)),
            ReleaseLine("latest", companions=("psycopg-binary", "psycopg-pool")),
        ),
    ),
    InstrumentorSpec(
        name="psycopg2",
        modules=("psycopg2",),
        # The wheel most services install; a psycopg2 built from source is another
        # distribution, which a spec cannot name beside this one yet.
        requires="psycopg2-binary>=2.9.5,<3",
        load="telemetry_run.instrumentors.psycopg2:Psycopg2Instrumentor",
        description="a CLIENT span per `execute`/`executemany`/`callproc`, your cursor "
        "classes kept, `db.query.text` with literals replaced by `?`",
        matrix=(ReleaseLine("2.9.5", python="<3.12"), "latest"),  # 2.9.5: no 3.12 wheels
    ),
    InstrumentorSpec(
        name="sqlalchemy",
        modules=("sqlalchemy",),
        requires="sqlalchemy>=1.4,<3",
        load="telemetry_run.instrumentors.sqlalchemy:SqlalchemyInstrumentor",
        description="a CLIENT span per statement of any engine, sync and asyncio (engine "
        "events); the driver's own span is folded into it",
        matrix=("1.4", "2.0", "latest"),
    ),
    InstrumentorSpec(
        name="threading",
        modules=("threading",),  # imported before the application runs: patched at start-up
        requires="",
        load="telemetry_run.instrumentors.threads:ThreadsInstrumentor",
        description="`Thread.start`, `ThreadPoolExecutor.submit`/`map` and "
        "`loop.run_in_executor` run the work in the caller's context: spans there are children",
    ),
    InstrumentorSpec(
        name="multiprocessing",
        modules=("multiprocessing",),
        requires="",
        load="telemetry_run.instrumentors.processes:ProcessesInstrumentor",
        description="`ProcessPoolExecutor` and `multiprocessing` (`Pool`, `Process`) tasks "
        "submitted inside a span carry its trace context to the child process",
    ),
    InstrumentorSpec(
        name="logging",
        modules=("logging",),
        requires="",
        load="telemetry_run.instrumentors.log_correlation:LogCorrelationInstrumentor",
        description="every `LogRecord` carries `otelTraceID`, `otelSpanID`, `otelTraceSampled`, "
        "`otelServiceName` (a record factory; handlers and formats untouched)",
        variables=(
            Variable(
                "OTEL_PYTHON_LOG_CORRELATION",
                parse_bool,
                True,
                "false leaves log records without trace ids (the logging instrumentor)",
            ),
        ),
    ),
    InstrumentorSpec(
        name="runtime_metrics",
        modules=("telemetry_run",),  # always imported: a timer starts with the process
        requires="",
        load="telemetry_run.instrumentors.runtime_metrics:RuntimeMetricsInstrumentor",
        description="`process.cpu.time`, `process.memory.usage`, `process.thread.count` and "
        "`cpython.gc.*` metrics from each process running past one export interval (at most "
        "10 s), while metrics "
        "export is on (`OTEL_METRICS_EXPORTER`)",
    ),
    InstrumentorSpec(
        name="trace_functions",
        modules=("telemetry_run",),  # always imported: the hooks are the variable's modules
        requires="",
        load="telemetry_run.instrumentors.trace_functions:TraceFunctionsInstrumentor",
        description="an INTERNAL span per call of each function `TELEMETRY_RUN_TRACE_FUNCTIONS` "
        "names, wrapped when its module is imported",
        variables=(
            Variable(
                "TELEMETRY_RUN_TRACE_FUNCTIONS",
                parse_list,
                (),
                "functions to trace, comma-separated: pkg.mod:func, pkg.mod:Class.method "
                "(sync, async, generators)",
            ),
        ),
    ),
)

_HEADERS_DOC: Final = "{} headers recorded on {} spans: names or regexes, comma-separated"

VARIABLES: Final[tuple[Variable, ...]] = (
    Variable(
        SQLCOMMENTER,
        parse_bool,
        False,
        "true appends the span's traceparent to each SQL statement as a sqlcommenter comment "
        "(every database instrumentor)",
    ),
    Variable(
        _http.EXCLUDED_URLS,
        _http.parse_url_patterns,
        (),
        "regexes of URLs that get no span, comma-separated (every HTTP instrumentor)",
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
