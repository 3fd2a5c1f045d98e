"""Cost per redis ``GET`` against a real redis-server: bare vs telemetry-run vs opentelemetry.

One redis-server (Debian's package) on a free 127.0.0.1 port, started here and stopped by its
PID. Each contender runs in a worker process of its own, per round: ``bare`` (redis-py alone),
``us`` (our RedisInstrumentor) and ``otel`` (opentelemetry-instrumentation-redis), the two
tracers exporting into a batch processor whose exporter discards. Before anything is timed,
each tracer must show one CLIENT span named ``GET`` per call (counted at the exporter); a
contender that fails its check is FAILED, so a broken setup cannot produce a fast number.

Figures are median microseconds per ``GET`` (one key, a short value, a kept connection);
``added`` is a contender's median minus bare's, and ``us/otel`` divides our added time by
theirs (below 1.00x we add less; the issue's target is at most 0.33x).

    python bench/redis_get.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import versions

TRACERS = ("us", "otel")
LABELS = {"us": "telemetry-run", "otel": "opentelemetry-instrumentation-redis"}
CHECK_CALLS = 20
WORKER_TIMEOUT = 180.0
FULL = {"rounds": 4, "reps": 20, "n": 500}
QUICK = {"rounds": 2, "reps": 8, "n": 300}
TARGET = 0.33


@contextlib.contextmanager
def _redis_server() -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as folder:
        process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", folder, "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(600):  # up to about 30 s
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                if process.poll() is not None:
                    raise SystemExit(f"redis-server exited ({process.returncode})")
                time.sleep(0.05)
            yield port
        finally:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


# -- worker side (each imports only its own contender) -----------------------------------------


def _setup_us(collected: list[tuple[str, str]]) -> tuple[Callable[[], Any], Any]:
    from telemetry_run.instrumentors import plugin
    from telemetry_run.instrumentors.redis import RedisInstrumentor
    from telemetry_run.sdk import BatchSpanProcessor, ExportResult, TracerProvider
    from telemetry_run.testing import config_for

    class DiscardingExporter:
        def export(self, spans: Any, *, deadline: float) -> Any:
            collected.extend((s.name, s.kind.name) for s in spans)
            return ExportResult(True)

        def force_flush(self, *, deadline: float) -> bool:
            return True

        def shutdown(self, *, deadline: float) -> None:
            return None

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    instrumentor = RedisInstrumentor()
    config = config_for(plugin, {})
    return provider.force_flush, (
        lambda: instrumentor.instrument(provider, config),
        instrumentor.uninstrument,
    )


def _setup_otel(collected: list[tuple[str, str]]) -> tuple[Callable[[], Any], Any]:
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DiscardingExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            collected.extend((s.name, s.kind.name) for s in spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    instrumentor = RedisInstrumentor()
    return provider.force_flush, (
        lambda: instrumentor.instrument(tracer_provider=provider),
        instrumentor.uninstrument,
    )


def _block(get: Callable[[str], Any], n: int) -> tuple[float, float]:
    """Microseconds per call: wall clock, and this process's CPU time (ours, redis-py's)."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        get("bench:key")
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def _worker(contender: str, port: int, n: int, reps: int) -> dict[str, Any]:
    """Alternate blocks without and with the contender's instrumentation, on one connection:
    the paired differences cancel the drift of a shared machine's load."""
    collected: list[tuple[str, str]] = []
    flush, (instrument, uninstrument) = (_setup_us if contender == "us" else _setup_otel)(collected)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    client.set("bench:key", "value")
    instrument()
    flush()
    collected.clear()
    for _ in range(CHECK_CALLS):
        if client.get("bench:key") != b"value":
            raise RuntimeError("GET returned something else")
    flush()
    if collected != [("GET", "CLIENT")] * CHECK_CALLS:
        raise RuntimeError(f"check failed: {collected[:5]!r}... ({len(collected)} spans)")
    result: dict[str, list[float]] = {"bare": [], "traced": [], "bare_cpu": [], "traced_cpu": []}
    for _ in range(reps):
        uninstrument()
        wall, cpu = _block(client.get, n)
        result["bare"].append(wall)
        result["bare_cpu"].append(cpu)
        instrument()
        wall, cpu = _block(client.get, n)
        flush()  # the batch processor's export work is counted in the block that made it
        result["traced"].append(wall)
        result["traced_cpu"].append(cpu)
    return {"contender": contender, **result}


# -- driver side ---------------------------------------------------------------------------------


def _spawn(contender: str, port: int, n: int, reps: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_RUN_"))}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", contender]
    cmd += ["--port", str(port), "--n", str(n), "--reps", str(reps)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {WORKER_TIMEOUT:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def _added(runs: list[dict[str, Any]], suffix: str) -> float:
    """The median of the paired (traced minus bare) block differences."""
    return statistics.median(
        traced - bare
        for run in runs
        for bare, traced in zip(run["bare" + suffix], run["traced" + suffix], strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=TRACERS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--n", type=int)
    parser.add_argument("--reps", type=int)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(_worker(args.worker, args.port, args.n, args.reps)))
        return
    size = QUICK if args.quick else FULL
    print(f"# redis GET per call ({'quick' if args.quick else 'full'})")
    print(
        versions(
            "redis", "telemetry-run", "opentelemetry-sdk", "opentelemetry-instrumentation-redis"
        )
    )
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in TRACERS}
    failed: dict[str, str] = {}
    with _redis_server() as port:
        for _ in range(size["rounds"]):
            for contender in TRACERS:  # interleaved: load drifts hit each alike
                if contender in failed:
                    continue
                result = _spawn(contender, port, size["n"], size["reps"])
                if "error" in result:
                    failed[contender] = result["error"]
                else:
                    runs[contender].append(result)
    print()
    print("| contender | bare us/GET | added us (wall) | added us (CPU) |")
    print("|---|---:|---:|---:|")
    added: dict[str, float] = {}
    for contender in TRACERS:
        if contender in failed:
            print(f"| {LABELS[contender]} | FAILED: {failed[contender]} | | |")
            continue
        bare = statistics.median(b for run in runs[contender] for b in run["bare"])
        wall, added[contender] = _added(runs[contender], ""), _added(runs[contender], "_cpu")
        print(f"| {LABELS[contender]} | {bare:.1f} | {wall:.1f} | {added[contender]:.1f} |")
    if "us" in added and "otel" in added:
        ours, theirs = added["us"], added["otel"]
        ratio = f"{ours / theirs:.2f}x" if theirs > 0 else "n/a (otel adds nothing measurable)"
        print(f"\nus/otel (added CPU per GET): {ratio} (target at most {TARGET:.2f}x)")


if __name__ == "__main__":
    main()
