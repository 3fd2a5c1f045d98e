"""Incoming header parsing cost: telemetry-run vs opentelemetry-sdk's propagators, one run.

Microseconds per ``extract`` of a carrier holding a valid ``traceparent`` and a ``tracestate``
(or a ``baggage``) of 1 KB, 8 KB, 64 KB and 1 MB, in five shapes:

  valid    well-formed members (beyond the W3C limits, too many of them: what a proxy passes)
  commas   one member, then a run of commas (empty members)
  spaces   one member, then a run of spaces and tabs, then a second member
  ows      members separated by long runs of spaces and tabs on both sides of each comma
  equals   one key, then a run of ``=`` (an ``=`` storm)
  escapes  valid members whose values are percent-encoded UTF-8 (what baggage senders write)
  props    valid members with properties (``k=v;p=1``)
  eqows    members with whitespace around the ``=`` (``k = v``)
  dups     one valid member repeated (every member read, none added past the first)
  mixed    valid members alternating with invalid ones (``a b=1``, ``=1``, ``x``)

Both propagators run in this process (parsing is pure Python; neither one's import touches the
other's). The time of a cell is the median of its rounds, each round as many calls as fit in a
time budget (at least one). A contender whose cost grows so fast that the next size would take
more than ``--cap`` seconds per call is not run at that size (shown as ``skip``): a quadratic
parser at 1 MB takes hours. Ratios are ours divided by theirs (< 1.00x: we are faster).

Target (issue 12): under 50 µs for any input at any size, flat beyond the size cap.

    python bench/header_parse.py [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable

from _common import versions

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SIZES = {"1 KB": 1 << 10, "8 KB": 8 << 10, "64 KB": 64 << 10, "1 MB": 1 << 20}
SHAPES = (
    "valid",
    "commas",
    "spaces",
    "ows",
    "equals",
    "escapes",
    "props",
    "eqows",
    "dups",
    "mixed",
)


def _fill(unit: str, head: str, tail: str, size: int) -> str:
    body = size - len(head) - len(tail)
    return head + (unit * (body // len(unit) + 1))[: max(body, 0)] + tail


def _repeated(shape: str, size: int) -> str:
    """Members of the shapes that repeat one pattern, numbered, up to ``size`` characters."""
    pattern = {
        "escapes": "k{}=caf%C3%A9%20%E2%82%AC",
        "props": "k{}=v;p=1",
        "eqows": "k{} = v",
        "dups": "k=v",
        "mixed": "k{}=v,a b=1,=1,x",
    }[shape]
    members = []
    total = 0
    i = 0
    while total < size:
        member = pattern.format(i)
        members.append(member)
        total += len(member) + 1
        i += 1
    return ",".join(members)[:size]


def tracestate(shape: str, size: int) -> str:
    if shape in ("escapes", "props", "eqows", "dups", "mixed"):
        return _repeated(shape, size)
    if shape == "valid":
        members = []
        total = 0
        i = 0
        while total < size:
            member = f"k{i}=" + "v" * 60
            members.append(member)
            total += len(member) + 1
            i += 1
        return ",".join(members)[:size]
    if shape == "commas":
        return _fill(",", "a=1", "", size)
    if shape == "spaces":
        return _fill(" \t", "a=1", "x,b=2", size)
    if shape == "ows":
        return _fill(" \t" * 40 + "," + " \t" * 40 + "a=1", "a=1", "", size)
    return _fill("=", "a", "", size)


def baggage(shape: str, size: int) -> str:
    if shape in ("escapes", "props", "eqows", "dups", "mixed"):
        return _repeated(shape, size)
    if shape == "valid":
        members = []
        total = 0
        i = 0
        while total < size:
            member = f"key{i}=" + "v" * 40
            members.append(member)
            total += len(member) + 1
            i += 1
        return ",".join(members)[:size]
    if shape == "commas":
        return _fill(",", "a=1", "", size)
    if shape == "spaces":
        return _fill(" \t", "a=1", "x,b=2", size)
    if shape == "ows":
        return _fill(" \t" * 40 + "," + " \t" * 40 + "a=1", "a=1", "", size)
    return _fill("=", "a", "", size)


def extractors() -> dict[str, dict[str, Callable[[dict[str, str]], object]]]:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator as OtelBaggage
    from opentelemetry.trace.propagation.tracecontext import (
        TraceContextTextMapPropagator as OtelTraceContext,
    )

    from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
    from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator

    return {
        "tracestate": {
            "us": TraceContextTextMapPropagator().extract,
            "otel": OtelTraceContext().extract,
        },
        "baggage": {"us": W3CBaggagePropagator().extract, "otel": OtelBaggage().extract},
    }


def per_call(
    extract: Callable[[dict[str, str]], object], carrier: dict[str, str], budget: float
) -> float:
    """Seconds per call: as many calls as fit in ``budget`` (at least one)."""
    calls = 0
    started = time.perf_counter()
    elapsed = 0.0
    while calls == 0 or elapsed < budget:
        extract(carrier)
        calls += 1
        elapsed = time.perf_counter() - started
    return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 20 ms per cell")
    parser.add_argument("--cap", type=float, default=2.0, help="seconds per call not to exceed")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # opentelemetry logs each rejected header, in full
    rounds, budget = (1, 0.02) if args.quick else (5, 0.1)
    print(
        f"header_parse: python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
        + versions("telemetry-run", "opentelemetry-api", "opentelemetry-sdk")
    )
    print(f"{rounds} round(s) of {budget * 1000:.0f} ms per cell; µs per extract, median\n")
    makers = {"tracestate": tracestate, "baggage": baggage}
    worst = 0.0
    for header, contenders in extractors().items():
        title = f"{header:<11}{'shape':<8}{'size':>6}{'us':>12}{'otel':>12}{'us/otel':>10}"
        print(title)
        print("-" * len(title))
        for shape in SHAPES:
            last: dict[str, tuple[int, float]] = {}
            for label, size in SIZES.items():
                carrier = {"traceparent": TRACEPARENT, header: makers[header](shape, size)}
                cells: dict[str, float | None] = {}
                for name, extract in contenders.items():
                    previous = last.get(name)
                    # Quadratic growth from the last size: would one call pass the cap?
                    if previous and previous[1] * (size / previous[0]) ** 2 > args.cap:
                        cells[name] = None
                        continue
                    seconds = statistics.median(
                        per_call(extract, carrier, budget) for _ in range(rounds)
                    )
                    last[name] = (size, seconds)
                    cells[name] = seconds * 1e6
                ours, theirs = cells["us"], cells["otel"]
                worst = max(worst, ours or 0.0)
                ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
                print(
                    f"{'':<11}{shape:<8}{label:>6}"
                    + "".join(
                        f"{c:>12.1f}" if c is not None else f"{'skip':>12}" for c in cells.values()
                    )
                    + f"{ratio:>10}"
                )
        print()
    print(f"worst case for us: {worst:.1f} µs per extract (target: under 50 µs)")


if __name__ == "__main__":
    main()
