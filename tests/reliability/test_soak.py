"""Soak: a Flask app under telemetry-run (gunicorn, 2 workers) takes load from a second process
while the collector is healthy, down, slow, refusing (UNAVAILABLE), then healthy again.

Every request must be answered; the app's median latency while the collector misbehaves stays
within 1.2x the healthy median + 1 ms of the same run; each worker's memory stays bounded; and
the accounting is exact: every span the app produced was received or counted as lost on the
exit line. ``SOAK_REQUESTS`` sets the requests per phase (CI: 1,500; the issue's 20,000 in all
is ``SOAK_REQUESTS=4000``).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.apps import free_port, otlp_env, script, served

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

APP = """
import os
import flask
from telemetry_run import trace

app = flask.Flask(__name__)
PAGE = os.sysconf("SC_PAGE_SIZE")


@app.route("/work/<int:n>")
def work(n):
    span = trace.get_current_span().get_span_context()
    with open("/proc/self/statm") as statm:
        rss = int(statm.read().split()[1]) * PAGE
    return {"n": n, "span": f"{span.span_id:016x}", "pid": os.getpid(), "rss": rss}
"""

LOAD = Path(__file__).with_name("load.py")  # shared with bench/reliability_peers.py

EXIT_LINE = re.compile(
    r"telemetry-run: spans produced=(\d+) exported=(\d+) dropped=(\d+) "
    r"\(queue_full=(\d+), export_failed=(\d+), rejected=(\d+), shutdown=(\d+)\)"
)
PER_PHASE = int(os.environ.get("SOAK_REQUESTS", "1500"))
CONCURRENCY = 4


def _load(tmp_path: Path, port: int) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(LOAD), str(port), str(PER_PHASE), str(CONCURRENCY)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_soak_with_the_collector_down_slow_refusing_then_healthy(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    receiver = OTLPReceiver().start()
    port = free_port()
    env = otlp_env(
        receiver,
        PYTHONPATH=str(tmp_path),
        OTEL_EXPORTER_OTLP_TIMEOUT="1500",  # the slow phase's 2 s answers time out
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="5000",
    )
    command = [script("gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "app:app"]
    phases: dict[str, list[dict[str, Any]]] = {}
    try:
        with served(command, port=port, env=env, cwd=tmp_path) as app:
            phases["healthy"] = _load(tmp_path, port)
            receiver.stop()
            phases["down"] = _load(tmp_path, port)
            receiver.restart()
            receiver.answer_slowly(2.0)
            phases["slow"] = _load(tmp_path, port)
            receiver.clear_faults()
            receiver.fail_next(1_000_000, grpc_code="UNAVAILABLE")
            phases["refusing"] = _load(tmp_path, port)
            receiver.clear_faults()
            phases["healthy again"] = _load(tmp_path, port)
            assert app.stop() == 0, app.log()
            log = app.log()
        received = Counter(span.span_id.hex() for span in receiver.spans())
    finally:
        receiver.stop()

    # Every request answered correctly.
    for name, results in phases.items():
        assert len(results) == PER_PHASE, name
        assert all(r["status"] == 200 for r in results), name
        assert sorted(r["n"] for r in results) == list(range(PER_PHASE)), name

    # The app is not slower while the collector misbehaves.
    medians = {name: statistics.median(r["took"] for r in rs) for name, rs in phases.items()}
    healthy = statistics.median(
        r["took"] for name in ("healthy", "healthy again") for r in phases[name]
    )
    for name in ("down", "slow", "refusing"):
        assert medians[name] <= 1.2 * healthy + 0.001, (name, medians)

    # Memory bounded: no worker grows with the request count once its queue has filled.
    by_pid: dict[int, list[int]] = {}
    for results in phases.values():
        for r in results:
            by_pid.setdefault(r["pid"], []).append(r["rss"])
    for pid, samples in by_pid.items():
        early = max(samples[: len(samples) // 3])
        assert max(samples) <= early + 24 * 1024 * 1024, (pid, early, max(samples))

    # Exact accounting: what did not arrive is counted on the exit lines.
    produced = {r["span"] for rs in phases.values() for r in rs}
    lines = [tuple(int(g) for g in m.groups()) for m in EXIT_LINE.finditer(log)]
    dropped = sum(line[2] for line in lines)
    missing = produced - set(received)
    assert len(missing) <= dropped, (len(missing), lines)
    # (only a worker that lost something prints its line)
    assert sum(line[0] for line in lines) <= len(produced), lines
    # A span arrives twice only when an export failed in transit and was sent again (the answer
    # lost when the collector stopped, or later than the export timeout): never while the
    # collector is healthy throughout.
    twice = {span for span, n in received.items() if n > 1}
    calm = {r["span"] for r in phases["healthy again"][PER_PHASE // 2 :]}
    assert not twice & calm, len(twice & calm)
    print(
        "soak medians (ms):",
        {name: round(m * 1000, 2) for name, m in medians.items()},
        "received",
        len(received),
        "of",
        len(produced),
        "exit lines",
        lines,
        "sent twice",
        len(twice),
    )
