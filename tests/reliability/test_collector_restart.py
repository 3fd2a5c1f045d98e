"""The collector restarts while the app runs: the gRPC channel and the HTTP connection recover
by themselves, and every span is either received or counted on the exit line."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.apps import endpoint_env
from tests.integration.conftest import LAUNCHER

APP = """
import time
from telemetry_run import trace

tracer = trace.get_tracer("ticker")
for i in range(TICKS):
    with tracer.start_as_current_span(f"tick-{i}"):
        pass
    time.sleep(0.05)
print("done", flush=True)
"""
TICKS = 60
EXIT_LINE = re.compile(r"telemetry-run: spans produced=(\d+) exported=(\d+) dropped=(\d+)")


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_exports_resume_after_the_collector_restarts(tmp_path: Path, protocol: str) -> None:
    app = tmp_path / "ticker.py"
    app.write_text(textwrap.dedent(APP).replace("TICKS", str(TICKS)))
    receiver = OTLPReceiver().start()
    try:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base
        env = endpoint_env(
            endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_TIMEOUT="1000",
            TELEMETRY_RUN_SHUTDOWN_TIMEOUT="3000",
        )
        proc = subprocess.Popen(
            [*LAUNCHER, sys.executable, str(app)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            receiver.wait_for_spans(5, timeout=20)
            receiver.stop()  # the collector goes away mid-stream ...
            time.sleep(0.8)
            receiver.restart()  # ... and comes back on the same port
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        assert proc.returncode == 0, err
        assert out == "done\n"
        received = {span.name for span in receiver.spans()}
    finally:
        receiver.stop()
    assert f"tick-{TICKS - 1}" in received, sorted(received)  # exports resumed after the restart
    match = EXIT_LINE.search(err)
    dropped = int(match.group(3)) if match else 0
    if match:
        assert int(match.group(1)) == TICKS
    # Every span is accounted for: each one not received is counted as lost on the exit line.
    missing = TICKS - len(received)
    assert missing <= dropped, (missing, dropped, err)
