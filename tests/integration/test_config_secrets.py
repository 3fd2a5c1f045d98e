"""Secrets in the configuration never leave the process: a real app under ``telemetry-run``, the
real OTLP receiver, and the secret looked for in what it received, in stderr and in ``--list``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pty
import select
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telemetry_run.testing.otlp import OTLPReceiver
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env, launch
from tests.integration.test_launcher import EXIT_LINE
from tests.integration.test_otlp_launcher import APP
from tests.unit.sdk.otlp_helpers import encrypted_copy, make_certificates

SECRET = "sup3r-s3cret-api-key"
HEADERS = f"x-api-key={SECRET},authorization=Bearer%20{SECRET}"


@pytest.fixture
def app(tmp_path: Path) -> str:
    path = tmp_path / "app.py"
    path.write_text(APP)
    return str(path)


def _received_bytes(receiver: OTLPReceiver) -> bytes:
    return b"".join(r.request.SerializeToString() for r in receiver.attempts)


def _counts(stderr: str) -> tuple[int, ...]:
    """(produced, exported, dropped, queue_full, export_failed, rejected, shutdown)."""
    match = EXIT_LINE.search(stderr)
    assert match is not None, stderr
    return tuple(map(int, match.groups()))


def _list(env: dict[str, str]) -> str:
    result = launch(["--list"], env)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


@contextlib.contextmanager
def _default_receiver(protocol: str) -> Iterator[OTLPReceiver]:
    """A receiver on the default port of ``protocol`` on localhost: where a fallback to the
    default endpoint would send the spans and the headers."""
    grpc = protocol == "grpc"
    try:
        receiver = OTLPReceiver(
            grpc=grpc, http=not grpc, grpc_port=4317 if grpc else 0, http_port=0 if grpc else 4318
        ).start()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"the default OTLP port is taken on this machine ({exc})")
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("protocol", "variable", "endpoint"),
    [
        ("grpc", "OTEL_EXPORTER_OTLP_ENDPOINT", f"https://user:{SECRET}@collector:99999"),
        ("grpc", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://:4317"),
        ("http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT", "collector.example:4318"),
        ("http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://[::1/v1/traces"),
    ],
)
def test_an_invalid_endpoint_never_sends_the_headers_to_the_default_endpoint(
    app: str, protocol: str, variable: str, endpoint: str
) -> None:
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_HEADERS=HEADERS,
        TELEMETRY_RUN_SHUTDOWN_TIMEOUT="2000",
        **{variable: endpoint},
    )
    with _default_receiver(protocol) as receiver:
        result = launch([PYTHON, app], env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert receiver.attempts == []  # nothing reached the default endpoint
    assert SECRET not in result.stderr
    naming = [line for line in result.stderr.splitlines() if f"{variable}=" in line]
    assert len(naming) == 1, result.stderr
    assert "the OTLP exporter is off" in naming[0]
    # every span the app made is accounted for, as not sent
    assert _counts(result.stderr) == (5, 0, 5, 0, 5, 0, 0)
    listing = _list(env)
    assert SECRET not in listing and f"{variable}=" in listing


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_secrets_in_a_valid_configuration_stay_out_of_spans_stderr_and_list(
    otlp_receiver: OTLPReceiver, app: str, protocol: str
) -> None:
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else otlp_receiver.http_base
    scheme, rest = endpoint.split("://")
    env = clean_env(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"{scheme}://user:{SECRET}@{rest}",
        OTEL_EXPORTER_OTLP_HEADERS=HEADERS,
        TELEMETRY_RUN_DEBUG="true",  # every debug line and the exit line are printed too
    )
    result = launch([PYTHON, app], env, timeout=60)
    assert result.returncode == 0, result.stderr
    otlp_receiver.wait_for_spans(5)
    assert otlp_receiver.requests[0].headers["x-api-key"] == SECRET  # sent where it belongs
    assert SECRET.encode() not in _received_bytes(otlp_receiver)
    assert SECRET not in result.stderr
    assert _counts(result.stderr)[:3] == (5, 5, 0)
    assert SECRET not in _list(env)


def _run_on_a_terminal(args: list[str], env: dict[str, str], within: float) -> tuple[int, str]:
    """Run ``args`` with a pseudo-terminal as its controlling terminal, stdin, stdout and
    stderr (where OpenSSL would prompt for a passphrase and wait); killed after ``within``
    seconds. Its exit status and all it wrote."""
    pid, master = pty.fork()
    if pid == 0:  # the child
        try:
            os.execve(args[0], args, env)
        finally:
            os._exit(127)
    output = bytearray()
    give_up = time.monotonic() + within
    try:
        while time.monotonic() < give_up:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError as exc:  # EIO: the child closed the terminal (it exited)
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            output += chunk
        while time.monotonic() < give_up:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(f"still running after {within} s (a passphrase prompt?): {output!r}")
    finally:
        os.close(master)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("prefix", ["OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_TRACES_"])
def test_an_encrypted_client_key_is_one_error_and_never_a_prompt(
    tmp_path: Path, app: str, protocol: str, prefix: str
) -> None:
    certificates = make_certificates(tmp_path)
    key_file = encrypted_copy(certificates.client_key_file, tmp_path)
    with OTLPReceiver(tls=certificates.mtls_server) as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base
        env = clean_env(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint.replace("http://", "https://"),
            OTEL_EXPORTER_OTLP_CERTIFICATE=certificates.ca_file,
            OTEL_EXPORTER_OTLP_HEADERS=HEADERS,
            TELEMETRY_RUN_SHUTDOWN_TIMEOUT="2000",
            **{
                f"{prefix}CLIENT_KEY": key_file,
                f"{prefix}CLIENT_CERTIFICATE": certificates.client_cert_file,
            },
        )
        code, output = _run_on_a_terminal([*LAUNCHER, PYTHON, app], env, within=60)
        assert receiver.attempts == []
    assert code == 0, output
    assert "pass phrase" not in output.lower()
    naming = [line for line in output.splitlines() if f"{prefix}CLIENT_KEY=" in line]
    assert len(naming) == 1, output
    assert "passphrase-protected" in naming[0] and "the OTLP exporter is off" in naming[0]
    assert key_file not in output and SECRET not in output
    assert _counts(output) == (5, 0, 5, 0, 5, 0, 0)
