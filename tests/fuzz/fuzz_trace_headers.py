"""atheris (libFuzzer) harness: hostile traceparent, tracestate and baggage headers through a
Flask request under our instrumentor. Any exception, a 500, an invalid or oversized context
propagated downstream, or a costly parse is a crash that libFuzzer reports with the input that
caused it.

Cost is an axis of its own: a fuzzed stretch can be repeated up to 70 KB (``mode`` 3), and
``serve_and_check`` counts the calls the parsers make (deterministic, see test_bad_headers.py).
With ``FUZZ_TIMING=1`` each input is also timed against a benign header of the same size (a
run of one valid member): more than 20 times as slow and over 5 ms is a finding. That check
uses the wall clock, so it is for a person's fuzzing run, never for the unit suite.

    python tests/fuzz/fuzz_trace_headers.py -runs=1000000 -max_len=2048 [corpus_dir]
    FUZZ_TIMING=1 python tests/fuzz/fuzz_trace_headers.py -runs=100000 -max_len=256

The unit suite runs it for a few thousand inputs (tests/unit/instrumentors/test_bad_headers.py).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.*

with atheris.instrument_imports(include=["telemetry_run"]):
    from tests.unit.instrumentors.test_bad_headers import (
        _EXTRACTORS,
        instrumented_app,
        serve_and_check,
    )

CLIENT, RECORDER, _ = instrumented_app()
VALID_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TIMING = os.environ.get("FUZZ_TIMING") == "1"
SLOWER = 20.0  # times the benign input's cost ...
FLOOR = 0.005  # ... and seconds: both must be passed for a finding


def _seconds(tracestate: str, baggage: str) -> float:
    """The best of three extracts of both headers (the best: noise only adds time)."""
    carrier = {"traceparent": VALID_PARENT, "tracestate": tracestate, "baggage": baggage}
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for extract in _EXTRACTORS:
            extract(carrier)
        best = min(best, time.perf_counter() - started)
    return best


def _check_timing(tracestate: str, baggage: str) -> None:
    benign_state = ("a=1," * (len(tracestate) // 4 + 1))[: len(tracestate)]
    benign_baggage = ("a=1," * (len(baggage) // 4 + 1))[: len(baggage)]
    cost = _seconds(tracestate, baggage)
    benign = _seconds(benign_state, benign_baggage)
    if cost > FLOOR and cost > SLOWER * benign:
        raise AssertionError(f"slow headers: {cost * 1e3:.1f} ms vs {benign * 1e3:.2f} ms benign")


def _header(data: atheris.FuzzedDataProvider, size: int) -> str:
    # What a WSGI server hands over: latin-1 text, no line breaks (servers refuse those).
    text = data.ConsumeBytes(size).decode("latin-1")
    return text.replace("\r", "").replace("\n", "")


def one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    mode = data.ConsumeIntInRange(0, 3)
    traceparent = _header(data, data.ConsumeIntInRange(0, 80))
    if mode == 1:  # mostly valid: mutate one stretch of a real traceparent
        at = data.ConsumeIntInRange(0, len(VALID_PARENT))
        traceparent = VALID_PARENT[:at] + traceparent[:4] + VALID_PARENT[at + 4 :]
    elif mode >= 2:
        traceparent = VALID_PARENT  # a valid parent: tracestate and baggage are carried on
    tracestate = _header(data, data.ConsumeIntInRange(0, 1200))
    baggage = _header(data, data.remaining_bytes())
    if mode == 3:  # large: each header's fuzzed stretch repeated up to about 70 KB
        tracestate *= 70_000 // max(len(tracestate), 1)
        baggage *= 70_000 // max(len(baggage), 1)
    if TIMING:
        _check_timing(tracestate, baggage)
    serve_and_check(CLIENT, RECORDER, traceparent, tracestate, baggage)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
