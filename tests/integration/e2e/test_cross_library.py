"""One trace across the libraries of a typical service, each part a real process (issue 17).

FastAPI under uvicorn -> httpx -> Flask under gunicorn -> psycopg + redis -> a Celery task over
a Redis broker (``telemetry-run celery -A tasks worker``, prefork pool) -> SQLAlchemy over
psycopg in the task. Every process runs under ``telemetry-run`` with its own
``OTEL_SERVICE_NAME`` and exports to the same OTLP receiver; no app has a line of telemetry code.
The worker's spans are read while it runs (its pool process exports on the usual schedule);
the flush at a worker's end is what tests/integration/celery proves.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import attributes, otlp_env, script, served, services_by_span
from tests.integration.conftest import LAUNCHER
from tests.redis_server import RedisServer, running_redis_server

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver
    from tests.postgres_server import PostgresServer

for _module in ("fastapi", "uvicorn", "httpx", "flask", "gunicorn", "psycopg", "redis"):
    pytest.importorskip(_module, reason=f"the {_module} package is not installed")
for _module in ("celery", "sqlalchemy"):
    pytest.importorskip(_module, reason=f"the {_module} package is not installed")

FRONT = """
import os

import httpx
from fastapi import FastAPI

app = FastAPI()
ORDERS = f"http://127.0.0.1:{os.environ['E2E_ORDERS_PORT']}"


@app.get("/shop/{item}")
async def shop(item: int):
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"{ORDERS}/order/{item}", timeout=30)
    return {"order": answer.json()}
"""

ORDERS = """
import os

import flask
import psycopg
import redis

from tasks import record

app = flask.Flask(__name__)
cache = redis.Redis.from_url(os.environ["E2E_CACHE_URL"])


@app.route("/order/<int:item>")
def order(item):
    with psycopg.connect(os.environ["E2E_PG_DSN"]) as conn:
        price = conn.execute("SELECT %s::int * 3", (item,)).fetchone()[0]
    cache.set(f"price:{item}", price)
    cached = int(cache.get(f"price:{item}"))
    record.delay(item, cached)
    return {"item": item, "price": cached}
"""

TASKS = """
import os

import sqlalchemy
from celery import Celery

app = Celery("tasks", broker=os.environ["E2E_BROKER_URL"])
app.conf.broker_connection_retry_on_startup = True
engine = sqlalchemy.create_engine("postgresql+psycopg://" + os.environ["E2E_PG_URL"])


@app.task(name="tasks.record")
def record(item, price):
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE TEMP TABLE sales (item int, price int)"))
        conn.execute(
            sqlalchemy.text("INSERT INTO sales VALUES (:item, :price)"),
            {"item": item, "price": price},
        )
    return price
"""

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER = "b7ad6b7169203331"
KINDS = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
CACHE_DB, BROKER_DB = "0", "1"


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with running_redis_server(tmp_path_factory.mktemp("redis")) as running:
        yield running


def test_one_trace_crosses_fastapi_httpx_flask_postgres_redis_celery_and_sqlalchemy(
    otlp_receiver: OTLPReceiver,
    tmp_path: Path,
    postgres: PostgresServer,
    redis_server: RedisServer,
) -> None:
    uvicorn, gunicorn, celery = script("uvicorn"), script("gunicorn"), script("celery")
    for name, source in [("front.py", FRONT), ("orders.py", ORDERS), ("tasks.py", TASKS)]:
        (tmp_path / name).write_text(textwrap.dedent(source))
    front_port, orders_port = free_port(), free_port()
    redis_base = f"redis://{redis_server.host}:{redis_server.port}"
    common = {
        "PYTHONPATH": str(tmp_path),
        "E2E_ORDERS_PORT": str(orders_port),
        "E2E_CACHE_URL": f"{redis_base}/{CACHE_DB}",
        "E2E_BROKER_URL": f"{redis_base}/{BROKER_DB}",
        "E2E_PG_DSN": postgres.dsn,
        "E2E_PG_URL": postgres.url,
    }

    def env(service: str) -> dict[str, str]:
        return otlp_env(otlp_receiver, OTEL_SERVICE_NAME=service, **common)

    worker_command = [celery, "-A", "tasks", "worker", "--pool", "prefork", "--concurrency", "1"]
    worker_command += ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
    worker_command += ["--without-heartbeat"]
    with ExitStack() as stack:
        # The worker listens on no port (``served`` waits for one): the task waits in the
        # broker's queue until its pool is up.
        worker = stack.enter_context(_worker(worker_command, env("worker"), tmp_path))
        stack.enter_context(
            served(
                [gunicorn, "-w", "1", "-b", f"127.0.0.1:{orders_port}", "orders:app"],
                port=orders_port,
                env=env("orders"),
                cwd=tmp_path,
            )
        )
        front = stack.enter_context(
            served(
                [uvicorn, "front:app", "--host", "127.0.0.1", "--port", str(front_port)],
                port=front_port,
                env=env("front"),
                cwd=tmp_path,
            )
        )
        request = urllib.request.Request(
            front.url("/shop/7"), headers={"traceparent": f"00-{TRACE_ID}-{CALLER}-01"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read()) == {"order": {"item": 7, "price": 21}}
        # Read while the worker runs: its pool process exports on the schedule, not at its end
        # (tests/integration/celery proves the flush at a pool process's end).
        spans = _wait_for_trace(otlp_receiver, worker)
    assert worker.proc.returncode == 0, worker.log.read_text(errors="replace")  # a warm shutdown

    by_kind_name = {(KINDS.get(span.kind), span.name): span for span in spans}
    ids = {span.span_id: span for span in spans}
    services = services_by_span(otlp_receiver)
    front_server = by_kind_name[("SERVER", "GET /shop/{item}")]
    (httpx_client,) = [s for s in spans if "http.request.method" in attributes(s) and s.kind == 3]
    flask_server = by_kind_name[("SERVER", "GET /order/<int:item>")]
    producer = by_kind_name[("PRODUCER", "send tasks.record")]
    consumer = by_kind_name[("CONSUMER", "process tasks.record")]
    assert front_server.parent_span_id.hex() == CALLER
    for child, parent in [
        (httpx_client, front_server),
        (flask_server, httpx_client),
        (producer, flask_server),
        (consumer, producer),
    ]:
        assert child.parent_span_id == parent.span_id, (child.name, parent.name)
    db_spans = [s for s in spans if KINDS.get(s.kind) == "CLIENT" and s is not httpx_client]
    postgres_spans = [s for s in db_spans if attributes(s)["db.system.name"] == "postgresql"]
    redis_spans = [s for s in db_spans if attributes(s)["db.system.name"] == "redis"]
    assert len(postgres_spans) + len(redis_spans) == len(db_spans)
    # psycopg in Flask: one span, under the Flask SERVER span.
    in_flask = [s for s in postgres_spans if s.parent_span_id == flask_server.span_id]
    assert [attributes(s)["db.query.text"] for s in in_flask] == ["SELECT %s::int * ?"]
    # SQLAlchemy over psycopg in the task: one CLIENT span per statement, not one per layer.
    in_task = sorted(
        (s for s in postgres_spans if s.parent_span_id == consumer.span_id),
        key=lambda s: s.start_time_unix_nano,
    )
    assert len(in_flask) + len(in_task) == len(postgres_spans)
    statements = [attributes(s)["db.query.text"] for s in in_task]
    assert [q for q in statements if q.startswith(("CREATE", "INSERT"))] == [
        "CREATE TEMP TABLE sales (item int, price int)",
        "INSERT INTO sales VALUES (%(item)s, %(price)s)",
    ], statements
    # redis: the cache's SET and GET under Flask; the broker's publishing commands (kombu's
    # LPUSH and friends) under the PRODUCER span that sent the message.
    cache = sorted(
        (s for s in redis_spans if attributes(s)["db.namespace"] == CACHE_DB),
        key=lambda s: s.start_time_unix_nano,
    )
    assert [s.name for s in cache] == ["SET", "GET"]
    assert {s.parent_span_id for s in cache} == {flask_server.span_id}
    broker = [s for s in redis_spans if attributes(s)["db.namespace"] == BROKER_DB]
    assert "LPUSH" in [s.name for s in broker]
    assert {s.parent_span_id for s in broker} == {producer.span_id}
    assert len(cache) + len(broker) == len(redis_spans)
    assert "price:7" not in repr([attributes(s) for s in cache])  # keys only when asked for
    assert all(s.parent_span_id in ids for s in spans if s is not front_server)
    assert services[front_server.span_id] == services[httpx_client.span_id] == "front"
    for span in (flask_server, producer, *in_flask, *cache, *broker):
        assert services[span.span_id] == "orders", span.name
    for span in (consumer, *in_task):
        assert services[span.span_id] == "worker", span.name
    assert attributes(front_server)["http.route"] == "/shop/{item}"
    assert attributes(httpx_client)["http.response.status_code"] == 200
    assert attributes(flask_server)["http.route"] == "/order/<int:item>"
    assert consumer.status.code != 2


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def _worker(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[_Worker]:
    """``telemetry-run celery ... worker`` in its own process group, stopped by its PID."""
    log = cwd / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*LAUNCHER, *command],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield _Worker(proc, log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # a warm shutdown: the pool process ends too
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# The last span each process ends: its others (children, ended first) are queued before it.
LAST_SPANS = {"GET /shop/{item}", "GET /order/<int:item>", "process tasks.record"}


def _wait_for_trace(receiver: OTLPReceiver, worker: _Worker) -> list[Any]:
    """The trace's spans once every process's last one came in (45 s: a bound against hangs)."""
    deadline = time.monotonic() + 45
    spans: list[Any] = []
    while not LAST_SPANS.issubset(span.name for span in spans):
        left = deadline - time.monotonic()
        received = len([s for r in receiver.requests for s in r.spans])
        try:
            receiver.wait_for_spans(received + 1, timeout=max(left, 0.0))
        except AssertionError:
            raise AssertionError(worker.log.read_text(errors="replace")) from None
        spans = [s for r in receiver.requests for s in r.spans if s.trace_id.hex() == TRACE_ID]
    return spans
