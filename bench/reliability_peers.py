"""Our reliability scenarios (soak, SIGTERM in flight) under telemetry-run, opentelemetry-instrument
and ddtrace-run, side by side: what each loses, what it says about it, its exit time, its memory.

Scenarios (the same Flask app throughout, under gunicorn with 2 workers, started by each launcher
in its own process group; the OTLP receiver is ``telemetry_run.testing.otlp.OTLPReceiver``):

  soak     tests/reliability/test_soak.py: a load generator (a second process, 4 threads, one
           connection per request) sends N requests in each of 5 phases while the collector is
           healthy, down (stopped), slow (answers after 2 s; exporters time out at 1.5 s),
           refusing (UNAVAILABLE / HTTP 503), healthy again. Each response carries the id of the
           current span, read with the launcher's own API, and the worker's RSS (/proc/self/statm),
           so spans produced vs received (deduplicated by span id) give the loss exactly.
  sigterm  tests/reliability/test_shutdown_in_flight.py: 4 requests of 1 s each in flight
           (gunicorn -w 2 --threads 2), SIGTERM to gunicorn 0.4 s in; the collector up, then
           down (a loopback port nothing listens on); nothing is exported before the exit flush.

ddtrace 4.x exports OTLP itself when ``OTEL_TRACES_EXPORTER=otlp`` (native writer, OTLP/HTTP only:
http/protobuf or http/json), so it is pointed at the receiver's HTTP port; ours and
opentelemetry-instrument use OTLP/gRPC as the tests do. ddtrace's "produced" span per request is
its local root (``flask.request``, the SERVER span), read with ``tracer.current_root_span()``.

Each soak cell is the median of 3 rounds (``--rounds``), the launchers taking turns within a round
and the order rotating between rounds; each SIGTERM cell the median of 3 runs, likewise.

    python bench/reliability_peers.py [--quick] [-v] [--scenarios soak,sigterm] [--requests N]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import DD_NO_AGENT, DD_QUIET, versions

from telemetry_run.testing.otlp import free_port

TRACED = ("us", "otel", "dd")
LAUNCHERS = ("bare", *TRACED)  # bare: gunicorn alone, the reference row
LABELS = {
    "bare": "gunicorn alone",
    "us": "telemetry-run",
    "otel": "opentelemetry-instrument",
    "dd": "ddtrace-run",
}
SHORT = {**LABELS, "bare": "(no launcher)", "otel": "otel-instrument"}
SCENARIOS = ("soak", "sigterm")
PHASES = ("healthy", "down", "slow", "refusing", "healthy again")
FAULT_PHASES = ("down", "slow", "refusing")
CONCURRENCY = 4  # load-generator threads (test_soak.py)
SLOW_ANSWER = 2.0  # seconds the slow collector waits before answering
SOAK_OTLP_TIMEOUT_MS = 1500  # so the slow phase's answers time out
SOAK_SCHEDULE_MS = 100  # tests/integration/apps.py otlp_env
SOAK_SHUTDOWN_MS = 5000
SIGTERM_SHUTDOWN_MS = 2000  # test_shutdown_in_flight.py
SIGTERM_SCHEDULE_MS = 3_600_000  # nothing leaves before the exit flush
IN_FLIGHT = 4
PROBES = 1  # readiness requests each server answers (and traces) before the scenario
SIGTERM_AFTER = 0.4
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 45.0  # above gunicorn's 30 s graceful timeout: its own bound shows
CLEANUP_TIMEOUT = 10.0
LOAD_TIMEOUT = 900.0  # one phase of the load generator
REQUEST_TIMEOUT = 30.0
ARRIVAL_WAIT = 3.0  # after the server exited, for the last export to be recorded
FULL = {"requests": 1500, "sigterm_runs": 3, "soak_rounds": 3}
QUICK = {"requests": 300, "sigterm_runs": 1, "soak_rounds": 1}
OTLP_EXPORTER_DIST = "opentelemetry-exporter-otlp-proto-grpc"

# The telemetry-off settings of span_start_end.py; the agent is a unix socket that does not
# exist, so nothing but the OTLP export leaves the process.
DD_ENV = {
    **DD_QUIET,
    **DD_NO_AGENT,
    "OTEL_TRACES_SPAN_METRICS_ENABLED": "false",
}

EXIT_LINE = re.compile(
    r"telemetry-run: spans produced=(\d+) exported=(\d+) dropped=(\d+) "
    r"\(queue_full=(\d+), export_failed=(\d+), rejected=(\d+), shutdown=(\d+)\)"
)
DD_DROPPING = re.compile(r"dropping (\d+) traces")
DD_SKIPPED = re.compile(r"(\d+) additional messages skipped")
GUNICORN_INFO = re.compile(r"^\[[^\]]+\] \[\d+\] \[(?:INFO|DEBUG)\] ")
LOSS_HINT = re.compile(
    r"drop|lost|fail|error|unavailable|deadline|timed? ?out|retry|queue full|refused|skipped"
    r"|sigkill|exception|traceback",
    re.IGNORECASE,
)

APP = '''
"""The benchmark's app: each response names the current span (the launcher's own API)."""

import os
import sys
import time

import flask

TRACER = os.environ.get("BENCH_TRACER", "")
PAGE = os.sysconf("SC_PAGE_SIZE")
if TRACER == "us":
    from telemetry_run import trace as us_trace
elif TRACER == "otel":
    from opentelemetry import trace as otel_trace
elif TRACER == "dd":
    from ddtrace.trace import tracer as dd_tracer

app = flask.Flask(__name__)


def current_span():
    """The current server span's id (16 hex digits) and whether it records."""
    if TRACER in ("us", "otel"):
        span = (us_trace if TRACER == "us" else otel_trace).get_current_span()
        return f"{span.get_span_context().span_id:016x}", span.is_recording()
    if TRACER == "dd":
        root = dd_tracer.current_root_span()
        return (f"{root.span_id:016x}", True) if root is not None else ("", False)
    return "", False


def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def answer(n):
    span, recording = current_span()
    return {"n": n, "span": span, "recording": recording, "pid": os.getpid(), "rss": rss()}


@app.route("/work/<int:n>")
def work(n):
    return answer(n)


@app.route("/slow/<int:n>")
def slow(n):
    time.sleep(1.0)
    return answer(n)


@app.route("/probe")
def probe():
    found = answer(-1)
    names = ("telemetry_run", "opentelemetry.sdk.trace", "ddtrace")
    found["loaded"] = [name for name in names if name in sys.modules]
    return found
'''

# The load generator of tests/reliability/test_soak.py, the same file.
LOAD = Path(__file__).resolve().parents[1] / "tests" / "reliability" / "load.py"


# -- launchers and their environments --------------------------------------------------------


@dataclass
class Launcher:
    key: str
    prefix: list[str] | None  # argv before gunicorn's; None: not available
    how: str
    pythonpath: str = ""  # opentelemetry-instrument: where its OTLP exporter lives


def _base_env() -> dict[str, str]:
    """The caller's environment without any tracer's settings, PYTHONPATH or start-up hooks."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "DD_", "TELEMETRY_RUN_", "_DD_"))
    }
    for name in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONMALLOC", "PYTHONPROFILEIMPORTTIME"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def launcher_env(
    launcher: Launcher,
    *,
    grpc_endpoint: str,
    http_base: str,
    schedule_ms: int,
    otlp_timeout_ms: int | None,
    shutdown_ms: int,
) -> dict[str, str]:
    """The same settings for each launcher, in the form (and unit) each one reads them."""
    env = _base_env()
    env["BENCH_TRACER"] = launcher.key
    if launcher.key == "bare":
        return env
    common = {
        "OTEL_SERVICE_NAME": "bench",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    env.update(common)
    if launcher.key == "dd":
        env.update(DD_ENV)
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"  # its only binary OTLP
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = http_base  # + /v1/traces
        env["DD_TRACE_WRITER_INTERVAL_SECONDS"] = f"{schedule_ms / 1000:g}"
        if otlp_timeout_ms is not None:
            env["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = str(otlp_timeout_ms)  # ms (an int)
        return env
    env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc"
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = grpc_endpoint
    env["OTEL_EXPORTER_OTLP_INSECURE"] = "true"
    env["OTEL_BSP_SCHEDULE_DELAY"] = str(schedule_ms)
    if launcher.key == "us":
        env["TELEMETRY_RUN_SHUTDOWN_TIMEOUT"] = str(shutdown_ms)
        if otlp_timeout_ms is not None:
            env["OTEL_EXPORTER_OTLP_TIMEOUT"] = str(otlp_timeout_ms)  # ms, as the spec says
    else:
        if launcher.pythonpath:
            env["PYTHONPATH"] = launcher.pythonpath
        if otlp_timeout_ms is not None:
            # opentelemetry-exporter-otlp-proto-grpc reads it in seconds (float).
            env["OTEL_EXPORTER_OTLP_TIMEOUT"] = f"{otlp_timeout_ms / 1000:g}"
    return env


def _has_otel_otlp_exporter(pythonpath: str) -> bool:
    """opentelemetry-instrument resolves ``otlp`` to this entry point."""
    code = (
        "from importlib import metadata\n"
        "eps = metadata.entry_points(group='opentelemetry_traces_exporter')\n"
        "print('otlp_proto_grpc' in {e.name for e in eps})"
    )
    env = _base_env()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.stdout.strip() == "True"


def find_launchers(otel_pythonpath: str) -> dict[str, Launcher]:
    bindir = Path(sys.executable).parent

    def script(name: str) -> str | None:
        path = bindir / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None

    us, dd = script("telemetry-run"), script("ddtrace-run")
    otel = script("opentelemetry-instrument")
    us_prefix = [us] if us else [sys.executable, "-m", "telemetry_run"]
    launchers = {
        "bare": Launcher("bare", [], "no launcher, no tracer: the reference"),
        "us": Launcher("us", us_prefix, " ".join(us_prefix)),
        "otel": Launcher(
            "otel", [otel] if otel else None, otel or "not installed", otel_pythonpath
        ),
        "dd": Launcher("dd", [dd] if dd else None, dd or "not installed"),
    }
    if otel and not _has_otel_otlp_exporter(otel_pythonpath):
        launchers["otel"].prefix = None
        launchers["otel"].how = (
            f"no 'otlp_proto_grpc' traces exporter: pip install {OTLP_EXPORTER_DIST}, or"
            " --otel-pythonpath DIR (default: $PYTHONPATH) where it is installed"
        )
    elif otel and otel_pythonpath:
        launchers["otel"].how += f" (PYTHONPATH={otel_pythonpath})"
    return launchers


@functools.cache
def _gunicorn() -> str:
    path = Path(sys.executable).parent / "gunicorn"
    if not path.exists():
        raise RuntimeError(f"gunicorn is not installed next to {sys.executable}")
    return str(path)


@functools.cache
def _gunicorn_extra() -> tuple[str, ...]:
    """gunicorn >= 25 opens a control socket at one fixed path per user: off, where it exists."""
    help_text = subprocess.run(
        [_gunicorn(), "--help"], capture_output=True, text=True, check=False, timeout=60
    ).stdout
    return ("--no-control-socket",) if "--no-control-socket" in help_text else ()


# -- the server ------------------------------------------------------------------------------


class Server:
    """gunicorn under one launcher, in its own process group, output to a file."""

    def __init__(
        self, launcher: Launcher, env: dict[str, str], appdir: Path, extra: list[str]
    ) -> None:
        assert launcher.prefix is not None
        self.port = free_port()
        self.log_path = appdir / f"server-{launcher.key}-{self.port}.log"
        argv = [*launcher.prefix, _gunicorn(), "-w", "2", *extra]
        argv += ["-b", f"127.0.0.1:{self.port}", "--pythonpath", str(appdir)]
        argv += [*_gunicorn_extra(), "app:app"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                cwd=appdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, ended by its id below
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 3) -> str:
        return " | ".join(self.log().strip().splitlines()[-lines:]) or "no output"

    def wait_ready(self) -> dict[str, Any]:
        """The probe's answer once a worker serves; raises if the server died or hangs."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}: {self.tail()}")
            try:
                status, body = get(self.port, "/probe", timeout=5)
            except OSError:
                time.sleep(0.1)
                continue
            if status != 200:
                raise RuntimeError(f"probe answered {status}: {body[:200]!r}")
            found: dict[str, Any] = json.loads(body)
            return found
        raise RuntimeError(f"not serving after {READY_TIMEOUT:.0f} s: {self.tail()}")

    def terminate(self) -> tuple[int | None, float, bool]:
        """SIGTERM to gunicorn by its PID; (exit code, seconds to exit, SIGKILLed after
        STOP_TIMEOUT)."""
        sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
            return self.proc.returncode, time.monotonic() - sent, False
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.proc.wait(CLEANUP_TIMEOUT)
            return self.proc.returncode, time.monotonic() - sent, True

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group we created, by its id

    def cleanup(self) -> None:
        """Always: SIGTERM (bounded wait), then SIGKILL to whatever is left of the group."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(CLEANUP_TIMEOUT)
        self._kill_group()  # workers a dead master left behind, if any
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(CLEANUP_TIMEOUT)


def get(port: int, path: str, timeout: float = REQUEST_TIMEOUT) -> tuple[int, bytes]:
    """One request on a new connection (``Connection: close``), the body read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_probe(key: str, found: dict[str, Any]) -> None:
    """The launcher's own tracer records the request, and no other tracer is loaded."""
    if key == "bare":
        if found.get("loaded"):
            raise RuntimeError(f"tracers loaded without a launcher: {found['loaded']}")
        return
    own = {"us": "telemetry_run", "otel": "opentelemetry.sdk.trace", "dd": "ddtrace"}[key]
    others = [name for name in found.get("loaded", []) if name != own]
    if not found.get("recording") or not found.get("span") or own not in found.get("loaded", []):
        raise RuntimeError(f"the launcher's tracer does not record the request: {found}")
    if others:
        raise RuntimeError(f"other tracers loaded too: {others}")


# -- what the server printed -----------------------------------------------------------------


@dataclass
class LogReport:
    """Loss-related lines a server printed, and what they count."""

    lines: Counter[str] = field(default_factory=Counter)  # normalized line -> occurrences
    examples: dict[str, str] = field(default_factory=dict)  # normalized -> first raw line
    other: int = 0  # non-gunicorn lines that look unrelated to loss
    exit_lines: list[tuple[int, ...]] = field(default_factory=list)  # ours
    dd_traces: int = 0  # ddtrace: sum of "dropping N traces"
    dd_skipped: int = 0  # ddtrace: "N additional messages skipped" (its log rate limit)

    def add(self, log: str) -> None:
        for line in log.splitlines():
            if not line.strip() or GUNICORN_INFO.match(line):
                continue
            if not LOSS_HINT.search(line):
                self.other += 1
                continue
            key = re.sub(r"\d+(?:\.\d+)?", "N", line.strip())[:200]
            self.lines[key] += 1
            self.examples.setdefault(key, line.strip())
            match = EXIT_LINE.search(line)
            if match:
                self.exit_lines.append(tuple(int(g) for g in match.groups()))
            for found in DD_DROPPING.finditer(line):
                self.dd_traces += int(found.group(1))
            for found in DD_SKIPPED.finditer(line):
                self.dd_skipped += int(found.group(1))

    @property
    def count(self) -> int:
        return sum(self.lines.values())

    def reported(self, key: str) -> str:
        """The table cell: what the launcher itself says it lost."""
        if key == "bare":
            return "-"
        if key == "us":
            if not self.exit_lines:
                return "nothing"
            return f"{sum(line[2] for line in self.exit_lines)} spans"
        if key == "dd" and (self.dd_traces or self.dd_skipped):
            skipped = f", +{self.dd_skipped} skipped" if self.dd_skipped else ""
            return f"{self.dd_traces} traces{skipped}"
        return f"no count ({self.count} lines)" if self.count else "nothing"

    def shown(self, limit: int, width: int = 170) -> list[str]:
        out = []
        for key, n in self.lines.most_common(limit):
            text = self.examples[key]
            text = text if len(text) <= width else text[: width - 3] + "..."
            out.append(f"{n:>5}x {text}")
        if len(self.lines) > limit:
            out.append(f"       ({len(self.lines) - limit} more kinds of line)")
        return out


# -- the soak ----------------------------------------------------------------------------------


@dataclass
class SoakResult:
    error: str = ""
    phases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    log: LogReport = field(default_factory=LogReport)
    stop_seconds: float | None = None
    stop_code: int | None = None
    killed: bool = False
    traced: bool = True


def _set_phase(receiver: Any, phase: str, n: int) -> None:
    """The collector's state for ``phase``, as test_soak.py moves it."""
    if phase == "down":
        receiver.stop()
    elif phase == "slow":
        receiver.restart()  # the same ports
        receiver.answer_slowly(SLOW_ANSWER)
    elif phase == "refusing":
        receiver.clear_faults()
        # More than any phase makes export calls (retries included).
        receiver.fail_next(max(10 * n, 10_000), grpc_code="UNAVAILABLE")
    elif phase == "healthy again":
        receiver.clear_faults()


def run_load(appdir: Path, port: int, n: int) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, str(LOAD), str(port), str(n), str(CONCURRENCY), str(REQUEST_TIMEOUT)],
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT,  # subprocess.run kills it on expiry
        env=_base_env(),
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"load generator exit {done.returncode}: {tail}")
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def soak_one(launcher: Launcher, appdir: Path, n: int, verbose: bool) -> SoakResult:
    from telemetry_run.testing.otlp import OTLPReceiver

    result = SoakResult(traced=launcher.key != "bare")
    receiver = OTLPReceiver().start()
    try:
        env = launcher_env(
            launcher,
            grpc_endpoint=receiver.grpc_endpoint,
            http_base=receiver.http_base,
            schedule_ms=SOAK_SCHEDULE_MS,
            otlp_timeout_ms=SOAK_OTLP_TIMEOUT_MS,
            shutdown_ms=SOAK_SHUTDOWN_MS,
        )
        server = Server(launcher, env, appdir, [])
        try:
            check_probe(launcher.key, server.wait_ready())
            for phase in PHASES:
                _set_phase(receiver, phase, n)
                started = time.monotonic()
                result.phases[phase] = run_load(appdir, server.port, n)
                result.seconds[phase] = time.monotonic() - started
                if verbose:
                    rs = result.phases[phase]
                    ok = sum(r["status"] == 200 for r in rs)
                    med = statistics.median(r["took"] for r in rs) * 1000 if rs else 0.0
                    print(
                        f"   [{LABELS[launcher.key]}] {phase}: {ok}/{n} ok, median {med:.2f} ms,"
                        f" {result.seconds[phase]:.1f} s",
                        flush=True,
                    )
            receiver.clear_faults()
            result.stop_code, result.stop_seconds, result.killed = server.terminate()
        finally:
            server.cleanup()
            result.log.add(server.log())
        wanted = {r["span"] for rs in result.phases.values() for r in rs if r.get("span")}
        _wait_for(receiver, wanted)
        result.received = Counter(span.span_id.hex() for span in receiver.spans())
    except Exception as exc:
        result.error = str(exc)[:300]
    finally:
        receiver.stop()
    return result


def _wait_for(receiver: Any, wanted: set[str]) -> None:
    """Until every wanted span id arrived, or ARRIVAL_WAIT passed (the sender has exited)."""
    deadline = time.monotonic() + ARRIVAL_WAIT
    while time.monotonic() < deadline:
        if wanted <= {span.span_id.hex() for span in receiver.spans()}:
            return
        time.sleep(0.1)


@dataclass
class SoakRow:
    ok: int
    total: int
    produced: int
    received: int | None
    lost: int | None
    duplicates: int | None
    lost_by_phase: dict[str, int]
    medians: dict[str, float]  # ms
    healthy: float  # ms, both healthy phases
    worst: tuple[str, float]  # fault phase, ratio to healthy
    peak_rss: float  # MiB, the largest worker
    growth: float  # MiB, the largest rise after the first third of a worker's samples
    workers: int


def summarize_soak(result: SoakResult, n: int) -> SoakRow:
    phases = result.phases
    total = n * len(PHASES)
    answered = [r for rs in phases.values() for r in rs]
    traced = result.traced
    ok = sum(
        r["status"] == 200 and (not traced or (r.get("recording") is True and bool(r.get("span"))))
        for r in answered
    )
    produced_by_phase = {
        name: {r["span"] for r in rs if r["status"] == 200 and r.get("span")}
        for name, rs in phases.items()
    }
    produced = set().union(*produced_by_phase.values())
    received = result.received
    missing = produced - set(received)
    lost_by_phase = {name: len(ids & missing) for name, ids in produced_by_phase.items()}
    duplicates = sum(1 for span in produced if received.get(span, 0) > 1)
    medians = {
        name: statistics.median(r["took"] for r in rs) * 1000 if rs else float("nan")
        for name, rs in phases.items()
    }
    healthy = statistics.median(
        r["took"] * 1000 for name in ("healthy", "healthy again") for r in phases.get(name, [])
    )
    ratios = {name: medians[name] / healthy for name in FAULT_PHASES if name in medians}
    worst = max(ratios.items(), key=lambda item: item[1])
    by_pid: dict[int, list[int]] = {}
    for name in PHASES:
        for r in sorted(phases.get(name, []), key=lambda r: r.get("n", 0)):
            if "rss" in r:
                by_pid.setdefault(r["pid"], []).append(r["rss"])
    mib = 1024 * 1024
    peak = max((max(s) for s in by_pid.values()), default=0) / mib
    growth = max((max(s) - max(s[: max(1, len(s) // 3)]) for s in by_pid.values()), default=0) / mib
    return SoakRow(
        ok=ok,
        total=total,
        produced=len(produced),
        received=len(produced & set(received)) if traced else None,
        lost=len(missing) if traced else None,
        duplicates=duplicates if traced else None,
        lost_by_phase=lost_by_phase,
        medians=medians,
        healthy=healthy,
        worst=worst,
        peak_rss=peak,
        growth=growth,
        workers=len(by_pid),
    )


def run_soak(
    launchers: dict[str, Launcher], keys: list[str], n: int, rounds: int, verbose: bool
) -> None:
    print(
        f"\n== soak: {n} requests per phase x {len(PHASES)} phases ({', '.join(PHASES)}),"
        f" {CONCURRENCY} client threads, gunicorn -w 2 (sync); {rounds} round(s), the launchers"
        " taking turns in each and the order rotating from one round to the next",
        flush=True,
    )
    rows: dict[str, list[SoakRow]] = {key: [] for key in keys}
    results: dict[str, list[SoakResult]] = {key: [] for key in keys}
    failures: dict[str, list[str]] = {key: [] for key in keys}
    runnable = [key for key in keys if launchers[key].prefix is not None]
    for rnd in range(rounds):
        shift = rnd % max(1, len(runnable))
        line = []
        for key in runnable[shift:] + runnable[:shift]:
            started = time.monotonic()
            with tempfile.TemporaryDirectory(prefix=f"reliability-peers-{key}-") as tmp:
                appdir = _write_app(Path(tmp))
                result = soak_one(launchers[key], appdir, n, verbose)
            took = time.monotonic() - started
            if result.error:
                failures[key].append(result.error)
                line.append(f"{SHORT[key]} FAILED")
                print(f"   {LABELS[key]}: FAILED after {took:.0f} s: {result.error}", flush=True)
                continue
            row = summarize_soak(result, n)
            rows[key].append(row)
            results[key].append(result)
            lost = "" if row.lost is None else f", lost {row.lost}"
            line.append(f"{SHORT[key]} {took:.0f} s{lost}")
        print(f"   round {rnd + 1}: " + "; ".join(line), flush=True)

    header = (
        f"{'launcher':<16} {'ok':>11} {'produced':>8} {'received':>8} {'lost':>14} {'dup':>5}"
        f"  {'reported lost':<24}"
        + "".join(f" {_phase_label(p):>7}" for p in PHASES)
        + f" {'worst':>13} {'RSS MiB':>7} {'growth':>6} {'stop s':>6}"
    )
    print(
        f"\nsoak, median of {rounds} round(s) per cell (lost: the median, then each round's;"
        " latency: median ms per phase; worst: the slowest fault phase / the healthy median;"
        " RSS: peak of the largest worker; stop: SIGTERM to exit, collector healthy)"
    )
    print(header)
    print("-" * len(header))
    for key in keys:
        if launchers[key].prefix is None:
            print(f"{SHORT[key]:<16} not run: {launchers[key].how}")
            continue
        cell = rows[key]
        if not cell:
            print(f"{SHORT[key]:<16} FAILED: {failures[key][0] if failures[key] else '?'}")
            continue
        median_row = _median_row(cell)
        each = "/".join(_int(row.lost) for row in cell)
        shown_each = len(cell) > 1 and median_row.lost is not None
        lost = _int(median_row.lost) + (f" ({each})" if shown_each else "")
        reported = "/".join(result.log.reported(key) for result in results[key])
        print(
            f"{SHORT[key]:<16} {f'{median_row.ok}/{median_row.total}':>11}"
            f" {median_row.produced:>8} {_int(median_row.received):>8} {lost:>14}"
            f" {_int(median_row.duplicates):>5}  {reported:<24}"
            + "".join(f" {median_row.medians.get(p, float('nan')):>7.2f}" for p in PHASES)
            + f" {f'{median_row.worst[1]:.2f}x {median_row.worst[0]}':>13}"
            + f" {median_row.peak_rss:>7.1f} {median_row.growth:>+6.1f}"
            + f" {_median_stop(results[key]):>6}"
        )
        if failures[key]:
            print(f"{'':<16} and {len(failures[key])} FAILED round(s): {failures[key][0]}")
    print(
        "   received/lost/dup count each request's span (ddtrace: its local root) by span id;"
        " reported lost: ours from the exit lines, ddtrace from its 'dropping N traces' lines,"
        " one figure per round"
    )
    for key in keys:
        for rnd, (row, result) in enumerate(zip(rows[key], results[key], strict=True), 1):
            _print_soak_details(key, rnd, row, result, verbose)


def _median_row(cells: list[SoakRow]) -> SoakRow:
    """Each figure the median of the rounds' (counts rounded down; the worst phase the one
    named most often)."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def med_int(values: list[int | None]) -> int | None:
        known = [v for v in values if v is not None]
        return int(statistics.median(known)) if known else None

    worst_phase = Counter(row.worst[0] for row in cells).most_common(1)[0][0]
    return SoakRow(
        ok=int(med([row.ok for row in cells])),
        total=cells[0].total,
        produced=int(med([row.produced for row in cells])),
        received=med_int([row.received for row in cells]),
        lost=med_int([row.lost for row in cells]),
        duplicates=med_int([row.duplicates for row in cells]),
        lost_by_phase={},
        medians={p: med([row.medians.get(p, float("nan")) for row in cells]) for p in PHASES},
        healthy=med([row.healthy for row in cells]),
        worst=(worst_phase, med([row.worst[1] for row in cells])),
        peak_rss=med([row.peak_rss for row in cells]),
        growth=med([row.growth for row in cells]),
        workers=cells[0].workers,
    )


def _median_stop(results: list[SoakResult]) -> str:
    values = [result.stop_seconds for result in results if result.stop_seconds is not None]
    if not values:
        return "n/a"
    killed = "!" if any(result.killed for result in results) else ""
    return f"{statistics.median(values):.1f}{killed}"


def _print_soak_details(
    key: str, rnd: int, row: SoakRow, result: SoakResult, verbose: bool
) -> None:
    label = f"[{LABELS[key]}, round {rnd}]"
    took = ", ".join(f"{p} {result.seconds.get(p, 0):.1f}" for p in PHASES)
    print(f"\n   {label} phase seconds: {took}")
    if result.traced:
        lost = ", ".join(f"{p} {row.lost_by_phase.get(p, 0)}" for p in PHASES)
        print(f"   {label} lost by phase: {lost}")
    errors = Counter(
        r.get("error", f"HTTP {r['status']}")
        for rs in result.phases.values()
        for r in rs
        if r["status"] != 200
    )
    for error, count in errors.most_common(3):
        print(f"   {label} {count} failed request(s): {error[:150]}")
    if key == "us":
        _print_exit_accounting(result.log, row)
    print(
        f"   {label} {result.log.count} loss-related lines"
        f" ({len(result.log.lines)} kinds), {result.log.other} other non-gunicorn lines;"
        f" exit code {result.stop_code}{' (SIGKILLed)' if result.killed else ''}"
    )
    for line in result.log.shown(12 if verbose else 4):
        print(f"     {line}")


def _print_exit_accounting(log: LogReport, row: SoakRow) -> None:
    lines = log.exit_lines
    if not lines:
        print("   [telemetry-run] no exit line (nothing lost, by its own count)")
        return
    produced = sum(line[0] for line in lines)
    dropped = sum(line[2] for line in lines)
    reasons = ("queue_full", "export_failed", "rejected", "shutdown")
    parts = ", ".join(f"{r}={sum(line[3 + i] for line in lines)}" for i, r in enumerate(reasons))
    expected = row.produced + PROBES
    exact = "matches" if produced == expected else "DOES NOT match"
    covers = "covers" if (row.lost or 0) <= dropped else "DOES NOT cover"
    print(
        f"   [telemetry-run] exit lines: {len(lines)}; produced={produced} ({exact} the"
        f" {row.produced} responses + {PROBES} probe), dropped={dropped} ({parts}): {covers}"
        f" the {row.lost} lost"
    )


def _phase_label(phase: str) -> str:
    return {"healthy again": "again"}.get(phase, phase)


def _int(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _stop(result: SoakResult) -> str:
    if result.stop_seconds is None:
        return "n/a"
    return f"{result.stop_seconds:.1f}" + ("!" if result.killed else "")


# -- SIGTERM with requests in flight -----------------------------------------------------------


@dataclass
class SigtermRun:
    error: str = ""
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    produced: set[str] = field(default_factory=set)
    received: int | None = None
    seconds: float | None = None
    code: int | None = None
    killed: bool = False
    log: str = ""


def _in_flight(port: int, i: int, answers: list[dict[str, Any]], lock: threading.Lock) -> None:
    try:
        status, body = get(port, f"/slow/{i}")
        answer = {"status": status, **(json.loads(body) if status == 200 else {})}
    except Exception as exc:
        answer = {"status": -1, "error": f"{type(exc).__name__}: {exc}"}
    with lock:
        answers.append(answer)


def sigterm_one(launcher: Launcher, appdir: Path, up: bool) -> SigtermRun:
    from telemetry_run.testing.otlp import OTLPReceiver

    run = SigtermRun()
    receiver = OTLPReceiver().start() if up else None
    try:
        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        env = launcher_env(
            launcher,
            grpc_endpoint=receiver.grpc_endpoint if receiver else dead,
            http_base=receiver.http_base if receiver else dead,
            schedule_ms=SIGTERM_SCHEDULE_MS,
            otlp_timeout_ms=None,  # each exporter's default, as in the test
            shutdown_ms=SIGTERM_SHUTDOWN_MS,
        )
        server = Server(launcher, env, appdir, ["--threads", "2"])
        answers: list[dict[str, Any]] = []
        lock = threading.Lock()
        try:
            check_probe(launcher.key, server.wait_ready())
            threads = [
                threading.Thread(
                    target=_in_flight, args=(server.port, i, answers, lock), daemon=True
                )
                for i in range(IN_FLIGHT)
            ]
            for thread in threads:
                thread.start()
            time.sleep(SIGTERM_AFTER)  # every request is inside its view now
            run.code, run.seconds, run.killed = server.terminate()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT)
        finally:
            server.cleanup()
            run.log = server.log()
        with lock:
            done = list(answers)
        traced = launcher.key != "bare"
        run.completed = sum(
            a["status"] == 200 and (bool(a.get("span")) or not traced) for a in done
        )
        run.errors = [a.get("error", str(a["status"])) for a in done if a["status"] != 200]
        run.produced = {a["span"] for a in done if a.get("span")}
        if receiver is not None and traced:
            _wait_for(receiver, run.produced)
            got = {span.span_id.hex() for span in receiver.spans()}
            run.received = len(run.produced & got)
    except Exception as exc:
        run.error = str(exc)[:300]
    finally:
        if receiver is not None:
            receiver.stop()
    return run


def run_sigterm(launchers: dict[str, Launcher], keys: list[str], runs: int, verbose: bool) -> None:
    print(
        f"\n== sigterm: {IN_FLIGHT} requests of 1 s in flight (gunicorn -w 2 --threads 2),"
        f" SIGTERM {SIGTERM_AFTER} s in; collector up, then down; {runs} run(s) each",
        flush=True,
    )
    cells: dict[tuple[str, bool], list[SigtermRun]] = {}
    runnable = [k for k in keys if launchers[k].prefix is not None]
    with tempfile.TemporaryDirectory(prefix="reliability-peers-sigterm-") as tmp:
        appdir = _write_app(Path(tmp))
        for rnd in range(runs):
            shift = rnd % max(1, len(runnable))
            order = runnable[shift:] + runnable[:shift]
            line = []
            for key in order:
                for up in (True, False):
                    one = sigterm_one(launchers[key], appdir, up)
                    cells.setdefault((key, up), []).append(one)
                    state = "up" if up else "down"
                    if one.error:
                        line.append(f"{SHORT[key]} {state} FAILED")
                    else:
                        line.append(f"{SHORT[key]} {state} {one.seconds:.1f} s")
            print(f"   run {rnd + 1}: " + "  ".join(line), flush=True)

    header = (
        f"{'launcher':<16} {'up: done':>8} {'spans':>6} {'exit s':>16} {'reported':<16}"
        f" {'down: done':>10} {'exit s':>16} {'reported lost':<26}"
    )
    print(
        "\nsigterm (done: requests answered 200; spans: their spans received; exit s: SIGTERM to"
        " gunicorn's exit, median (min-max); reported: what the output says was lost, which"
        f" includes the span of the readiness probe each server answers first: {PROBES} per run)"
    )
    print(
        f"settings: telemetry-run bounds its exit flush at {SIGTERM_SHUTDOWN_MS:,} ms"
        " (TELEMETRY_RUN_SHUTDOWN_TIMEOUT); opentelemetry-instrument and ddtrace-run have no such"
        " setting; every exporter keeps its default export timeout (10 s)"
    )
    print(header)
    print("-" * len(header))
    for key in keys:
        launcher = launchers[key]
        if launcher.prefix is None:
            print(f"{SHORT[key]:<16} not run: {launcher.how}")
            continue
        up, down = cells.get((key, True), []), cells.get((key, False), [])
        print(
            f"{SHORT[key]:<16} {_done(up):>8} {_received(up):>6} {_seconds(up):>16}"
            f" {_sigterm_reported(key, up):<16} {_done(down):>10} {_seconds(down):>16}"
            f" {_sigterm_reported(key, down):<26}"
        )
    for key in keys:
        for up in (True, False):
            runs_ = cells.get((key, up), [])
            if not runs_:
                continue
            state = "up" if up else "down"
            report = LogReport()
            for one in runs_:
                report.add(one.log)
            failures = sorted({one.error for one in runs_ if one.error})
            errors = sorted({e for one in runs_ for e in one.errors})
            codes = sorted({str(one.code) + ("!" if one.killed else "") for one in runs_})
            print(
                f"\n   [{LABELS[key]}, collector {state}] exit codes {', '.join(codes)};"
                f" {report.count} loss-related lines over {len(runs_)} run(s)"
            )
            for failure in failures:
                print(f"     FAILED: {failure}")
            for error in errors[:3]:
                print(f"     request error: {error}")
            for line in report.shown(10 if verbose else 4):
                print(f"     {line}")


def _ok_runs(runs: list[SigtermRun]) -> list[SigtermRun]:
    return [one for one in runs if not one.error]


def _done(runs: list[SigtermRun]) -> str:
    ok = _ok_runs(runs)
    if not ok:
        return "FAILED" if runs else "n/a"
    return f"{sum(one.completed for one in ok)}/{IN_FLIGHT * len(ok)}"


def _received(runs: list[SigtermRun]) -> str:
    ok = [one for one in _ok_runs(runs) if one.received is not None]
    if not ok:
        return "-" if runs and not any(one.produced for one in runs) else "n/a"
    return f"{sum(one.received or 0 for one in ok)}/{sum(len(one.produced) for one in ok)}"


def _seconds(runs: list[SigtermRun]) -> str:
    values = [one.seconds for one in _ok_runs(runs) if one.seconds is not None]
    if not values:
        return "n/a"
    killed = "!" if any(one.killed for one in runs) else ""
    if len(values) == 1:
        return f"{values[0]:.2f}{killed}"
    return f"{statistics.median(values):.2f} ({min(values):.1f}-{max(values):.1f}){killed}"


def _sigterm_reported(key: str, runs: list[SigtermRun]) -> str:
    ok = _ok_runs(runs)
    if not ok:
        return "n/a"
    report = LogReport()
    for one in ok:
        report.add(one.log)
    text = report.reported(key)
    return text + (f" /{len(ok)} runs" if len(ok) > 1 and text not in ("nothing", "-") else "")


# -- main ------------------------------------------------------------------------------------


def _write_app(directory: Path) -> Path:
    (directory / "app.py").write_text(textwrap.dedent(APP))
    return directory


def _versions() -> str:
    return versions(
        "telemetry-run",
        "flask",
        "gunicorn",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-flask",
        "ddtrace",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="300 requests per phase, 1 soak round, 1 SIGTERM run per cell",
    )
    parser.add_argument("--requests", type=int, help="soak requests per phase (default 1500)")
    parser.add_argument("--runs", type=int, help="SIGTERM runs per launcher and collector state")
    parser.add_argument("--rounds", type=int, help="soak rounds per launcher (default 3)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="soak,sigterm")
    parser.add_argument(
        "--launchers", default=",".join(LAUNCHERS), help="a subset of bare,us,otel,dd"
    )
    parser.add_argument(
        "--otel-pythonpath",
        default=os.environ.get("PYTHONPATH", ""),
        help="PYTHONPATH for opentelemetry-instrument only (where its OTLP exporter is);"
        " default: the caller's PYTHONPATH. The other launchers get none.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="progress and more lines")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not scenarios or set(scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}")
    keys = [k.strip() for k in args.launchers.split(",") if k.strip()]
    if not keys or set(keys) - set(LAUNCHERS):
        parser.error(f"--launchers takes names from {','.join(LAUNCHERS)}")
    plan = QUICK if args.quick else FULL
    n = args.requests or plan["requests"]
    runs = args.runs or plan["sigterm_runs"]
    rounds = args.rounds or plan["soak_rounds"]
    if n < 3 or runs < 1 or rounds < 1:
        parser.error("--requests must be at least 3, --runs and --rounds at least 1")

    started = time.monotonic()
    print(f"reliability_peers: python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"   {_versions()}")
    launchers = find_launchers(args.otel_pythonpath)
    protocols = {
        "bare": "no export",
        "us": "OTLP/gRPC",
        "otel": "OTLP/gRPC",
        "dd": "OTLP/HTTP (http/protobuf)",
    }
    for key in keys:
        print(f"   {LABELS[key]}: {launchers[key].how}; {protocols[key]}")
    if "soak" in scenarios:
        run_soak(launchers, keys, n, rounds, args.verbose)
    if "sigterm" in scenarios:
        run_sigterm(launchers, keys, runs, args.verbose)
    print(f"\nreliability_peers: {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
