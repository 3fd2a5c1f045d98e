"""The Django instrumentor through Django's own test clients (WSGI and ASGI handlers).

Django's settings can be configured once per process: this module configures them once (it is
its own URLconf) and overrides them for its tests, so another module of the run may have
configured Django first. Each test instruments a fresh ``DjangoInstrumentor`` and builds a new
``Client``, whose handler loads the middleware on its first request, as a server's does.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied  # type: ignore[import-untyped]
from django.http import (  # type: ignore[import-untyped]
    FileResponse,
    Http404,
    HttpResponse,
    HttpResponseServerError,
    StreamingHttpResponse,
)
from django.urls import include, path, re_path  # type: ignore[import-untyped]

import telemetry_run.instrumentors.plugin as builtin_plugin
from telemetry_run.instrumentors.base import InstrumentorSpec
from telemetry_run.instrumentors.django import MIDDLEWARE, DjangoInstrumentor, TelemetryMiddleware
from telemetry_run.sdk.context import suppress_instrumentation
from telemetry_run.sdk.trace import ReadableSpan
from telemetry_run.sdk.trace.api import SpanKind, StatusCode
from telemetry_run.sdk.trace.current import get_current_span
from telemetry_run.testing import SpanRecorder, config_for
from telemetry_run.testing.contract import contract_tests

ROOT = Path(__file__).resolve().parents[3]
DECLARED = {spec.name: spec for spec in builtin_plugin.SPECS}
# The contract runs on the declared spec; should it go missing, on the one it must be, so the
# suite still runs and test_the_builtin_plugin_declares_django alone fails.
DJANGO_SPEC = DECLARED.get("django") or InstrumentorSpec(
    name="django",
    modules=("django",),
    requires="django>=4.2,<7",
    load="telemetry_run.instrumentors.django:DjangoInstrumentor",
)

contract_tests(
    globals(),
    spec=DJANGO_SPEC,
    exercise="tests.unit.instrumentors.django_exercise:one_request",
    sys_path=[str(ROOT), *sys.path],
)


def test_the_builtin_plugin_declares_django() -> None:
    spec = DECLARED.get("django")
    assert spec is not None, f"no django spec in {sorted(DECLARED)}"
    assert spec.modules == ("django.core.handlers.base",)  # what servers import, not django
    assert spec.load == f"{DjangoInstrumentor.__module__}:{DjangoInstrumentor.__qualname__}"


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"

# What the views saw, for the test to compare with the spans: the current span, the thread.
seen: dict[str, Any] = {}
# The tracer the views make their own spans with (the test's recorder).
tracers: list[Any] = []


# -- the application ----------------------------------------------------------------------------


def item(request: Any, pk: int) -> Any:
    seen["span"] = get_current_span()
    return HttpResponse(f"item {pk}", headers={"X-Item": str(pk)})


def manual(request: Any) -> Any:
    with tracers[0].start_as_current_span("inside the view"):
        pass
    return HttpResponse("manual")


def fails(request: Any) -> Any:
    raise ValueError("the view failed")


def not_found(request: Any) -> Any:
    raise Http404("no such thing")


def forbidden(request: Any) -> Any:
    raise PermissionDenied


def stream(request: Any) -> Any:
    def chunks() -> Iterator[bytes]:
        yield b"first,"
        with tracers[0].start_as_current_span("inside the stream"):
            pass
        yield b"second"

    return StreamingHttpResponse(chunks())


def file(request: Any) -> Any:
    return FileResponse(io.BytesIO(b"file body"), filename="body.txt")


async def async_item(request: Any, pk: int) -> Any:
    seen["span"] = get_current_span()
    seen["thread"] = threading.get_ident()
    with tracers[0].start_as_current_span("inside the async view"):
        await asyncio.sleep(0)
    return HttpResponse(f"async item {pk}")


async def async_stream(request: Any) -> Any:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        with tracers[0].start_as_current_span("inside the async stream"):
            await asyncio.sleep(0)
        yield b"second"

    return StreamingHttpResponse(chunks())


def server_error(request: Any) -> Any:
    return HttpResponseServerError("the app's own 500 page")


handler500 = server_error

urlpatterns = [
    path("items/<int:pk>/", item),
    path("api/", include([path("v1/", include([path("items/<int:pk>/", item)]))])),
    re_path(r"^legacy/(?P<pk>[0-9]+)/$", item),
    path("manual/", manual),
    path("fails/", fails),
    path("not-found/", not_found),
    path("forbidden/", forbidden),
    path("stream/", stream),
    path("file/", file),
    path("async/<int:pk>/", async_item),
    path("async-stream/", async_stream),
    path("healthz/", item, {"pk": 0}),
    path("blocked/", item, {"pk": 0}),
]


class ShortCircuit:
    """Answers /blocked/ itself, before the URL is resolved."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if request.path == "/blocked/":
            return HttpResponse("busy", status=503)
        return self.get_response(request)


SHORT_CIRCUIT = f"{__name__}.ShortCircuit"


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _django_settings() -> Iterator[None]:
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]
    from django.test.utils import override_settings  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(SECRET_KEY="unit-test-only", INSTALLED_APPS=[], DATABASES={})
        django.setup()
    with override_settings(
        DEBUG=False,
        DEBUG_PROPAGATE_EXCEPTIONS=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
    ):
        yield


@pytest.fixture
def instrument(span_recorder: SpanRecorder) -> Iterator[Callable[..., DjangoInstrumentor]]:
    """Instrument with the recorder's provider and the plugin's variables set from ``env``."""
    made: list[DjangoInstrumentor] = []
    tracers[:] = [span_recorder.tracer]
    seen.clear()

    def instrument(**env: str) -> DjangoInstrumentor:
        instrumentor = DjangoInstrumentor()
        assert instrumentor.instrument(span_recorder.provider, config_for(builtin_plugin, env))
        made.append(instrumentor)
        return instrumentor

    yield instrument
    for instrumentor in made:
        instrumentor.uninstrument()


@pytest.fixture
def recorder(
    span_recorder: SpanRecorder, instrument: Callable[..., DjangoInstrumentor]
) -> SpanRecorder:
    instrument()
    return span_recorder


def client(**kwargs: Any) -> Any:
    from django.test import Client  # type: ignore[import-untyped]

    return Client(**kwargs)


def server_span(recorder: SpanRecorder) -> ReadableSpan:
    servers = [span for span in recorder.spans if span.kind is SpanKind.SERVER]
    assert len(servers) == 1, [span.name for span in recorder.spans]
    return servers[0]


# -- the span -----------------------------------------------------------------------------------


def test_the_span_is_named_from_the_route_with_its_converter(recorder: SpanRecorder) -> None:
    response = client().get("/items/7/", HTTP_USER_AGENT="unit-test")
    assert response.status_code == 200
    assert response.content == b"item 7"
    span = recorder.one("GET items/<int:pk>/")
    assert span.kind is SpanKind.SERVER
    assert span.parent is None
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes)
    assert attributes["http.route"] == "items/<int:pk>/"
    assert attributes["http.request.method"] == "GET"
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == "/items/7/"
    assert attributes["url.scheme"] == "http"
    assert attributes["server.address"] == "testserver"
    assert attributes["user_agent.original"] == "unit-test"
    assert "error.type" not in attributes
    assert "url.query" not in attributes
    # The view ran inside the span.
    assert seen["span"].get_span_context() == span.context


def test_nested_includes_give_the_joined_route(recorder: SpanRecorder) -> None:
    assert client().get("/api/v1/items/3/").status_code == 200
    span = recorder.one("GET api/v1/items/<int:pk>/")
    assert span.attributes["http.route"] == "api/v1/items/<int:pk>/"


def test_a_regex_route_is_named_as_written(recorder: SpanRecorder) -> None:
    assert client().get("/legacy/3/").status_code == 200
    assert recorder.one("GET ^legacy/(?P<pk>[0-9]+)/$").attributes["url.path"] == "/legacy/3/"


def test_sensitive_query_values_are_redacted(recorder: SpanRecorder) -> None:
    assert client().get("/items/7/?token=secret&page=2").status_code == 200
    span = recorder.one("GET items/<int:pk>/")
    assert span.attributes["url.query"] == "token=REDACTED&page=2"


def test_an_unresolved_url_is_named_by_its_method_alone(recorder: SpanRecorder) -> None:
    response = client().post("/nowhere/")
    assert response.status_code == 404
    span = recorder.one("POST")
    assert "http.route" not in span.attributes
    assert span.attributes["http.response.status_code"] == 404
    assert span.attributes["url.path"] == "/nowhere/"
    assert span.status.status_code is StatusCode.UNSET
    assert not span.events


def test_a_view_that_raises_is_an_error_with_the_apps_own_500(recorder: SpanRecorder) -> None:
    response = client(raise_request_exception=False).get("/fails/")
    assert response.status_code == 500
    assert response.content == b"the app's own 500 page"
    span = recorder.one("GET fails/")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["http.response.status_code"] == 500
    assert span.attributes["error.type"] == "500"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "the view failed"


def test_the_apps_exception_still_reaches_the_test_client(recorder: SpanRecorder) -> None:
    with pytest.raises(ValueError, match="the view failed"):
        client().get("/fails/")
    assert recorder.one("GET fails/").status.status_code is StatusCode.ERROR


def test_an_exception_propagated_by_django_ends_the_span(recorder: SpanRecorder) -> None:
    from django.test.utils import override_settings

    with override_settings(DEBUG_PROPAGATE_EXCEPTIONS=True), pytest.raises(ValueError):
        client(raise_request_exception=False).get("/fails/")
    span = recorder.one("GET fails/")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert "http.response.status_code" not in span.attributes
    assert [event.name for event in span.events] == ["exception"]


@pytest.mark.parametrize(
    ("url", "status_code"), [("/not-found/", 404), ("/forbidden/", 403)], ids=["404", "403"]
)
def test_http404_and_permission_denied_are_not_errors(
    recorder: SpanRecorder, url: str, status_code: int
) -> None:
    assert client().get(url).status_code == status_code
    span = server_span(recorder)
    assert span.attributes["http.response.status_code"] == status_code
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes
    assert not span.events


def test_a_short_circuiting_middleware_still_gets_a_span(recorder: SpanRecorder) -> None:
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=[SHORT_CIRCUIT]):
        response = client().get("/blocked/")
    assert response.status_code == 503
    assert response.content == b"busy"
    span = recorder.one("GET")  # no route: the view was never resolved
    assert span.attributes["http.response.status_code"] == 503
    assert span.status.status_code is StatusCode.ERROR
    assert not span.events


def test_the_middleware_goes_first_once(recorder: SpanRecorder) -> None:
    from django.conf import settings
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=[SHORT_CIRCUIT]):
        client().get("/items/1/")
        client().get("/items/2/")
        assert settings.MIDDLEWARE == [MIDDLEWARE, SHORT_CIRCUIT]
    assert len(recorder.by_name("GET items/<int:pk>/")) == 2


def test_a_middleware_listed_by_the_user_stays_where_it_is(recorder: SpanRecorder) -> None:
    from django.conf import settings
    from django.test.utils import override_settings

    with override_settings(MIDDLEWARE=[SHORT_CIRCUIT, MIDDLEWARE]):
        client().get("/blocked/")
        assert settings.MIDDLEWARE == [SHORT_CIRCUIT, MIDDLEWARE]
    # Listed after the short-circuit, it never sees /blocked/.
    assert recorder.spans == ()


# -- streaming ----------------------------------------------------------------------------------


def test_a_streamed_response_ends_the_span_when_it_is_closed(recorder: SpanRecorder) -> None:
    response = client().get("/stream/")
    assert response.status_code == 200
    assert recorder.spans == ()  # the view returned, the body is not sent yet
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"first,"
    assert recorder.spans == ()
    assert b"".join(chunks) == b"second"  # the test client closes the response at the end
    span = recorder.one("GET stream/")
    assert span.attributes["http.response.status_code"] == 200
    # The stream ran in the request's context.
    assert recorder.one("inside the stream").parent == span.context
    inside_end = recorder.one("inside the stream").end_time
    assert span.end_time is not None and inside_end is not None
    assert span.end_time >= inside_end


def test_a_streamed_response_closed_early_ends_the_span(recorder: SpanRecorder) -> None:
    response = client().get("/stream/")
    assert next(iter(response.streaming_content)) == b"first,"
    assert recorder.spans == ()
    response.close()
    assert recorder.one("GET stream/").attributes["http.response.status_code"] == 200


def test_a_file_response_ends_the_span_when_it_is_closed(recorder: SpanRecorder) -> None:
    response = client().get("/file/")
    assert recorder.spans == ()
    assert b"".join(response.streaming_content) == b"file body"
    assert recorder.one("GET file/").attributes["http.response.status_code"] == 200


# -- ASGI ---------------------------------------------------------------------------------------


def async_client(**kwargs: Any) -> Any:
    from django.test import AsyncClient

    return AsyncClient(**kwargs)


def test_an_async_view_under_asgi(recorder: SpanRecorder) -> None:
    async def get() -> Any:
        seen["loop thread"] = threading.get_ident()
        return await async_client().get("/async/5/", headers={"traceparent": traceparent()})

    response = asyncio.run(get())
    assert response.status_code == 200
    assert response.content == b"async item 5"
    span = recorder.one("GET async/<int:pk>/")
    assert span.kind is SpanKind.SERVER
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.scheme"] == "http"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert seen["span"].get_span_context() == span.context
    assert seen["thread"] == seen["loop thread"]  # the view ran on the event loop
    assert recorder.one("inside the async view").parent == span.context


def test_the_middleware_is_a_coroutine_function_for_an_async_chain() -> None:
    from asgiref.sync import iscoroutinefunction

    async def get_response(request: Any) -> Any:
        return HttpResponse()

    def get_response_sync(request: Any) -> Any:
        return HttpResponse()

    assert iscoroutinefunction(TelemetryMiddleware(get_response))
    assert not iscoroutinefunction(TelemetryMiddleware(get_response_sync))


def test_an_async_view_that_raises_under_asgi(recorder: SpanRecorder) -> None:
    response = asyncio.run(async_client(raise_request_exception=False).get("/fails/"))
    assert response.status_code == 500
    span = recorder.one("GET fails/")
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_an_async_stream_under_asgi(recorder: SpanRecorder) -> None:
    async def get() -> tuple[bytes, int]:
        response = await async_client().get("/async-stream/")
        before = len(recorder.spans)
        body = b"".join([chunk async for chunk in response.streaming_content])
        return body, before

    body, spans_before_the_body = asyncio.run(get())
    assert body == b"first,second"
    assert spans_before_the_body == 0
    span = recorder.one("GET async-stream/")
    assert recorder.one("inside the async stream").parent == span.context


# -- trace context ------------------------------------------------------------------------------


def traceparent(trace_id: str = TRACE_ID, parent_id: str = PARENT_ID) -> str:
    return f"00-{trace_id}-{parent_id}-01"


def test_an_incoming_traceparent_is_continued(recorder: SpanRecorder) -> None:
    client().get("/items/1/", HTTP_TRACEPARENT=traceparent())
    span = recorder.one("GET items/<int:pk>/")
    assert span.parent is not None
    assert span.parent.is_remote
    assert f"{span.parent.span_id:016x}" == PARENT_ID
    assert f"{span.context.trace_id:032x}" == TRACE_ID


def test_a_malformed_traceparent_starts_a_new_trace(recorder: SpanRecorder) -> None:
    client().get("/items/1/", HTTP_TRACEPARENT=f"00-{TRACE_ID}-not-a-parent-01")
    span = recorder.one("GET items/<int:pk>/")
    assert span.parent is None
    assert f"{span.context.trace_id:032x}" != TRACE_ID


def test_spans_made_in_a_view_are_children_of_the_server_span(recorder: SpanRecorder) -> None:
    client().get("/manual/")
    assert recorder.one("inside the view").parent == recorder.one("GET manual/").context


def test_no_context_leaks_out_of_the_request(recorder: SpanRecorder) -> None:
    before = get_current_span()
    client().get("/items/1/")
    client(raise_request_exception=False).get("/fails/")
    client().get("/stream/").close()
    assert get_current_span() is before


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable", ["OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"]
)
def test_excluded_urls_get_no_span(
    span_recorder: SpanRecorder, instrument: Callable[..., DjangoInstrumentor], variable: str
) -> None:
    instrument(**{variable: "healthz,/nothing-else"})
    assert client().get("/healthz/").status_code == 200
    assert span_recorder.spans == ()
    client().get("/items/1/")
    assert span_recorder.one("GET items/<int:pk>/").attributes["url.path"] == "/items/1/"


def test_allow_listed_headers_are_captured(
    span_recorder: SpanRecorder, instrument: Callable[..., DjangoInstrumentor]
) -> None:
    instrument(
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="x-request-id,authorization",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE="x-item",
    )
    client().get("/items/4/", HTTP_X_REQUEST_ID="abc", HTTP_AUTHORIZATION="Bearer secret")
    attributes = span_recorder.one("GET items/<int:pk>/").attributes
    assert attributes["http.request.header.x-request-id"] == ("abc",)
    assert attributes["http.request.header.authorization"] == ("[REDACTED]",)
    assert attributes["http.response.header.x-item"] == ("4",)


def test_suppressed_instrumentation_makes_no_span(recorder: SpanRecorder) -> None:
    with suppress_instrumentation():
        assert client().get("/items/1/").status_code == 200
    assert recorder.spans == ()


# -- never breaking the application, and undoing ------------------------------------------------


def test_our_failure_leaves_the_response_alone(
    recorder: SpanRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry_run.instrumentors import _wsgi

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("instrumentor bug")

    monkeypatch.setattr(_wsgi.ServerRequest, "start", broken)
    response = client().get("/items/9/")
    assert response.status_code == 200
    assert response.content == b"item 9"
    assert recorder.spans == ()
    assert [error.where for error in recorder.internal_errors] == ["django: request start"]
    recorder.internal_errors.clear()  # expected: the fixture fails the test on the others


def test_uninstrument_restores_load_middleware_and_settings(
    span_recorder: SpanRecorder, instrument: Callable[..., DjangoInstrumentor]
) -> None:
    from django.conf import settings
    from django.core.handlers.base import BaseHandler  # type: ignore[import-untyped]

    original = vars(BaseHandler)["load_middleware"]
    instrumentor = instrument()
    assert vars(BaseHandler)["load_middleware"] is not original
    old_client = client()
    old_client.get("/items/1/")
    assert settings.MIDDLEWARE == [MIDDLEWARE]
    instrumentor.uninstrument()
    assert vars(BaseHandler)["load_middleware"] is original
    assert settings.MIDDLEWARE == []
    span_recorder.clear()
    client().get("/items/1/")
    old_client.get("/items/1/")  # its chain still holds the middleware, now inert
    assert span_recorder.spans == ()


def test_instrumenting_twice_inserts_once(
    span_recorder: SpanRecorder, instrument: Callable[..., DjangoInstrumentor]
) -> None:
    from django.conf import settings

    instrument()
    assert not DjangoInstrumentor().instrument(span_recorder.provider, None)
    client().get("/items/1/")
    assert settings.MIDDLEWARE == [MIDDLEWARE]
    assert len(span_recorder.spans) == 1
