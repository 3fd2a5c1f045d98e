"""Log lines of an app under the launcher carry the ids of the span the receiver got (#16)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env

APP = """
import logging, sys
from telemetry_run import trace

# The application's own configuration, untouched by us; the format names our fields.
logging.basicConfig(
    stream=sys.stdout,
    level=logging.INFO,
    format="%(otelTraceID)s %(otelSpanID)s %(otelTraceSampled)s %(otelServiceName)s %(message)s",
)
log = logging.getLogger("app")
log.info("before")
with trace.get_tracer("app").start_as_current_span("checkout"):
    log.info("inside")
log.info("after")
"""


def _run(tmp_path: Path, receiver: OTLPReceiver, **env: str) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    return subprocess.run(
        [*LAUNCHER, PYTHON, str(app)],
        env=clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.http_base,
            OTEL_SERVICE_NAME="shop",
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=60,  # only catches a hang
        check=False,
    )


def test_a_line_logged_in_a_span_carries_the_exported_spans_ids(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    result = _run(tmp_path, otlp_receiver)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    (span,) = otlp_receiver.wait_for_spans(1)
    assert result.stdout.splitlines() == [
        "0 0 False shop before",
        f"{span.trace_id.hex()} {span.span_id.hex()} True shop inside",
        "0 0 False shop after",
    ]


def test_a_bad_log_correlation_value_warns_once_and_keeps_the_default(
    otlp_receiver: OTLPReceiver, tmp_path: Path
) -> None:
    result = _run(tmp_path, otlp_receiver, OTEL_PYTHON_LOG_CORRELATION="on")
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "telemetry-run: OTEL_PYTHON_LOG_CORRELATION='on' is not a boolean (true or false); "
        "using the default (true)\n"
    )
    (span,) = otlp_receiver.wait_for_spans(1)
    assert f"{span.span_id.hex()} True shop inside" in result.stdout
