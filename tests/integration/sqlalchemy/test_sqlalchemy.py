"""``telemetry-run python app.py`` on SQLAlchemy: one span per statement over the traced driver."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.integration.apps import attributes, otlp_env
from tests.integration.conftest import PYTHON, launch

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("sqlalchemy", reason="sqlalchemy is not installed")

APP = """
import sys
import sqlalchemy
from telemetry_run import trace

engine = sqlalchemy.create_engine("sqlite:///" + sys.argv[1])
with engine.begin() as conn:
    conn.execute(sqlalchemy.text("SELECT 1"))  # the dialect's set-up happens here
with trace.get_tracer("app").start_as_current_span("job"), engine.begin() as conn:
    conn.execute(sqlalchemy.text("CREATE TABLE users (id INTEGER, email TEXT)"))
    conn.execute(
        sqlalchemy.text("INSERT INTO users VALUES (:id, :email)"),
        [{"id": 1, "email": "a@x.org"}, {"id": 2, "email": "b@x.org"}],
    )
    print(conn.execute(sqlalchemy.text("SELECT email FROM users WHERE id = 2")).scalar())
"""

CLIENT_KIND = 3  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_CLIENT


def test_one_span_per_statement_not_one_per_driver(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(APP))
    result = launch([PYTHON, str(app), str(tmp_path / "app.db")], otlp_env(otlp_receiver))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["b@x.org"]
    spans = otlp_receiver.wait_for_spans(4, timeout=20)
    [job] = [span for span in spans if span.name == "job"]
    statements = sorted(
        (span for span in spans if span.parent_span_id == job.span_id),
        key=lambda s: s.start_time_unix_nano,
    )
    # BEGIN/COMMIT are no statements of the application's: the driver handles them.
    assert [span.name for span in statements] == ["CREATE users", "INSERT users", "SELECT users"]
    assert all(span.kind == CLIENT_KIND for span in statements)
    select = attributes(statements[2])
    assert select["db.system.name"] == "sqlite"
    assert select["db.query.text"] == "SELECT email FROM users WHERE id = ?"
    assert "x.org" not in repr([attributes(span) for span in spans])
