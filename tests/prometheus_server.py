"""A real ``prometheus`` (Debian's package) scraping given 127.0.0.1 targets every second, with
its own configuration and storage in a folder, on a free port, stopped by its PID.

Used by the Prometheus exporter's integration test. Where the binary is missing the test skips
naming it; in CI (``CI=true``, ``.ci/run`` installs it) it fails instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telemetry_run.testing.otlp import free_port
from tests.server_process import installed_or_skip, stop, wait_until_ready

__all__ = ["PrometheusServer", "prometheus_binary", "running_prometheus"]

#: Seconds the server may take to start: an outer bound that only catches one that hangs.
START_BOUND = 60.0


@dataclass(frozen=True)
class PrometheusServer:
    port: int
    pid: int

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a ``/api/v1/...`` answer (raises on an error status)."""
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:  # the API says why in its body
            raise RuntimeError(f"{path} {params}: {error.read().decode()}") from None
        if answer.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {answer}")
        return answer["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant vector: each series' ``metric`` labels and ``value`` as a float."""
        result = self.api("query", query=promql)["result"]
        return [{"metric": item["metric"], "value": float(item["value"][1])} for item in result]


def prometheus_binary() -> str:
    """The ``prometheus`` on PATH; skips (fails in CI) without one."""
    return installed_or_skip(
        shutil.which("prometheus"), "prometheus binary", "Prometheus server test", "prometheus"
    )


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def running_prometheus(
    folder: Path, target_ports: Sequence[int], *, features: Sequence[str] = ()
) -> Iterator[PrometheusServer]:
    """A throwaway server scraping ``127.0.0.1:<port>/metrics`` of each target every second
    (its own config, storage and log in ``folder``) until the block ends."""
    binary = prometheus_binary()
    port = free_port()
    targets = ", ".join(f'"127.0.0.1:{target}"' for target in target_ports)
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "scrape_configs:\n"
        "  - job_name: shop\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                *(f"--enable-feature={feature}" for feature in features),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(process, lambda: _ready(port), f"prometheus on {port}", log, START_BOUND)
        yield PrometheusServer(port, process.pid)
    finally:
        stop(process)
