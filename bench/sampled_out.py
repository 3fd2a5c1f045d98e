"""Sampled-out spans through the launchers: telemetry-run vs opentelemetry-instrument.

Each worker is a real ``python`` process started by its launcher, configured the way an
operator turns tracing down, not off: ``OTEL_TRACES_SAMPLER=always_off`` with the OTLP exporter
configured (OTLP/HTTP to a local testing receiver, which must receive nothing). One operation is
``bench/span_start_end.py``'s loop body (``with start_as_current_span("child") as s:`` plus 4
``set_attribute`` calls) on the global tracer the launcher set up, so each span is a root the
sampler drops.

Timings are the median microseconds per operation over all repetitions of all rounds, with GC
enabled; the two launchers take turns within each round, the order alternating, so drift hits
both. The ratio is ours divided by theirs (the target from issue 13 is at most 0.15x).

    python bench/sampled_out.py [--quick] [-v]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import run_worker, versions

CONTENDERS = ("us", "otel")
LAUNCHERS = {"us": "telemetry-run", "otel": "opentelemetry-instrument"}
DISTS = {"us": "telemetry-run", "otel": "opentelemetry-distro"}
TARGET = 0.15
WORKER_TIMEOUT = 120.0
ATTRIBUTES = (
    ("http.request.method", "GET"),
    ("http.response.status_code", 200),
    ("server.address", "example.com"),
    ("duration", 1.5),
)


def settings(endpoint: str) -> dict[str, str]:
    """The environment both launchers get (the same variables, each reads them itself)."""
    return {
        "OTEL_SERVICE_NAME": "bench",
        "OTEL_TRACES_SAMPLER": "always_off",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


# -- worker (runs under a launcher) -------------------------------------------------------------


def _tracer_and_setup(contender: str) -> tuple[Any, dict[str, Any]]:
    """The global tracer the launcher made, and what the launcher configured (for the checks)."""
    if contender == "us":
        from telemetry_run import trace
    else:
        from opentelemetry import trace  # type: ignore[no-redef]

    provider: Any = trace.get_tracer_provider()
    sampler = getattr(provider, "sampler", None)
    if contender == "us":
        processors = list(getattr(provider, "processors", ()))
    else:
        active = getattr(provider, "_active_span_processor", None)
        processors = list(getattr(active, "_span_processors", ()))
    exporters = []
    for processor in processors:
        inner = getattr(processor, "_batch_processor", processor)
        exporter = getattr(inner, "_exporter", None) or getattr(processor, "span_exporter", None)
        exporters.append(type(exporter).__module__ + "." + type(exporter).__name__)
    setup = {
        "provider": type(provider).__module__ + "." + type(provider).__name__,
        "sampler": sampler.get_description() if sampler is not None else None,
        "exporters": exporters,
    }
    return trace.get_tracer("bench"), setup


def worker(contender: str, n: int, reps: int) -> dict[str, Any]:
    tracer, setup = _tracer_and_setup(contender)

    def run(count: int) -> None:
        for _ in range(count):
            with tracer.start_as_current_span("child") as s:
                s.set_attribute("http.request.method", "GET")
                s.set_attribute("http.response.status_code", 200)
                s.set_attribute("server.address", "example.com")
                s.set_attribute("duration", 1.5)

    run(max(n // 4, 500))
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run(n)
        samples.append((time.perf_counter() - t0) / n * 1e6)
    with tracer.start_as_current_span("child") as s:
        for key, value in ATTRIBUTES:
            s.set_attribute(key, value)
        ctx = s.get_span_context()
    ok = (
        not s.is_recording()
        and ctx.is_valid
        and not ctx.trace_flags & 1
        and setup["sampler"] == "AlwaysOffSampler"
        and any("otlp" in name.lower() for name in setup["exporters"])
    )
    return {"samples": samples, "checks_ok": ok, "setup": setup}


# -- parent ---------------------------------------------------------------------------------


def _launcher(contender: str) -> str | None:
    """The launcher from this interpreter's own bin folder (another venv's would not fit)."""
    path = Path(sys.executable).parent / LAUNCHERS[contender]
    return str(path) if path.exists() else None


def _spawn(contender: str, env: dict[str, str], n: int, reps: int) -> dict[str, Any]:
    launcher = _launcher(contender)
    if launcher is None:
        return {"error": f"{LAUNCHERS[contender]} not installed next to {sys.executable}"}
    cmd = [launcher, sys.executable, str(Path(__file__).resolve())]
    cmd += ["--worker", contender, "--n", str(n), "--reps", str(reps)]
    result = run_worker(cmd, env, WORKER_TIMEOUT)
    if "error" not in result and not result["checks_ok"]:
        return {"error": f"checks failed: {result['setup']}"}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer iterations")
    parser.add_argument("-v", "--verbose", action="store_true", help="print what each set up")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=20_000, help=argparse.SUPPRESS)
    parser.add_argument("--reps", type=int, default=9, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.reps)), flush=True)
        return

    from telemetry_run.testing.otlp import OTLPReceiver

    rounds, reps, n = (2, 5, 10_000) if args.quick else (5, 9, 20_000)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DD_"))}
    samples: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    with OTLPReceiver(grpc=False) as receiver:
        env = {**base, **settings(receiver.http_base)}
        print(f"sampled_out: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, GC enabled")
        print(f"   {versions(*DISTS.values())}")
        print(
            "   settings (both): " + " ".join(f"{k}={v}" for k, v in settings("<receiver>").items())
        )
        for contender in CONTENDERS:
            print(
                f"   {contender}: {LAUNCHERS[contender]} python bench/sampled_out.py --worker ..."
            )
        print(f"   N={n} x {reps} reps, {rounds} rounds: root spans the sampler drops")
        for rnd in range(rounds):
            order = CONTENDERS if rnd % 2 == 0 else CONTENDERS[::-1]
            line = []
            for contender in order:
                res = _spawn(contender, env, n, reps)
                if "error" in res:
                    line.append(f"{contender} FAILED ({res['error']})")
                    continue
                samples[contender].extend(res["samples"])
                line.append(f"{contender} {statistics.median(res['samples']):.2f} µs")
                if args.verbose and rnd == 0:
                    print(f"   [{contender}] {json.dumps(res['setup'])}")
            print(f"   round {rnd + 1}: " + "  ".join(line))
        received = len(receiver.spans())
    med = {c: statistics.median(s) if s else None for c, s in samples.items()}
    ours, theirs = med["us"], med["otel"]
    ratio = f"{ours / theirs:.3f}x" if ours is not None and theirs else "n/a"
    print(
        "   median µs/op: "
        + " | ".join(f"{c} {'n/a' if med[c] is None else f'{med[c]:.2f}'}" for c in CONTENDERS)
        + f"   us/otel {ratio} (target <= {TARGET:.2f}x)"
    )
    print(f"   spans the receiver got: {received} (always_off: 0 expected)")
    if received:
        raise SystemExit("a sampled-out span was exported")


if __name__ == "__main__":
    main()
