"""Django's ASGI handler under uvicorn, run by telemetry-run: Django's own instrumentor makes
the request's SERVER span, and the generic ASGI one adds none (one span per request)."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import otlp_env, script, served
from tests.integration.asgi.test_fastapi_servers import SERVER, get, requires

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytestmark = pytest.mark.timeout(180)

# A one-file Django project: settings, URLs, views and the ASGI application.
DJANGO_ASGI = """
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import JsonResponse
from django.urls import path

settings.configure(
    SECRET_KEY="not-secret-test-only",
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    DATABASES={},
)


async def item(request, pk):
    return JsonResponse({"pk": pk})


urlpatterns = [path("items/<int:pk>/", item)]
application = get_asgi_application()
"""


def test_django_asgi_under_uvicorn_is_one_server_span_per_request(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    requires("django", "uvicorn")
    (tmp_path / "django_asgi.py").write_text(textwrap.dedent(DJANGO_ASGI))
    port = free_port()
    command = [
        script("uvicorn"),
        "django_asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
    ]
    env = otlp_env(otlp_receiver, PYTHONPATH=str(tmp_path))
    with served(command, port=port, env=env, cwd=tmp_path) as app:
        for pk in (1, 2, 3):
            assert get(app.url(f"/items/{pk}/")) == (200, f'{{"pk": {pk}}}'.encode())
        otlp_receiver.wait_for_spans(3, timeout=30)
        app.stop()
        log = app.log()
    assert "internal error" not in log, log
    servers = [span for span in otlp_receiver.spans() if span.kind == SERVER]
    names = Counter(span.name for span in servers)
    assert names == Counter({"GET items/<int:pk>/": 3}), names  # Django's, and only Django's
