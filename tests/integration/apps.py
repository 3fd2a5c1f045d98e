"""Run a real application server under ``telemetry-run``, exporting to a real OTLP receiver.

``launched(...)`` starts the command in its own process group and always stops the whole group
by its PID (SIGTERM, then SIGKILL after a bounded wait); ``served(...)`` adds a free loopback
port and waits until it accepts connections. The framework tests (flask/, django/, requests/,
grpc/, e2e/) use it with ``otlp_env(receiver)`` and read the spans the receiver got.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import LAUNCHER, clean_env

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def script(name: str) -> str:
    """A console script installed next to this interpreter (gunicorn, django-admin, flask)."""
    path = Path(sys.executable).with_name(name)
    if not path.exists():
        pytest.skip(f"the {name} command is not installed next to {sys.executable}")
    return str(path)


def otlp_env(receiver: OTLPReceiver, **overrides: str) -> dict[str, str]:
    """Export over OTLP/gRPC to ``receiver``, quickly (100 ms schedule delay)."""
    return endpoint_env(receiver.grpc_endpoint, **overrides)


def endpoint_env(endpoint: str, **overrides: str) -> dict[str, str]:
    """Export over OTLP/gRPC to ``endpoint`` (a dead one, say), quickly."""
    settings = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "TELEMETRY_RUN_SHUTDOWN_TIMEOUT": "5000",
    }
    return clean_env(**{**settings, **overrides})


@dataclass
class AppProcess:
    """A server started by ``served``: its process, port and combined output."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM the launched process and wait (bounded by ``timeout``); its return code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the server did not stop within {timeout} s:\n{self.log()}")
        return self.proc.returncode


def _wait_for_port(app: AppProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if app.proc.poll() is not None:
            pytest.fail(f"the server exited with {app.proc.returncode}:\n{app.log()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(("127.0.0.1", app.port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"the server did not listen within {START_TIMEOUT} s:\n{app.log()}")


@contextlib.contextmanager
def launched(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    launcher: bool = True,
    stop_timeout: float = STOP_TIMEOUT,
    **popen: Any,
) -> Iterator[subprocess.Popen[bytes]]:
    """``telemetry-run COMMAND`` (or COMMAND alone) in its own process group, its output in
    ``log_path``; at the end the whole group is stopped by its PID, whatever the test did:
    SIGTERM if still running, a bounded wait, then SIGKILL for what is left (workers,
    reloader children)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*LAUNCHER, *command] if launcher else list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the finally below ends them all
            **popen,
        )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(stop_timeout)
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.wait(10)


@contextlib.contextmanager
def served(
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str],
    cwd: Path,
    launcher: bool = True,
    **popen: Any,
) -> Iterator[AppProcess]:
    """``telemetry-run COMMAND`` (or COMMAND alone) listening on ``port``, stopped at the end."""
    log_path = cwd / f"server-{port}.log"
    with launched(command, env=env, cwd=cwd, log_path=log_path, launcher=launcher, **popen) as proc:
        app = AppProcess(proc, port, log_path)
        _wait_for_port(app)
        yield app


def attributes(span: Any) -> dict[str, Any]:
    """A received protobuf span's attributes as a plain dict (arrays as lists)."""
    result: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            result[kv.key] = [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
        else:
            result[kv.key] = getattr(value, kind) if kind else None
    return result


def services_by_span(receiver: Any) -> dict[bytes, str]:
    """span id -> the service.name of the process that exported it, over every request the
    receiver got: which process of a multi-process trace made which span."""
    found: dict[bytes, str] = {}
    for received in receiver.requests:
        for resource_spans in received.request.resource_spans:
            name = next(
                kv.value.string_value
                for kv in resource_spans.resource.attributes
                if kv.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found[span.span_id] = name
    return found
