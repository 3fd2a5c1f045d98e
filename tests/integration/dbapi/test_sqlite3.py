"""``telemetry-run python app.py`` using sqlite3: CLIENT spans over OTLP, no values in them."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from tests.integration.apps import attributes, otlp_env
from tests.integration.conftest import PYTHON, launch

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

APP = """
import sqlite3
import sys
from telemetry_run import trace

connection = sqlite3.connect(sys.argv[1])
with trace.get_tracer("app").start_as_current_span("job"):
    connection.execute("CREATE TABLE users (id INTEGER, email TEXT)")
    connection.executemany("INSERT INTO users VALUES (?, ?)", [(1, "a@x.org"), (2, "b@x.org")])
    for row in connection.execute("SELECT email FROM users WHERE id = 2"):
        print(row[0])
    connection.commit()
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def test_statements_are_client_spans_of_the_trace(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    database = tmp_path / "app.db"
    env = otlp_env(otlp_receiver, OTEL_SERVICE_NAME="app", TELEMETRY_RUN_SQLCOMMENTER="true")
    result = launch([PYTHON, str(app), str(database)], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["b@x.org"]
    spans = otlp_receiver.wait_for_spans(4, timeout=20)
    [job] = [span for span in spans if span.name == "job"]
    statements = sorted(
        (span for span in spans if span.kind == CLIENT_KIND), key=lambda s: s.start_time_unix_nano
    )
    assert [span.name for span in statements] == ["CREATE users", "INSERT users", "SELECT users"]
    assert all(span.parent_span_id == job.span_id for span in statements)
    select = attributes(statements[2])
    assert select["db.system.name"] == "sqlite"
    assert select["db.namespace"] == str(database)
    assert select["db.query.text"] == "SELECT email FROM users WHERE id = ?"
    assert attributes(statements[1])["db.operation.batch.size"] == 2
    assert "x.org" not in repr([attributes(span) for span in spans])
