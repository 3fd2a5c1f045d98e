"""``os.fork()`` while the parent's exporter is in the middle of an export (its locks held,
its connection busy): the child neither deadlocks nor resends the parent's spans, and its own
spans arrive over HTTP. Over gRPC they arrive or are counted on the child's exit line: gRPC's
core cannot be used in a child forked while one of its calls is in flight ("Other threads are
currently calling into gRPC, skipping fork() handlers"), whatever the exporter does; see the
README's Servers section."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.apps import endpoint_env
from tests.integration.conftest import LAUNCHER

EXIT_LINE = re.compile(r"telemetry-run: spans produced=(\d+) exported=(\d+) dropped=(\d+)")

APP = """
import os
import sys
import threading
import time

from telemetry_run import trace

tracer = trace.get_tracer("forker")
for i in range(20):
    with tracer.start_as_current_span(f"parent-{i}"):
        pass
provider = trace.get_tracer_provider()
flushing = threading.Thread(target=provider.force_flush, args=(10,))
flushing.start()  # the receiver answers slowly: the export is in flight while we fork
time.sleep(0.3)
pid = os.fork()
if pid == 0:
    for i in range(5):
        with tracer.start_as_current_span(f"child-{i}"):
            pass
    sys.exit(0)  # the child's exit hook flushes its own spans
flushing.join()
_, status = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_fork_during_an_export(tmp_path: Path, protocol: str) -> None:
    app = tmp_path / "forker.py"
    app.write_text(textwrap.dedent(APP))
    with OTLPReceiver() as receiver:
        receiver.answer_slowly(1.0)
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base
        env = endpoint_env(
            endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_BSP_SCHEDULE_DELAY="3600000",
            TELEMETRY_RUN_SHUTDOWN_TIMEOUT="5000",
        )
        result = subprocess.run(
            [*LAUNCHER, sys.executable, str(app)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,  # a deadlocked child would hold its parent's waitpid until here
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == "child exit 0\n", result.stderr
        receiver.wait_for_spans(20, timeout=20)
        spans = receiver.spans()  # the child's, if any, were sent before it exited
    names = Counter(span.name for span in spans)
    parents = Counter({f"parent-{i}": 1 for i in range(20)})
    children = Counter({f"child-{i}": 1 for i in range(5)})
    if protocol == "grpc" and names == parents:
        lost = EXIT_LINE.search(result.stderr)
        assert lost is not None, result.stderr  # not delivered, but never silently
        assert lost.groups() == ("5", "0", "5"), result.stderr
    else:
        assert names == parents + children, names
