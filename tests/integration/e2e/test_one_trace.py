"""One trace across four real processes: Flask -> requests -> Django -> gRPC client -> server.

Each service runs under ``telemetry-run`` with its own ``OTEL_SERVICE_NAME`` and exports to the
same OTLP receiver; the test calls the Flask service with a ``traceparent`` and reads the trace
back. No service has a line of telemetry code.
"""

from __future__ import annotations

import sys
import textwrap
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, served, services_by_span

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

for _module in ("flask", "django", "requests", "grpc"):
    pytest.importorskip(_module)

GRPC_SERVER = """
import sys
from concurrent import futures

import grpc


def check(request, context):
    return b"in stock:" + request


handler = grpc.method_handlers_generic_handler(
    "shop.Inventory", {"Check": grpc.unary_unary_rpc_method_handler(check)}
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
server.wait_for_termination()
"""

DJANGO_SETTINGS = """
SECRET_KEY = "e2e"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "stock.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
"""

DJANGO_URLS = """
import os

import grpc
from django.http import HttpResponse
from django.urls import path

channel = grpc.insecure_channel(f"127.0.0.1:{os.environ['E2E_GRPC_PORT']}")
check = channel.unary_unary("/shop.Inventory/Check")


def stock(request, pk):
    return HttpResponse(check(str(pk).encode(), timeout=10))


urlpatterns = [path("stock/<int:pk>/", stock)]
"""

FLASK_APP = """
import os

import flask
import requests

app = flask.Flask(__name__)


@app.route("/checkout/<int:item>")
def checkout(item):
    stock = f"http://127.0.0.1:{os.environ['E2E_DJANGO_PORT']}/stock/{item}/"
    answer = requests.get(stock, timeout=10)
    return {"stock": answer.text}
"""

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
KINDS = {2: "SERVER", 3: "CLIENT"}


def test_one_trace_crosses_flask_requests_django_and_grpc(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    (tmp_path / "grpc_server.py").write_text(textwrap.dedent(GRPC_SERVER))
    (tmp_path / "stock").mkdir()
    (tmp_path / "stock" / "__init__.py").write_text("")
    (tmp_path / "stock" / "settings.py").write_text(textwrap.dedent(DJANGO_SETTINGS))
    (tmp_path / "stock" / "urls.py").write_text(textwrap.dedent(DJANGO_URLS))
    (tmp_path / "shop.py").write_text(textwrap.dedent(FLASK_APP))
    grpc_port, django_port, flask_port = free_port(), free_port(), free_port()
    common = {
        "PYTHONPATH": str(tmp_path),
        "E2E_GRPC_PORT": str(grpc_port),
        "E2E_DJANGO_PORT": str(django_port),
    }

    def env(service: str, **extra: str) -> dict[str, str]:
        return otlp_env(otlp_receiver, OTEL_SERVICE_NAME=service, **common, **extra)

    python = sys.executable
    with ExitStack() as stack:
        stack.enter_context(
            served(
                [python, "grpc_server.py", str(grpc_port)],
                port=grpc_port,
                env=env("inventory"),
                cwd=tmp_path,
            )
        )
        stack.enter_context(
            served(
                [python, "-m", "django", "runserver", f"127.0.0.1:{django_port}", "--noreload"],
                port=django_port,
                env=env("stock", DJANGO_SETTINGS_MODULE="stock.settings"),
                cwd=tmp_path,
            )
        )
        shop = stack.enter_context(
            served(
                [python, "-m", "flask", "--app", "shop", "run", "--port", str(flask_port)],
                port=flask_port,
                env=env("shop"),
                cwd=tmp_path,
            )
        )
        request = urllib.request.Request(
            shop.url("/checkout/7"), headers={"traceparent": f"00-{TRACE_ID}-{CALLER}-01"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.read() == b'{"stock":"in stock:7"}\n'
        spans = otlp_receiver.wait_for_spans(5, timeout=30)

    services = services_by_span(otlp_receiver)
    chain = {span.span_id: span for span in spans}
    assert {span.trace_id.hex() for span in spans} == {TRACE_ID}
    by_name = {(span.name, KINDS.get(span.kind)): span for span in spans}
    assert sorted(by_name) == [
        ("GET", "CLIENT"),
        ("GET /checkout/<int:item>", "SERVER"),
        ("GET stock/<int:pk>/", "SERVER"),
        ("shop.Inventory/Check", "CLIENT"),
        ("shop.Inventory/Check", "SERVER"),
    ]
    flask_server = by_name[("GET /checkout/<int:item>", "SERVER")]
    requests_client = by_name[("GET", "CLIENT")]
    django_server = by_name[("GET stock/<int:pk>/", "SERVER")]
    grpc_client = by_name[("shop.Inventory/Check", "CLIENT")]
    grpc_server = by_name[("shop.Inventory/Check", "SERVER")]
    assert flask_server.parent_span_id.hex() == CALLER
    for child, parent in [
        (requests_client, flask_server),
        (django_server, requests_client),
        (grpc_client, django_server),
        (grpc_server, grpc_client),
    ]:
        assert child.parent_span_id == parent.span_id, (child.name, parent.name)
        assert chain[child.parent_span_id] is parent
    assert services[flask_server.span_id] == services[requests_client.span_id] == "shop"
    assert services[django_server.span_id] == services[grpc_client.span_id] == "stock"
    assert services[grpc_server.span_id] == "inventory"
    assert attributes(requests_client)["http.response.status_code"] == 200
    assert attributes(django_server)["http.route"] == "stock/<int:pk>/"
    assert attributes(grpc_server)["rpc.service"] == "shop.Inventory"
    assert attributes(grpc_client)["rpc.grpc.status_code"] == 0
