"""``telemetry-run --view [options] [--] [COMMAND ARGS...]``: the viewer, and the command
pointed at it.

Without a command the viewer serves until Ctrl-C (apps started elsewhere send to it). With one,
the command runs under the launcher with its traces exporter set to the viewer's OTLP/gRPC port;
when it exits the viewer keeps serving, so the traces of a short script can still be looked at,
until Ctrl-C. SIGTERM stops the command (forwarded) and the viewer. The exit code is the
command's (0 without one).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TextIO

from telemetry_run.viewer.receiver import OTLPViewerReceiver, host_port
from telemetry_run.viewer.store import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_SPANS_PER_TRACE,
    DEFAULT_MAX_TRACES,
    TraceStore,
)
from telemetry_run.viewer.web import ViewerWebServer

__all__ = ["USAGE", "child_environment", "parse", "run"]

_MIB = 1024 * 1024

USAGE = f"""\
usage: telemetry-run --view [VIEW OPTIONS] [--] [COMMAND [ARGS...]]

A local trace viewer: an OTLP receiver (gRPC and HTTP) keeping the last traces in memory, and a
web page listing them, each as a waterfall. With COMMAND, runs it under telemetry-run exporting
to the viewer; the viewer keeps serving after COMMAND exits, until Ctrl-C.

view options:
  --view-host HOST         address to listen on (default 127.0.0.1: this machine only)
  --view-port PORT         the web page's port (default 16686)
  --view-grpc-port PORT    the OTLP/gRPC port (default 4317)
  --view-http-port PORT    the OTLP/HTTP port (default 4318)
  --view-traces N          traces kept, the oldest evicted first (default {DEFAULT_MAX_TRACES})
  --view-spans N           spans kept per trace (default {DEFAULT_MAX_SPANS_PER_TRACE})
  --view-memory MIB        span data kept in all, older traces evicted beyond it
                           (default {DEFAULT_MAX_BYTES // _MIB})
Port 0 picks a free port (the printed lines say which).
"""

EXIT_USAGE = 2
EXIT_CANNOT_LISTEN = 1

_OPTIONS = {
    "--view-host": "host",
    "--view-port": "port",
    "--view-grpc-port": "grpc_port",
    "--view-http-port": "http_port",
    "--view-traces": "traces",
    "--view-spans": "spans",
    "--view-memory": "memory_mib",
}


class Options:
    """The parsed view options and the command (possibly empty)."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 16686
        self.grpc_port = 4317
        self.http_port = 4318
        self.traces = DEFAULT_MAX_TRACES
        self.spans = DEFAULT_MAX_SPANS_PER_TRACE
        self.memory_mib = DEFAULT_MAX_BYTES // _MIB
        self.command: list[str] = []


def parse(argv: Sequence[str]) -> Options:
    """The options before the command (``--name value`` or ``--name=value``); ``ValueError``
    with a message for the user on a bad one."""
    options = Options()
    args = list(argv)
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option == "--":
            break
        name, has_value, value = option.partition("=")
        if name not in _OPTIONS:
            raise ValueError(f"unknown view option {option!r} (see telemetry-run --view --help)")
        if not has_value:
            if not args:
                raise ValueError(f"{name} needs a value")
            value = args.pop(0)
        field = _OPTIONS[name]
        if field == "host":
            if not value:
                raise ValueError(f"{name} needs a host")
            options.host = value
            continue
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{name} takes a number, not {value!r}") from None
        if field.endswith("port") and not 0 <= number <= 65535:
            raise ValueError(f"{name} takes a port (0-65535), not {value!r}")
        if not field.endswith("port") and number < 1:
            raise ValueError(f"{name} takes a positive number, not {value!r}")
        setattr(options, field, number)
    options.command = args
    return options


def _loopback_for(host: str) -> str:
    """The address a local app uses to reach a server listening on ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def child_environment(environ: Mapping[str, str], host: str, grpc_port: int) -> dict[str, str]:
    """``environ`` with traces exported over OTLP/gRPC to the viewer (per-signal variables
    too, as they override the general ones), and a 1 s export delay unless one is set."""
    endpoint = f"http://{host_port(_loopback_for(host), grpc_port)}"
    env = dict(environ)
    env.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint,
        }
    )
    env.setdefault("OTEL_BSP_SCHEDULE_DELAY", "1000")
    return env


def run(argv: Sequence[str], environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """Parse the view options, serve, run the command if any; the exit code."""
    if argv[:1] in (["--help"], ["-h"]):
        out.write(USAGE)
        return 0
    try:
        options = parse(argv)
    except ValueError as exc:
        print(f"telemetry-run: {exc}", file=err)
        return EXIT_USAGE
    store = TraceStore(options.traces, options.spans, options.memory_mib * _MIB)
    receiver = OTLPViewerReceiver(store, options.host, options.grpc_port, options.http_port)
    web = ViewerWebServer(store, options.host, options.port)
    try:
        receiver.start()
        web.start()
    except OSError as exc:
        receiver.stop()
        print(f"telemetry-run: {exc} (choose another with the --view-* options)", file=err)
        return EXIT_CANNOT_LISTEN
    stopping: _StopSignals | None = None
    try:
        stopping = _StopSignals()
        return _serve(options, receiver, web, environ, out, stopping)
    finally:
        web.stop()  # Ctrl-C or SIGTERM again meanwhile only asks for the stop under way
        receiver.stop()
        if stopping is not None:
            stopping.restore()


class _StopSignals:
    """SIGTERM and Ctrl-C (SIGINT) as a stop request, set from handlers rather than raised, so
    that no signal lands between two statements and costs the command's exit code.

    SIGTERM is forwarded to the running command. Ctrl-C reaches the command by itself (same
    process group): it decides how to stop, and the viewer keeps serving after it, so Ctrl-C
    stops the viewer only once no command runs. A SIGINT ignored when the viewer started (a
    background job) stays ignored."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.command: subprocess.Popen[bytes] | None = None
        self._previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_sigterm),
        }
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        if self.command is not None and self.command.returncode is None:
            self.command.send_signal(signal.SIGTERM)
        self.stop.set()

    def _on_sigint(self, signum: int, frame: object) -> None:
        if self.command is None or self.command.returncode is not None:
            self.stop.set()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _serve(
    options: Options,
    receiver: OTLPViewerReceiver,
    web: ViewerWebServer,
    environ: Mapping[str, str],
    out: TextIO,
    stopping: _StopSignals,
) -> int:
    grpc_at = host_port(options.host, receiver.grpc_port)
    http_at = f"http://{host_port(options.host, receiver.http_port)}/v1/traces"
    print(f"telemetry-run: trace viewer at {web.url}", file=out)
    print(
        f"telemetry-run: OTLP receiver: gRPC {grpc_at}, HTTP {http_at}"
        f" (keeps the last {options.traces} traces, at most {options.memory_mib} MiB)",
        file=out,
        flush=True,
    )
    code = 0
    if options.command:
        env = child_environment(environ, options.host, receiver.grpc_port)
        launcher = [sys.executable, "-m", "telemetry_run", *options.command]
        if stopping.stop.is_set():  # SIGTERM or Ctrl-C while starting: the command never runs
            return 0
        stopping.command = subprocess.Popen(launcher, env=env)
        if stopping.stop.is_set():  # SIGTERM just before the command was there to forward to
            stopping.command.send_signal(signal.SIGTERM)
        code = stopping.command.wait()
        code = 128 - code if code < 0 else code  # death by signal N, as a shell reports it
        if stopping.stop.is_set():
            return code
        print(
            f"telemetry-run: the command exited with code {code}; its traces stay at"
            f" {web.url} until Ctrl-C",
            file=out,
            flush=True,
        )
    else:
        print("telemetry-run: serving until Ctrl-C", file=out, flush=True)
    while not stopping.stop.wait(0.5):
        pass
    return code
