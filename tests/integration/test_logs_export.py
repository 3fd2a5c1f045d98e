"""Logs export under the real launcher: a Flask server's ``logging`` records arrive at the real
OTLP receiver (gRPC and HTTP) carrying the ids of the span current when they were made, with
exception attributes, while the application's own ``basicConfig`` output is unchanged; a queue
that overflows is counted on the exit line, apart from the spans; unset, nothing is exported."""

from __future__ import annotations

import re
import signal
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from telemetry_run.testing.otlp import free_port as dead_port
from tests.integration.apps import attributes, otlp_env, served
from tests.integration.conftest import PYTHON, clean_env, launch
from tests.integration.test_sigterm import run_until_sigterm

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("flask")

APP = """
import logging

import flask

from telemetry_run import trace

logging.basicConfig(level=logging.INFO, format="APP %(levelname)s %(name)s %(message)s")
log = logging.getLogger("shop.orders")
app = flask.Flask(__name__)
tracer = trace.get_tracer("shop")


@app.route("/orders/<int:order_id>")
def order(order_id):
    log.info("order %d requested", order_id)
    with tracer.start_as_current_span("load_order"):
        log.warning("order %d is slow", order_id)
    return {"id": order_id}


@app.route("/fail")
def fail():
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
    return "handled"
"""

LOGS_LINE = re.compile(
    r" logs produced=(\d+) exported=(\d+) dropped=(\d+) "
    r"\(queue_full=(\d+), export_failed=(\d+), rejected=(\d+), shutdown=(\d+)\)$",
    re.MULTILINE,
)


def _get(url: str) -> int:
    import urllib.request

    request = urllib.request.Request(url, headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=15) as response:
        status: int = response.status
        response.read()
        return status


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_requests_log_records_carry_its_spans_ids_at_the_receiver(
    otlp_receiver: OTLPReceiver, tmp_path: Path, protocol: str
) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else otlp_receiver.http_base
    env = otlp_env(
        otlp_receiver,
        OTEL_SERVICE_NAME="shop",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_BLRP_SCHEDULE_DELAY="100",
        PYTHONPATH=str(tmp_path),
    )
    command = [PYTHON, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    with served(command, port=port, env=env, cwd=tmp_path) as app:
        assert _get(app.url("/orders/7")) == 200
        assert _get(app.url("/fail")) == 200
        spans = otlp_receiver.wait_for_spans(3, timeout=20)
        otlp_receiver.wait_for_log_records(3, timeout=20)
        assert app.stop() in (0, -15)
        output = app.log()

    # The application's logging configuration is its own: basicConfig took effect.
    assert "APP INFO shop.orders order 7 requested" in output
    assert "APP WARNING shop.orders order 7 is slow" in output
    assert "APP ERROR shop.orders lookup failed" in output

    servers = [span for span in spans if span.kind == 2]  # SPAN_KIND_SERVER
    (order_server,) = [span for span in servers if "orders" in span.name]
    (fail_server,) = [span for span in servers if "fail" in span.name]
    (load_order,) = [s for s in spans if s.name == "load_order"]
    ours = [
        (scope, record)
        for request in otlp_receiver.log_requests
        for scope, record in request.scoped_records()
        if scope == "shop.orders"
    ]
    by_body = {record.body.string_value: record for _, record in ours}
    assert sorted(by_body) == ["lookup failed", "order 7 is slow", "order 7 requested"]

    requested = by_body["order 7 requested"]
    assert (requested.trace_id, requested.span_id) == (order_server.trace_id, order_server.span_id)
    assert (requested.severity_number, requested.severity_text) == (9, "INFO")
    assert requested.flags & 1
    assert requested.time_unix_nano and requested.observed_time_unix_nano

    slow = by_body["order 7 is slow"]
    assert (slow.trace_id, slow.span_id) == (load_order.trace_id, load_order.span_id)
    assert (slow.severity_number, slow.severity_text) == (13, "WARNING")

    failed = by_body["lookup failed"]
    assert (failed.trace_id, failed.span_id) == (fail_server.trace_id, fail_server.span_id)
    assert failed.severity_number == 17
    exception = attributes(failed)
    assert exception["exception.type"] == "KeyError"
    assert exception["exception.message"] == "'missing'"
    assert exception["exception.stacktrace"].startswith("Traceback (most recent call last)")
    assert exception["code.function.name"] == "fail"

    for request in otlp_receiver.log_requests:
        resource = {
            kv.key: kv.value.string_value
            for kv in request.request.resource_logs[0].resource.attributes
        }
        assert resource["service.name"] == "shop"
    scopes = {
        scope for request in otlp_receiver.log_requests for scope, _ in request.scoped_records()
    }
    assert not any(scope.startswith("telemetry_run") for scope in scopes)


OVERFLOW = """
import logging

log = logging.getLogger("batch.job")
for n in range(200):
    log.warning("item %d", n)
"""


def test_a_queue_that_overflows_is_counted_on_the_exit_line_apart_from_spans(
    tmp_path: Path,
) -> None:
    script = tmp_path / "job.py"
    script.write_text(OVERFLOW)
    env = clean_env(
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"http://127.0.0.1:{dead_port()}",
        OTEL_BLRP_MAX_QUEUE_SIZE="5",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="1000",
    )
    result = launch([PYTHON, str(script)], env)
    assert result.returncode == 0, result.stderr
    match = LOGS_LINE.search(result.stderr)
    assert match is not None, result.stderr
    produced, exported, dropped, queue_full, failed, rejected, shutdown = map(int, match.groups())
    assert (produced, exported, dropped) == (200, 0, 200)
    assert queue_full > 0
    assert queue_full + failed + rejected + shutdown == dropped
    assert "telemetry-run: spans produced=0 exported=0 dropped=0" in result.stderr
    assert "dropped" in result.stderr.split("telemetry-run: spans")[0]  # the first drop, logged
    assert "log record(s)" in result.stderr


def test_unset_nothing_is_exported_and_console_prints_a_line_per_record(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text("import logging\nlogging.getLogger('job').error('disk %s full', 'sda')\n")
    quiet = launch(
        [PYTHON, str(script)],
        clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.grpc_endpoint, OTEL_BLRP_SCHEDULE_DELAY="1"
        ),
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "disk sda full\n"  # logging's last resort, as without us
    assert " logs " not in quiet.stderr
    printed = launch([PYTHON, str(script)], clean_env(OTEL_LOGS_EXPORTER="console"))
    assert printed.returncode == 0, printed.stderr
    assert printed.stderr == "disk sda full\n"
    (line,) = printed.stdout.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT[\d:.]+Z ERROR job 'disk sda full' trace=0{32} span=0{16}", line
    ), line
    assert otlp_receiver.log_requests == []


FORWARDING = """
import logging


class Forward(logging.Handler):
    # Copies telemetry-run's own warnings into the app's logger, from whatever thread they
    # come (the export worker's, when the collector is down).
    def emit(self, record):
        logging.getLogger("app.audit").warning("telemetry: %s", record.getMessage())


logging.getLogger("telemetry_run").addHandler(Forward())
for n in range(3):
    logging.getLogger("app").warning("work %d", n)
"""


def test_what_is_logged_inside_the_export_path_is_never_exported(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text(FORWARDING)
    env = clean_env(
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT=f"http://127.0.0.1:{dead_port()}",
        OTEL_BLRP_SCHEDULE_DELAY="10",
        OTEL_EXPORTER_OTLP_TIMEOUT="300",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="1000",
    )
    result = launch([PYTHON, str(script)], env)
    assert result.returncode == 0, result.stderr
    # Our warnings were forwarded into the app's logger (logging's last resort prints them)...
    assert "telemetry: OTLP export to" in result.stderr
    match = LOGS_LINE.search(result.stderr)
    assert match is not None, result.stderr
    # ...but only the app's own three records were ever produced for export.
    produced, exported, dropped = map(int, match.groups()[:3])
    assert (produced, exported, dropped) == (3, 0, 3)


CHILDREN = """
import logging
import multiprocessing

log = logging.getLogger("app.jobs")


def work(n):
    log.warning("child %d done", n)


if __name__ == "__main__":
    log.warning("queued before the fork")
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=work, args=(n,)) for n in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    log.warning("parent done")
"""


def test_forked_children_ship_their_own_records_and_never_their_parents(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    script = tmp_path / "jobs.py"
    script.write_text(CHILDREN)
    env = clean_env(
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.grpc_endpoint,
        OTEL_BLRP_SCHEDULE_DELAY="60000",  # nothing leaves before each process's exit flush
    )
    result = launch([PYTHON, str(script)], env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("queued before the fork") == 1  # logging's last resort
    records = otlp_receiver.wait_for_log_records(4)
    assert sorted(r.body.string_value for r in records) == [
        "child 0 done",
        "child 1 done",
        "parent done",
        "queued before the fork",
    ]


WAITING = """
import logging, time

logging.getLogger().addHandler(logging.NullHandler())
logging.getLogger("app").warning("before term")
print("ready", flush=True)
for _ in range(600):
    time.sleep(0.1)
"""


def test_sigterm_delivers_the_queued_records_before_the_process_dies(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(WAITING)
    env = clean_env(
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base,
        OTEL_BLRP_SCHEDULE_DELAY="60000",  # only the exit path can deliver
    )
    code, _out, err = run_until_sigterm(str(app), env)
    assert code == -signal.SIGTERM, err
    (record,) = otlp_receiver.wait_for_log_records(1)
    assert record.body.string_value == "before term"
    assert err == ""  # delivered: no exit line
