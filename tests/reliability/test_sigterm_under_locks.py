"""SIGTERM while the main thread is inside the locks the flush needs (issue 13, section 2).

A Python signal handler runs in the main thread between two bytecodes of whatever it
interrupted. The app below spends its time inside the provider's lock (a new tracer), the
batch processor's (``force_flush``), the diagnostics' (``warn``) and logging's module and
handler locks, with the collector down so the flush itself must take them (its failed export
is logged through the diagnostics). A flush run in the signal frame would wait for its own
thread: a hang until SIGKILL (main did, within a dozen runs). Each run must die by SIGTERM,
with every span accounted for on the exit line.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

from telemetry_run.testing.otlp import free_port
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env
from tests.integration.test_launcher import EXIT_LINE

APP = """
import logging, sys, time
from telemetry_run import trace
from telemetry_run.sdk.diagnostics import get_diagnostics

logging.basicConfig(filename=sys.argv[1], level=logging.WARNING)
log = logging.getLogger("app")
provider = trace.get_tracer_provider()
diagnostics = get_diagnostics()
print("ready", flush=True)
i = 0
end = time.monotonic() + 60
while time.monotonic() < end:
    trace.get_tracer(f"library-{i}").start_span("busy").end()  # the provider's lock
    provider.force_flush(0)  # the batch processor's lock
    diagnostics.warn(f"app-{i % 4}", "app warning %d", i)  # the diagnostics' lock
    log.warning("app line %d", i)  # logging's locks
    i += 1
print("not stopped", flush=True)
"""

RUNS = 12
SHUTDOWN_MS = 300


def test_sigterm_inside_the_flushs_locks_never_hangs(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}",  # nobody listens
        OTEL_BSP_SCHEDULE_DELAY="50",
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT=str(SHUTDOWN_MS),
    )
    rng = random.Random(13)
    for run in range(RUNS):
        with subprocess.Popen(
            [*LAUNCHER, PYTHON, str(app), str(tmp_path / f"app-{run}.log")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as proc:
            try:
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready"
                time.sleep(rng.uniform(0.05, 0.4))  # somewhere in the loop: a different place
                proc.send_signal(signal.SIGTERM)
                try:
                    out, err = proc.communicate(timeout=30)  # only catches a hang
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"run {run}: hung after SIGTERM") from None
            finally:
                proc.kill()
        assert proc.returncode == -signal.SIGTERM, (run, out, err)
        match = EXIT_LINE.search(err)
        assert match is not None, (run, err)
        produced, exported, dropped = map(int, match.groups()[:3])
        assert produced > 0
        assert exported == 0
        assert produced == dropped, (run, err)
