"""atheris (libFuzzer) harness: hostile traceparent, tracestate and baggage headers through a
Flask request under our instrumentor. Any exception, a 500, or an invalid or oversized context
propagated downstream is a crash that libFuzzer reports with the input that caused it.

    python tests/fuzz/fuzz_trace_headers.py -runs=1000000 -max_len=2048 [corpus_dir]

The unit suite runs it for a few thousand inputs (tests/unit/instrumentors/test_bad_headers.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.*

with atheris.instrument_imports(include=["telemetry_run"]):
    from tests.unit.instrumentors.test_bad_headers import instrumented_app, serve_and_check

CLIENT, RECORDER, _ = instrumented_app()
VALID_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _header(data: atheris.FuzzedDataProvider, size: int) -> str:
    # What a WSGI server hands over: latin-1 text, no line breaks (servers refuse those).
    text = data.ConsumeBytes(size).decode("latin-1")
    return text.replace("\r", "").replace("\n", "")


def one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    mode = data.ConsumeIntInRange(0, 2)
    traceparent = _header(data, data.ConsumeIntInRange(0, 80))
    if mode == 1:  # mostly valid: mutate one stretch of a real traceparent
        at = data.ConsumeIntInRange(0, len(VALID_PARENT))
        traceparent = VALID_PARENT[:at] + traceparent[:4] + VALID_PARENT[at + 4 :]
    elif mode == 2:
        traceparent = VALID_PARENT  # a valid parent: tracestate and baggage are carried on
    tracestate = _header(data, data.ConsumeIntInRange(0, 1200))
    baggage = _header(data, data.remaining_bytes())
    serve_and_check(CLIENT, RECORDER, traceparent, tracestate, baggage)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
