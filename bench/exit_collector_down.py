"""Exit time with the collector down or hanging: telemetry-run vs the OTel and ddtrace launchers.

A small app (``python -c``) makes 1,000 spans with the launcher's own tracer (100 traces of
10 spans), prints ``time.time()`` as its last line and returns. Its spans are still queued or
being sent when it returns, so the launcher's exit flush meets the collector:

  down        nothing listens on the port (a free loopback port): connections are refused
  hang-grpc   a TCP server on 127.0.0.1 accepts every connection, reads and discards what
              arrives, and never answers; the OpenTelemetry launchers use OTLP/gRPC (default)
  hang-http   the same server; the OpenTelemetry launchers use OTLP/HTTP (http/protobuf)
  down-http   (not run by default) nothing listens, OTLP/HTTP

ddtrace always speaks its own HTTP protocol to ``DD_TRACE_AGENT_URL``, so it runs in ``down``
and ``hang-http``; in ``hang-grpc`` its cell is ``-``. The figure is seconds from the app's last
line to the end of the process (``time.time()`` in this script when ``wait()`` returns), the
median over the runs; each run is bounded by a 60 s timeout (reported as ``>60``).

    python bench/exit_collector_down.py [--quick] [-v] [--runs N] [--scenarios down,hang-grpc]
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import DD_QUIET

from telemetry_run.testing.otlp import free_port

RUN_TIMEOUT = 60.0
SPANS = 1000
SHUTDOWN_TIMEOUT = 5.0  # TELEMETRY_RUN_SHUTDOWN_TIMEOUT's default (5000 ms)
SLACK = 0.5  # the issue: ours within the shutdown timeout plus this
ISSUE_FIGURES = {  # measured in the issue: (down, hanging) seconds
    "otel": (14.0, 20.0),
    "dd": (3.0, 21.0),
}

SCENARIOS = {
    "down": ("collector down (nothing listening), OTLP/gRPC", "down", "grpc"),
    "hang-grpc": ("collector hanging (accepts, never answers), OTLP/gRPC", "hang", "grpc"),
    "hang-http": ("collector hanging (accepts, never answers), OTLP/HTTP", "hang", "http"),
    "down-http": ("collector down (nothing listening), OTLP/HTTP", "down", "http"),
}
DEFAULT_SCENARIOS = ("down", "hang-grpc", "hang-http")
CONTENDERS = ("us", "otel", "dd")
LABELS = {"us": "telemetry-run", "otel": "opentelemetry-instrument", "dd": "ddtrace-run"}

OTEL_ENV = {
    "OTEL_SERVICE_NAME": "bench",
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}
# The telemetry-off settings of span_start_end.py; the agent URL is set per run.
DD_ENV = {**DD_QUIET}

# The app: 1,000 spans with the launcher's tracer, then its last line. Each checks first that
# the launcher really set up a recording tracer (so a broken set-up cannot exit fast).
_SPANS_OTEL_API = """
from {module} import trace
tracer = trace.get_tracer("bench.exit")
for t in range({traces}):
    with tracer.start_as_current_span("request") as root:
        assert root.is_recording(), "no recording tracer: the launcher did not set one up"
        for i in range({children}):
            with tracer.start_as_current_span("step") as span:
                span.set_attribute("step.index", i)
"""
_SPANS_DD = """
import sys
from ddtrace.trace import tracer
assert "ddtrace.bootstrap.sitecustomize" in sys.modules and tracer.enabled, "ddtrace not loaded"
for t in range({traces}):
    with tracer.trace("request"):
        for i in range({children}):
            with tracer.trace("step") as span:
                span.set_tag("step.index", i)
"""
_LAST_LINE = """
import time
print("BENCH-LAST-LINE %r" % time.time(), flush=True)
"""
TRACES = 100  # of 10 spans: a root and 9 children


def _program(key: str) -> str:
    if key == "dd":
        body = _SPANS_DD
    else:
        body = _SPANS_OTEL_API.replace(
            "{module}", "telemetry_run" if key == "us" else "opentelemetry"
        )
    body = body.format(traces=TRACES, children=SPANS // TRACES - 1)
    return body + _LAST_LINE


# -- the collector that never answers ----------------------------------------------------------


class HangingServer:
    """Accepts TCP connections on 127.0.0.1, reads and discards what arrives, never writes."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._thread = self._start_thread()

    def _start_thread(self) -> threading.Thread:
        thread = threading.Thread(
            target=self._serve, args=(self._stop,), name="hanging-collector", daemon=True
        )
        thread.start()
        return thread

    def _serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for key, _ in self._selector.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    self._selector.register(conn, selectors.EVENT_READ)
                    self.accepted += 1
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client closed: close our end too
                    self._selector.unregister(sock)
                    sock.close()

    def drop_connections(self) -> None:
        """Close what the last process left open (it has exited: nothing is in use)."""
        stop, self._stop = self._stop, threading.Event()
        stop.set()
        self._thread.join(5)
        for key in list(self._selector.get_map().values()):
            if key.fileobj is not self._listener:
                self._selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
        self._thread = self._start_thread()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()


# -- running one process -----------------------------------------------------------------------


@dataclass
class Result:
    seconds: list[float] = field(default_factory=list)
    timeouts: int = 0
    failures: list[str] = field(default_factory=list)
    exit_lines: list[str] = field(default_factory=list)  # ours: the telemetry-run: line
    stderr_tails: list[str] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)  # connections the hanging server took


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DD_"))}
    env = {k: v for k, v in env.items() if not k.startswith("TELEMETRY_RUN_")}
    for name in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONMALLOC", "PYTHONPROFILEIMPORTTIME"):
        env.pop(name, None)
    return env


def _launchers() -> dict[str, list[str] | None]:
    bindir = Path(sys.executable).parent

    def script(name: str) -> str | None:
        path = bindir / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None

    us = script("telemetry-run")
    otel = script("opentelemetry-instrument")
    dd = script("ddtrace-run")
    return {
        "us": [us] if us else [sys.executable, "-m", "telemetry_run"],
        "otel": [otel] if otel else None,
        "dd": [dd] if dd else None,
    }


def _env(key: str, port: int, protocol: str) -> dict[str, str]:
    env = _base_env()
    if key == "dd":
        env.update(DD_ENV)
        env["DD_TRACE_AGENT_URL"] = f"http://127.0.0.1:{port}"
        return env
    env.update(OTEL_ENV)
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    if protocol == "http":
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    return env


def run_once(
    prefix: list[str], key: str, port: int, protocol: str
) -> tuple[float | None, str, str]:
    """(seconds from the last line to the process's end or None on timeout, stdout, stderr)."""
    argv = [*prefix, sys.executable, "-c", _program(key)]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        # Files, not pipes: the end of the process is what counts, not the end of its output.
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=_env(key, port, protocol)
        )
        try:
            proc.wait(RUN_TIMEOUT)
            ended = time.time()
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            ended = None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    match = re.search(r"^BENCH-LAST-LINE (\S+)$", stdout, re.MULTILINE)
    if ended is None:
        return None, stdout, stderr
    if match is None or proc.returncode != 0:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {proc.returncode}, no last line: {tail}")
    return ended - float(match.group(1)), stdout, stderr


def run_scenario(
    name: str, runs: int, launchers: dict[str, list[str] | None], verbose: bool
) -> dict[str, Result | None]:
    title, state, protocol = SCENARIOS[name]
    print(f"\n== {name}: {title}")
    keys = [k for k in CONTENDERS if not (k == "dd" and protocol == "grpc" and state == "hang")]
    results: dict[str, Result | None] = {k: Result() for k in keys}
    server = HangingServer() if state == "hang" else None
    try:
        for rnd in range(runs):
            order = keys[rnd % len(keys) :] + keys[: rnd % len(keys)]
            line = []
            for key in order:
                prefix = launchers[key]
                result = results[key]
                assert result is not None
                if prefix is None:
                    line.append(f"{LABELS[key]} not installed")
                    continue
                port = server.port if server is not None else free_port()
                before = server.accepted if server is not None else 0
                try:
                    seconds, _, stderr = run_once(prefix, key, port, protocol)
                except RuntimeError as exc:
                    result.failures.append(str(exc))
                    line.append(f"{LABELS[key]} FAILED")
                    continue
                finally:
                    if server is not None:
                        server.drop_connections()
                if server is not None:
                    result.accepted.append(server.accepted - before)
                if seconds is None:
                    result.timeouts += 1
                    line.append(f"{LABELS[key]} >{RUN_TIMEOUT:.0f} s")
                else:
                    result.seconds.append(seconds)
                    line.append(f"{LABELS[key]} {seconds:.2f} s")
                ours = [ln for ln in stderr.splitlines() if ln.startswith("telemetry-run: spans")]
                if key == "us":
                    result.exit_lines.append(ours[-1] if ours else "(no exit line)")
                other = [ln for ln in stderr.strip().splitlines() if ln not in ours]
                if other:
                    result.stderr_tails.append(other[-1][:200])
            print(f"   run {rnd + 1}: " + "  ".join(line), flush=True)
    finally:
        if server is not None:
            server.close()
    for key, result in results.items():
        assert result is not None
        if key == "us" and result.exit_lines:
            shown = sorted(set(result.exit_lines)) if verbose else result.exit_lines[-1:]
            for exit_line in shown:
                print(f"   our exit line (stderr): {exit_line}")
        if result.accepted and verbose:
            print(f"   [{LABELS[key]}] connections accepted per run: {result.accepted}")
        if result.stderr_tails:
            tails = sorted(set(result.stderr_tails))
            for tail in tails if verbose else tails[:1]:
                print(f"   [{LABELS[key]}] stderr: {tail}")
        for failure in sorted(set(result.failures)):
            print(f"   [{LABELS[key]}] FAILED: {failure}")
    return {k: results.get(k) for k in CONTENDERS}


def _cell(result: Result | None) -> str:
    if result is None:
        return "-"
    if not result.seconds and not result.timeouts:
        return "FAILED" if result.failures else "n/a"
    # A timed-out run counts as longer than every finished one.
    values = sorted(result.seconds) + [float("inf")] * result.timeouts
    med = statistics.median(values)
    text = f">{RUN_TIMEOUT:.0f}" if med == float("inf") else f"{med:.2f}"
    return text + (f" ({result.timeouts} t/o)" if result.timeouts else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run per cell instead of 3")
    parser.add_argument("--runs", type=int, help="runs per cell (default 3)")
    parser.add_argument("-v", "--verbose", action="store_true", help="every exit line and stderr")
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"subset or more, from {', '.join(SCENARIOS)}",
    )
    args = parser.parse_args()
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    if not names or set(names) - set(SCENARIOS):
        parser.error(f"--scenarios takes names from {', '.join(SCENARIOS)}")
    runs = args.runs or (1 if args.quick else 3)

    launchers = _launchers()
    print(
        f"exit_collector_down: python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        f"{SPANS} spans, then the app's last line; {runs} run(s) per cell, "
        f"{RUN_TIMEOUT:.0f} s timeout each"
    )
    for key in CONTENDERS:
        shown = " ".join(launchers[key] or ["not installed"])
        print(f"   {LABELS[key]}: {shown}")
    started = time.perf_counter()
    table = {name: run_scenario(name, runs, launchers, args.verbose) for name in names}

    limit = SHUTDOWN_TIMEOUT + SLACK
    print(
        f"\n== summary: median seconds from the app's last line to process end "
        f"({time.perf_counter() - started:.0f} s)"
    )
    header = f"{'scenario':<10} " + " ".join(f"{LABELS[k]:>25}" for k in CONTENDERS)
    print(header)
    print("-" * len(header))
    for name, row in table.items():
        print(f"{name:<10} " + " ".join(f"{_cell(row[k]):>25}" for k in CONTENDERS))
    issue = ", ".join(
        f"{LABELS[k]} {down:.0f} s down / {hang:.0f} s hanging"
        for k, (down, hang) in ISSUE_FIGURES.items()
    )
    print(f"issue's figures: {issue}")
    worst = [
        max([*r.seconds, *([float("inf")] * r.timeouts)])
        for row in table.values()
        if (r := row["us"]) is not None and (r.seconds or r.timeouts)
    ]
    if worst:
        verdict = "met" if max(worst) <= limit else "NOT met"
        print(
            f"target: telemetry-run within the shutdown timeout + {SLACK} s = {limit:.1f} s "
            f"in every run: {verdict} (slowest run {max(worst):.2f} s)"
        )


if __name__ == "__main__":
    main()
