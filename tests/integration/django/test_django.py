"""A real Django project under ``telemetry-run``, served as users serve it, exporting over OTLP.

The project (settings, URLs with a path converter, a view that raises, a streamed one, an async
one) is written to ``tmp_path`` and served by ``manage.py runserver`` (with and without its
autoreloader), gunicorn with two workers and uvicorn (ASGI). Nobody edits its settings: the
instrumentor puts its middleware first. Requests go to 127.0.0.1 with urllib; the spans are the
ones the ``otlp_receiver`` fixture got.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import AppProcess, attributes, otlp_env, script, served
from tests.integration.conftest import PYTHON

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(importlib.util.find_spec("django") is None, reason="django is missing"),
]

SERVER = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
STATUS_UNSET, STATUS_ERROR = 0, 2
SPAN_WAIT = 20.0
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
MIDDLEWARE = "telemetry_run.instrumentors.django.TelemetryMiddleware"

PROJECT = {
    "manage.py": """
        import os
        import sys

        if __name__ == "__main__":
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
            from django.core.management import execute_from_command_line

            execute_from_command_line(sys.argv)
    """,
    "project/__init__.py": "",
    "project/settings.py": """
        SECRET_KEY = "integration-test-only"
        DEBUG = False
        ALLOWED_HOSTS = ["127.0.0.1"]
        ROOT_URLCONF = "project.urls"
        INSTALLED_APPS = []
        DATABASES = {}
        USE_TZ = True
        MIDDLEWARE = [
            "django.middleware.security.SecurityMiddleware",
            "django.middleware.common.CommonMiddleware",
        ]
    """,
    "project/urls.py": """
        from django.urls import include, path

        from project import views

        urlpatterns = [
            path("items/<int:pk>/", views.item),
            path("api/", include([path("v1/items/<int:pk>/", views.item)])),
            path("fails/", views.fails),
            path("stream/", views.stream),
            path("async/<int:pk>/", views.async_item),
            path("middleware/", views.middleware),
        ]
    """,
    "project/views.py": """
        import asyncio
        import os

        from django.conf import settings
        from django.http import JsonResponse, StreamingHttpResponse

        from telemetry_run import trace

        tracer = trace.get_tracer("project")


        def item(request, pk):
            with tracer.start_as_current_span("load item"):
                pass
            return JsonResponse({"pk": pk, "pid": os.getpid()})


        def fails(request):
            raise ValueError("the view failed")


        def stream(request):
            def chunks():
                yield b"first,"
                with tracer.start_as_current_span("inside the stream"):
                    pass
                yield b"second"

            return StreamingHttpResponse(chunks(), content_type="text/plain")


        async def async_item(request, pk):
            with tracer.start_as_current_span("load item async"):
                await asyncio.sleep(0)
            return JsonResponse({"pk": pk, "pid": os.getpid()})


        def middleware(request):
            return JsonResponse({"middleware": list(settings.MIDDLEWARE), "pid": os.getpid()})
    """,
    "project/wsgi.py": """
        import os

        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        application = get_wsgi_application()
    """,
    "project/asgi.py": """
        import os

        from django.core.asgi import get_asgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        application = get_asgi_application()
    """,
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, source in PROJECT.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))
    return tmp_path


def env(receiver: OTLPReceiver, service: str) -> dict[str, str]:
    return otlp_env(receiver, OTEL_SERVICE_NAME=service, DJANGO_SETTINGS_MODULE="project.settings")


def get(app: AppProcess, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of one request; an HTTP error status is an answer too."""
    request = urllib.request.Request(
        app.url(path), headers={"Connection": "close", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def traceparent() -> dict[str, str]:
    return {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}


def by_name(spans: Sequence[Any]) -> dict[str, Any]:
    names = Counter(span.name for span in spans)
    assert all(count == 1 for count in names.values()), names
    return {span.name: span for span in spans}


def pids(receiver: OTLPReceiver) -> Counter[int]:
    """How many spans each process exported (the resource's process.pid)."""
    counts: Counter[int] = Counter()
    for request in receiver.requests:
        for resource_spans in request.request.resource_spans:
            resource = attributes(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                counts[resource["process.pid"]] += len(scope_spans.spans)
    return counts


def assert_nothing_of_ours_failed(app: AppProcess) -> None:
    log = app.log()
    assert "internal error" not in log, log
    assert "telemetry-run: spans produced" not in log, log


def exercise_wsgi(app: AppProcess, receiver: OTLPReceiver) -> dict[str, Any]:
    """The WSGI scenario: route, error, 404, stream, continued trace; the spans by name."""
    status, body = get(app, "/items/7/?token=secret&page=2", traceparent())
    assert (status, json.loads(body)["pk"]) == (200, 7)
    assert get(app, "/api/v1/items/8/")[0] == 200
    assert get(app, "/fails/")[0] == 500
    assert get(app, "/nowhere/")[0] == 404
    assert get(app, "/stream/") == (200, b"first,second")
    status, body = get(app, "/middleware/")
    assert json.loads(body)["middleware"] == [
        MIDDLEWARE,
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]
    # Six SERVER spans and the app's three: "load item" twice (by two routes), the stream's.
    spans = receiver.wait_for_spans(9, timeout=SPAN_WAIT)
    servers = by_name([span for span in spans if span.kind == SERVER])
    assert set(servers) == {
        "GET items/<int:pk>/",
        "GET api/v1/items/<int:pk>/",
        "GET fails/",
        "GET",
        "GET stream/",
        "GET middleware/",
    }

    item = servers["GET items/<int:pk>/"]
    item_attributes = attributes(item)
    assert item_attributes["http.route"] == "items/<int:pk>/"
    assert item_attributes["http.request.method"] == "GET"
    assert item_attributes["http.response.status_code"] == 200
    assert item_attributes["url.path"] == "/items/7/"
    assert item_attributes["url.query"] == "token=REDACTED&page=2"
    assert item_attributes["url.scheme"] == "http"
    assert item_attributes["server.address"] == "127.0.0.1"
    assert item_attributes["server.port"] == app.port
    assert item_attributes["client.address"] == "127.0.0.1"
    assert item.status.code == STATUS_UNSET
    assert item.trace_id.hex() == TRACE_ID
    assert item.parent_span_id.hex() == PARENT_ID
    loads = [span for span in spans if span.name == "load item"]
    assert item.span_id in {span.parent_span_id for span in loads}

    failed = servers["GET fails/"]
    assert attributes(failed)["http.response.status_code"] == 500
    assert attributes(failed)["error.type"] == "500"
    assert failed.status.code == STATUS_ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert attributes(failed.events[0])["exception.type"] == "ValueError"

    missing = servers["GET"]
    assert attributes(missing)["http.response.status_code"] == 404
    assert "http.route" not in attributes(missing)
    assert missing.status.code == STATUS_UNSET

    streamed = servers["GET stream/"]
    (inside,) = [span for span in spans if span.name == "inside the stream"]
    assert inside.parent_span_id == streamed.span_id
    # Ended once the body was sent and closed, not when the view returned.
    assert streamed.end_time_unix_nano >= inside.end_time_unix_nano
    return servers


def test_runserver_without_the_autoreloader(project: Path, otlp_receiver: OTLPReceiver) -> None:
    port = free_port()
    command = [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
    with served(command, port=port, env=env(otlp_receiver, "runserver"), cwd=project) as app:
        exercise_wsgi(app, otlp_receiver)
        assert_nothing_of_ours_failed(app)
    assert set(pids(otlp_receiver)) == {app.proc.pid}


def test_runserver_with_the_autoreloader_exports_from_the_serving_child_once(
    project: Path, otlp_receiver: OTLPReceiver
) -> None:
    port = free_port()
    command = [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}"]
    with served(command, port=port, env=env(otlp_receiver, "reloader"), cwd=project) as app:
        served_by = {json.loads(get(app, f"/items/{pk}/")[1])["pid"] for pk in range(3)}
        otlp_receiver.wait_for_spans(6, timeout=SPAN_WAIT)
        assert_nothing_of_ours_failed(app)
        stop_code = app.stop()  # SIGTERM to the reloader: the child flushes as it goes
    assert stop_code == 0, app.log()
    (child,) = served_by
    assert child != app.proc.pid  # the autoreloader's child served, not the launched parent
    assert pids(otlp_receiver) == {child: 6}, app.log()  # exported once each, by it alone
    servers = [span for span in otlp_receiver.wait_for_spans(6, timeout=1) if span.kind == SERVER]
    assert [span.name for span in servers] == ["GET items/<int:pk>/"] * 3


def test_gunicorn_with_two_workers(project: Path, otlp_receiver: OTLPReceiver) -> None:
    port = free_port()
    command = [
        script("gunicorn"),
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "project.wsgi:application",
    ]
    with served(command, port=port, env=env(otlp_receiver, "gunicorn"), cwd=project) as app:
        exercise_wsgi(app, otlp_receiver)
        assert_nothing_of_ours_failed(app)
    exporters = set(pids(otlp_receiver))
    assert exporters, "no span was exported"
    assert app.proc.pid not in exporters  # the master serves nothing: its workers do


def test_uvicorn_asgi_with_an_async_view(project: Path, otlp_receiver: OTLPReceiver) -> None:
    port = free_port()
    command = [
        script("uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "project.asgi:application",
    ]
    with served(command, port=port, env=env(otlp_receiver, "uvicorn"), cwd=project) as app:
        status, body = get(app, "/async/5/", traceparent())
        assert (status, json.loads(body)["pk"]) == (200, 5)
        assert get(app, "/items/6/")[0] == 200
        assert get(app, "/fails/")[0] == 500
        assert get(app, "/stream/") == (200, b"first,second")
        spans = otlp_receiver.wait_for_spans(7, timeout=SPAN_WAIT)
        assert_nothing_of_ours_failed(app)
    servers = by_name([span for span in spans if span.kind == SERVER])
    assert set(servers) == {
        "GET async/<int:pk>/",
        "GET items/<int:pk>/",
        "GET fails/",
        "GET stream/",
    }

    async_item = servers["GET async/<int:pk>/"]
    async_attributes = attributes(async_item)
    assert async_attributes["http.route"] == "async/<int:pk>/"
    assert async_attributes["http.response.status_code"] == 200
    assert async_attributes["url.scheme"] == "http"
    assert async_attributes["url.path"] == "/async/5/"
    assert async_item.trace_id.hex() == TRACE_ID
    assert async_item.parent_span_id.hex() == PARENT_ID
    (inside,) = [span for span in spans if span.name == "load item async"]
    assert inside.parent_span_id == async_item.span_id

    failed = servers["GET fails/"]
    assert failed.status.code == STATUS_ERROR
    assert [event.name for event in failed.events] == ["exception"]

    (in_stream,) = [span for span in spans if span.name == "inside the stream"]
    assert in_stream.parent_span_id == servers["GET stream/"].span_id
