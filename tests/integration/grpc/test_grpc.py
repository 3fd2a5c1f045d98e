"""A gRPC server and a gRPC client, each a real process under telemetry-run, one trace over OTLP.

Both export to the ``otlp_receiver`` fixture over OTLP/gRPC, so this also shows that the
exporter's own Export calls make no span: the receiver gets the application's spans only.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, served
from tests.integration.conftest import LAUNCHER, PYTHON

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("grpc")

SERVER = """
import sys
from concurrent import futures

import grpc
from telemetry_run import trace

tracer = trace.get_tracer("inventory")


def lookup(request, context):
    if request == b"missing":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such item")
    if request == b"boom":
        raise ValueError("kaput")
    with tracer.start_as_current_span("load_item"):
        return b"item:" + request


def watch(request, context):
    for i in range(3):
        yield b"%s-%d" % (request, i)


handler = grpc.method_handlers_generic_handler(
    "shop.v1.Inventory",
    {
        "Lookup": grpc.unary_unary_rpc_method_handler(lookup),
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
    },
)
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
server.wait_for_termination()
"""

CLIENT = """
import sys

import grpc
from telemetry_run import trace

with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as channel:
    lookup = channel.unary_unary("/shop.v1.Inventory/Lookup")
    watch = channel.unary_stream("/shop.v1.Inventory/Watch")
    with trace.get_tracer("client").start_as_current_span("job"):
        print(lookup(b"42", timeout=10).decode())
        print(",".join(item.decode() for item in watch(b"w", timeout=10)))
        for request in (b"missing", b"boom"):
            try:
                lookup(request, timeout=10)
            except grpc.RpcError as exc:
                print(exc.code().name)
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT
SERVER_KIND = 2  # SPAN_KIND_SERVER
UNSET, ERROR = 0, 2  # Status.STATUS_CODE_UNSET, STATUS_CODE_ERROR
LOOKUP = "shop.v1.Inventory/Lookup"
WATCH = "shop.v1.Inventory/Watch"


def services(receiver: OTLPReceiver) -> dict[bytes, str]:
    """span_id -> the service.name of the process that exported it."""
    found: dict[bytes, str] = {}
    for request in receiver.requests:
        for resource_spans in request.request.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found[span.span_id] = resource["service.name"]
    return found


def test_a_call_between_two_processes_is_one_trace(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    (tmp_path / "server.py").write_text(textwrap.dedent(SERVER))
    (tmp_path / "client.py").write_text(textwrap.dedent(CLIENT))
    port = free_port()
    server_env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="inventory")
    with served(
        [PYTHON, str(tmp_path / "server.py"), str(port)], port=port, env=server_env, cwd=tmp_path
    ) as server:
        result = subprocess.run(
            [*LAUNCHER, PYTHON, str(tmp_path / "client.py"), str(port)],
            env=otlp_env(otlp_receiver, OTEL_SERVICE_NAME="storefront"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr + server.log()
        assert result.stdout.split() == ["item:42", "w-0,w-1,w-2", "NOT_FOUND", "UNKNOWN"]
        # client: job + 4 calls; server: 4 calls + load_item
        spans = otlp_receiver.wait_for_spans(10, timeout=30)
    names = sorted(span.name for span in spans)
    assert names == sorted(["job", "load_item", *[LOOKUP] * 6, *[WATCH] * 2]), names  # no Export

    by_service = services(otlp_receiver)
    (job,) = [span for span in spans if span.name == "job"]
    clients = sorted(
        (span for span in spans if span.kind == CLIENT_KIND), key=lambda s: s.start_time_unix_nano
    )
    servers = {span.parent_span_id: span for span in spans if span.kind == SERVER_KIND}
    assert len(clients) == 4 and len(servers) == 4
    assert {span.trace_id for span in spans} == {job.trace_id}
    for client in clients:
        assert client.parent_span_id == job.span_id
        assert by_service[client.span_id] == "storefront"
        server_span = servers[client.span_id]  # the server continued the client's span
        assert server_span.name == client.name
        assert by_service[server_span.span_id] == "inventory"

    ok, stream, missing, boom = clients
    assert [ok.name, stream.name, missing.name, boom.name] == [LOOKUP, WATCH, LOOKUP, LOOKUP]
    assert attributes(ok) == {
        "rpc.system": "grpc",
        "rpc.service": "shop.v1.Inventory",
        "rpc.method": "Lookup",
        "server.address": "127.0.0.1",
        "server.port": port,
        "rpc.grpc.status_code": 0,
    }
    served_ok = attributes(servers[ok.span_id])
    assert served_ok["rpc.method"] == "Lookup" and served_ok["rpc.grpc.status_code"] == 0
    assert served_ok["network.peer.address"] == "127.0.0.1"
    (load_item,) = [span for span in spans if span.name == "load_item"]
    assert load_item.parent_span_id == servers[ok.span_id].span_id
    assert attributes(stream)["rpc.grpc.status_code"] == 0

    _check_status(missing, code=5, status=ERROR, error_type="NOT_FOUND")
    _check_status(servers[missing.span_id], code=5, status=UNSET, error_type=None)
    assert not servers[missing.span_id].events
    _check_status(boom, code=2, status=ERROR, error_type="UNKNOWN")
    _check_status(servers[boom.span_id], code=2, status=ERROR, error_type="UNKNOWN")
    (event,) = servers[boom.span_id].events
    assert event.name == "exception"
    assert {kv.key: kv.value.string_value for kv in event.attributes}["exception.type"] == (
        "ValueError"
    )


def _check_status(span: Any, *, code: int, status: int, error_type: str | None) -> None:
    found = attributes(span)
    assert found["rpc.grpc.status_code"] == code
    assert found.get("error.type") == error_type
    assert span.status.code == status
