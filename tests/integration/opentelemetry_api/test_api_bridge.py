"""The OpenTelemetry API bridge in real processes under telemetry-run, spans at the real receiver.

A Flask app makes a span through ``opentelemetry.trace`` inside its request and calls a second
Flask app (its own process under the launcher) with ``requests`` inside that span; the second
makes an API span too and injects through ``opentelemetry.propagate``. One trace, parents both
ways, and what the API spans recorded, are checked on the OTLP spans the receiver got.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, served
from tests.integration.conftest import clean_env, launch
from tests.integration.flask.test_flask import get

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("flask")
pytest.importorskip("opentelemetry.trace")
import requests  # noqa: F401  # installed in every opentelemetry_api session (tests/matrix.py)

FRONT = """
import os
import flask
import requests
from opentelemetry import trace

tracer = trace.get_tracer("shop.pricing", "2.0")  # at import, as libraries do
LINKED = trace.SpanContext(0x1234, 0x5678, True, trace.TraceFlags(1))
app = flask.Flask(__name__)


@app.route("/checkout")
def checkout():
    with tracer.start_as_current_span(
        "price cart",
        attributes={"cart.items": 3},
        links=[trace.Link(LINKED, {"link.reason": "batch"})],
    ) as span:
        span.add_event("priced", {"total": 42})
        stock = requests.get(os.environ["BACKEND"] + "/stock", timeout=10).text
        try:
            raise ValueError("coupon expired")
        except ValueError as exc:
            span.record_exception(exc)
            span.set_status(trace.Status(trace.StatusCode.ERROR, "coupon expired"))
    server = trace.get_current_span().get_span_context()  # ours, seen through the API
    return f"{server.span_id:016x} {stock}"
"""

BACKEND = """
import flask
from opentelemetry import propagate, trace

app = flask.Flask(__name__)


@app.route("/stock")
def stock():
    with trace.get_tracer("shop.stock").start_as_current_span("stock lookup"):
        carrier = {}
        propagate.inject(carrier)
    return carrier["traceparent"]
"""

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2


def _flask(app: str, port: int) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", app, "run", "--port", str(port)]


def test_api_spans_join_the_trace_both_ways_across_two_processes(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    (tmp_path / "front.py").write_text(textwrap.dedent(FRONT))
    (tmp_path / "backend.py").write_text(textwrap.dedent(BACKEND))
    front_port, back_port = free_port(), free_port()
    back_env = otlp_env(otlp_receiver, PYTHONPATH=str(tmp_path), OTEL_SERVICE_NAME="backend")
    front_env = otlp_env(
        otlp_receiver,
        PYTHONPATH=str(tmp_path),
        OTEL_SERVICE_NAME="front",
        BACKEND=f"http://127.0.0.1:{back_port}",
    )
    with (
        served(_flask("backend", back_port), port=back_port, env=back_env, cwd=tmp_path) as back,
        served(_flask("front", front_port), port=front_port, env=front_env, cwd=tmp_path) as front,
    ):
        status, body = get(front.url("/checkout"))
        assert status == 200, front.log()
        spans = otlp_receiver.wait_for_spans(5, timeout=20)
        assert front.stop() in (0, -15) and back.stop() in (0, -15)
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == [
        "GET",
        "GET /checkout",
        "GET /stock",
        "price cart",
        "stock lookup",
    ], [span.name for span in spans]
    front_server, price, client = by_name["GET /checkout"], by_name["price cart"], by_name["GET"]
    back_server, lookup = by_name["GET /stock"], by_name["stock lookup"]
    assert len({span.trace_id for span in spans}) == 1
    assert (front_server.kind, client.kind, back_server.kind) == (SERVER, CLIENT, SERVER)
    assert price.parent_span_id == front_server.span_id  # an API span inside our SERVER span
    assert client.parent_span_id == price.span_id  # our requests span inside an API span
    assert back_server.parent_span_id == client.span_id
    assert lookup.parent_span_id == back_server.span_id

    seen_current, injected = body.decode().split(" ")
    assert seen_current == front_server.span_id.hex()  # get_current_span() outside the API span
    assert injected == f"00-{lookup.trace_id.hex()}-{lookup.span_id.hex()}-03"

    assert attributes(price) == {"cart.items": 3}
    assert [event.name for event in price.events] == ["priced", "exception"]
    assert attributes(price.events[0]) == {"total": 42}
    exception = attributes(price.events[1])
    assert (exception["exception.type"], exception["exception.message"]) == (
        "ValueError",
        "coupon expired",
    )
    (link,) = price.links
    assert (link.trace_id.hex(), link.span_id.hex()) == (f"{0x1234:032x}", f"{0x5678:016x}")
    assert attributes(link) == {"link.reason": "batch"}
    assert (price.status.code, price.status.message) == (STATUS_ERROR, "coupon expired")


OWN_SDK = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from telemetry_run.trace import get_tracer as our_tracer

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
trace.set_tracer_provider(provider)
assert trace.get_tracer_provider() is provider

with our_tracer("app").start_as_current_span("ours"):
    with trace.get_tracer("app").start_as_current_span("theirs"):
        pass
(theirs,) = exporter.get_finished_spans()
print(f"theirs {theirs.context.trace_id:032x} {theirs.parent.span_id:016x}")
"""


def test_an_applications_own_sdk_provider_is_kept_with_one_warning(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    (tmp_path / "own_sdk.py").write_text(textwrap.dedent(OWN_SDK))
    result = launch([sys.executable, str(tmp_path / "own_sdk.py")], otlp_env(otlp_receiver))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "set_tracer_provider" in line]
    assert len(warnings) == 1, result.stderr
    assert "opentelemetry-python#3275" in warnings[0] and "keeps it" in warnings[0]
    (ours,) = otlp_receiver.wait_for_spans(1, timeout=20)  # theirs went to their pipeline
    assert ours.name == "ours"
    assert result.stdout.split() == ["theirs", ours.trace_id.hex(), ours.span_id.hex()]


NO_IMPORT = """
import sys
from telemetry_run import trace as ours

loaded = lambda: sorted(
    name
    for name in sys.modules
    if name.startswith("opentelemetry.") and not name.startswith("opentelemetry.proto")
    or name.rpartition(".")[2] in ("opentelemetry_api", "_otel_bridge")
)
before = loaded()
with ours.get_tracer("app").start_as_current_span("ours") as span:
    from opentelemetry import trace
    seen = trace.get_current_span().get_span_context().span_id == span.get_span_context().span_id
print(before, type(trace.get_tracer_provider()).__name__, seen)
"""


@pytest.mark.parametrize(
    ("disabled", "provider", "seen"),
    [("", "BridgeTracerProvider", True), ("opentelemetry_api", "ProxyTracerProvider", False)],
)
def test_nothing_is_imported_until_the_app_imports_the_api_and_the_bridge_is_off_by_name(
    tmp_path: Path, disabled: str, provider: str, seen: bool
) -> None:
    (tmp_path / "no_import.py").write_text(textwrap.dedent(NO_IMPORT))
    env = clean_env(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled)
    result = launch([sys.executable, str(tmp_path / "no_import.py")], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", provider, str(seen)], result.stderr
