"""The README's demo under ``telemetry-run``: the console exporter draws each trace as a waterfall.

Real processes: the launcher, the Flask demo app served by werkzeug and called with requests,
the SDK's batch processor delivering the spans to the console exporter in end order.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import LAUNCHER, PYTHON, clean_env, launch

pytest.importorskip("flask", reason="the demo app needs flask")
pytest.importorskip("requests", reason="the demo app calls itself with requests")

DEMO = Path(__file__).resolve().parents[2] / "examples" / "flask_demo.py"
HEADER = re.compile(r"^trace [0-9a-f]{32} \| (.*)$", re.M)


def _tree(stdout: str) -> list[str]:
    """The name column of each waterfall line (tree prefix and span name)."""
    cells = []
    for line in stdout.splitlines():
        if HEADER.match(line) is None:
            bar = re.match(r"^(.*?) {2,}[█#]", line)  # a marker line has no bar
            cells.append(bar.group(1) if bar else line)
    return cells


def test_the_readme_demo_prints_one_waterfall_for_its_trace() -> None:
    result = launch(
        [PYTHON, str(DEMO)],
        clean_env(
            OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="demo", PYTHONIOENCODING="utf-8"
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning, every span delivered (no exit line)
    app_lines, waterfall = result.stdout.split("\n", 2)[:2], result.stdout.split("\n", 2)[2]
    assert app_lines == ["GET /users/42 -> {'id': 42, 'name': 'user-42'}", "POST /checkout -> 500"]
    (summary,) = HEADER.findall(waterfall)
    assert re.fullmatch(r"demo \| 6 spans \| [0-9.]+ (µs|ms|s) \| 2 errors", summary), summary
    # The Flask server spans continue the requests calls' traceparent: they nest under them.
    assert _tree(waterfall) == [
        "demo client",
        "├─ GET",
        "│  └─ GET /users/<int:user_id>",
        "│     └─ load_user",
        "└─ POST",
        "   └─ POST /checkout",
    ]
    lines = waterfall.splitlines()
    assert lines[3].endswith("server route=/users/<int:user_id> status=200")
    assert lines[6].endswith(
        "server ✗ ERROR: RuntimeError: payment service unavailable route=/checkout status=500"
    )
    assert "\x1b" not in result.stdout  # a pipe gets no colour


def test_a_stream_that_cannot_encode_box_drawing_gets_an_ascii_waterfall() -> None:
    result = launch(
        [PYTHON, str(DEMO)],
        clean_env(OTEL_TRACES_EXPORTER="console", PYTHONIOENCODING="ascii"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "+- GET" in result.stdout and "`- POST /checkout" in result.stdout
    assert "x ERROR: RuntimeError: payment service unavailable" in result.stdout


def test_a_span_continuing_another_process_hangs_under_a_remote_parent_marker(
    tmp_path: Path,
) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "from telemetry_run import propagate, trace\n"
        "carrier = {'traceparent': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'}\n"
        "tracer = trace.get_tracer('app')\n"
        "with tracer.start_as_current_span('handle', context=propagate.extract(carrier)):\n"
        "    tracer.start_span('child').end()\n"
    )
    result = launch(
        [PYTHON, str(app)],
        clean_env(OTEL_TRACES_EXPORTER="console", PYTHONIOENCODING="utf-8"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("trace 4bf92f3577b34da6a3ce929d0e0e4736 | ")
    assert _tree(result.stdout) == [
        "⇠ remote parent 00f067aa0ba902b7 (another process)",
        "└─ handle",
        "   └─ child",
    ]


def test_spans_held_for_a_root_still_open_at_sigterm_are_printed(tmp_path: Path) -> None:
    # 'db query' is exported (so the counts call the process idle) but held by the console
    # exporter, waiting for its root: SIGTERM's flush must still print it.
    app = tmp_path / "app.py"
    app.write_text(
        "import time\n"
        "from telemetry_run import trace\n"
        "from telemetry_run.sdk import get_diagnostics\n"
        "tracer = trace.get_tracer('app')\n"
        "root = tracer.start_span('request')\n"
        "with trace.use_span(root):\n"
        "    tracer.start_span('db query').end()\n"
        "for _ in range(3000):  # until the batch processor has exported it, 30 s at most\n"
        "    if get_diagnostics().snapshot()['exported'] == 1:\n"
        "        break\n"
        "    time.sleep(0.01)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [*LAUNCHER, PYTHON, str(app)],
        env=clean_env(
            OTEL_TRACES_EXPORTER="console",
            OTEL_BSP_SCHEDULE_DELAY="10",
            OTEL_SERVICE_NAME="svc",
            PYTHONIOENCODING="utf-8",
        ),
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM
    lines = out.splitlines()
    assert re.fullmatch(
        r"trace [0-9a-f]{32} \| svc \| 1 span \| [0-9.]+ (µs|ms) "
        r"\| printed at exit: its local root had not ended",
        lines[0],
    ), out
    assert re.fullmatch(r"\? parent [0-9a-f]{16} \(not in this output\)", lines[1]), out
    assert _tree(out)[1:] == ["└─ db query"]
