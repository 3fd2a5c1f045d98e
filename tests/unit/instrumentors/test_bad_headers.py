"""Hostile incoming trace headers through a real WSGI request: never an error, never passed on
invalid or oversized, and never costly to parse.

Cost is counted, not timed (a timing would flake on a shared machine): the Python and C calls
made while the propagators extract the headers, with ``sys.setprofile``. The parsers read at
most a fixed number of list items (128 for tracestate, 360 for baggage) and reject an oversized
header before reading it, so the count has a bound whatever the input size; each C call they
make (``str.split``, ``strip``, ``translate``...) is linear in a size-capped string. A loop that
grew with the input would pass the bound on the large inputs below. No regular expression may
touch a tracestate or baggage value (one that can backtrack made a 64 KB tracestate cost 4 s):
the only pattern allowed is the fixed-position traceparent match.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.flask import FlaskInstrumentor
from telemetry_run.sdk.propagation import inject
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.testing import SpanRecorder, config_for

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]")
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ATHERIS_RUNS = int(os.environ.get("ATHERIS_RUNS", "3000"))  # a person: ATHERIS_RUNS=1000000

# Header values a WSGI server can hand over: latin-1 text without line breaks.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=600,
)
# Large and hostile: runs of commas, spaces and tabs, "=" storms, repeated members, up to the
# sizes a proxy passes (the parsers' caps are 32 KB for tracestate, 8 KB for baggage).
large_headers = st.builds(
    lambda head, unit, count: head + unit * count,
    st.sampled_from(["", "a=1", "a=1,b=2 "]),
    st.sampled_from([",", " ", "\t", "=", " \t,", ", \t", "a=1,", "k=v;p", " ,a", "a@b=1 ,"]),
    st.integers(0, 70_000),
)
traceparents = st.one_of(
    header_text,
    st.just(VALID),
    st.builds(
        lambda version, trace, span, flags: f"{version}-{trace}-{span}-{flags}",
        st.sampled_from(["00", "01", "cc", "ff", "0", "000"]),
        st.text("0123456789abcdefABCDEF", min_size=30, max_size=34),
        st.text("0123456789abcdef", min_size=15, max_size=17),
        st.text("0123456789abcdefx", min_size=1, max_size=3),
    ),
)
tracestates = st.one_of(
    header_text,
    large_headers,
    st.lists(
        st.builds(
            lambda k, v: f"{k}={v}",
            st.from_regex(r"[a-z][a-z0-9_*/@-]{0,20}", fullmatch=True),
            header_text,
        ),
        max_size=40,
    ).map(",".join),
)
baggages = st.one_of(
    header_text,
    large_headers,
    st.lists(st.builds(lambda k, v: f"{k}={v}", header_text, header_text), max_size=200).map(
        ",".join
    ),
)


# Calls made by one extract of both headers: about 2,300 for the largest valid pair, below
# 1,000 for most hostile ones; a parser whose work grows with the input passes this at once.
MAX_PARSE_CALLS = 10_000
_EXTRACTORS = (TraceContextTextMapPropagator().extract, W3CBaggagePropagator().extract)


def parse_cost(traceparent: str, tracestate: str, baggage: str) -> int:
    """The Python and C calls made to extract these headers; AssertionError if a regular
    expression other than the traceparent's fixed-position one is used. (The standard
    library's percent-decoding splits a capped baggage value on one character class,
    ``[\\x00-\\x7f]+``, which cannot backtrack: allowed.)"""
    import urllib.parse

    import telemetry_run.sdk.propagation.tracecontext as tracecontext

    percent_decoding = getattr(urllib.parse, "_asciire", None)

    carrier = {"traceparent": traceparent, "tracestate": tracestate, "baggage": baggage}
    calls = 0
    patterns: set[str] = set()

    def count(frame: object, event: str, arg: Callable[..., object] | None) -> None:
        nonlocal calls
        if event == "call" or event == "c_call":
            calls += 1
            owner = getattr(arg, "__self__", None)
            if isinstance(owner, re.Pattern) and not (
                owner is tracecontext._TRACEPARENT_RE or owner is percent_decoding
            ):
                patterns.add(owner.pattern)

    sys.setprofile(count)
    try:
        for extract in _EXTRACTORS:
            extract(carrier)
    finally:
        sys.setprofile(None)
    assert not patterns, f"a regular expression parsed a header: {patterns}"
    return calls


def instrumented_app() -> tuple[Any, SpanRecorder, FlaskInstrumentor]:
    """A Flask app under our instrumentor whose view returns what it would send downstream."""
    recorder = SpanRecorder()
    instrumentor = FlaskInstrumentor()
    instrumentor.instrument(recorder.provider, config_for(plugin))
    application = flask.Flask("fuzz")

    @application.route("/downstream")
    def downstream() -> dict[str, str]:
        carrier: dict[str, str] = {}
        inject(carrier)  # what an outgoing call from this view would send
        return carrier

    return application.test_client(), recorder, instrumentor


def serve_and_check(
    client: Any, recorder: SpanRecorder, traceparent: str, tracestate: str, baggage: str
) -> None:
    """One request with these headers: served, nothing of ours failed, and what would be
    propagated downstream is valid and within the W3C size limits."""
    recorder.clear()
    cost = parse_cost(traceparent, tracestate, baggage)
    assert cost <= MAX_PARSE_CALLS, (cost, len(tracestate), len(baggage))
    response = client.get(
        "/downstream",
        headers={"traceparent": traceparent, "tracestate": tracestate, "baggage": baggage},
    )
    sent = response.get_json()
    response.close()
    assert response.status_code == 200
    assert recorder.internal_errors == []
    assert TRACEPARENT.fullmatch(sent["traceparent"]), sent["traceparent"]
    state = sent.get("tracestate", "")
    assert len(state) <= 512 and (not state or len(state.split(",")) <= 32)
    carried = sent.get("baggage", "")
    assert len(carried.encode()) <= 8192 and (not carried or len(carried.split(",")) <= 180)
    [span] = recorder.spans
    if span.parent is not None:  # continued: only from a valid traceparent
        assert span.parent.is_valid and span.parent.is_remote
        assert sent["traceparent"][3:35] == traceparent[3:35].lower()


@pytest.fixture(scope="module")
def app() -> Any:
    client, recorder, instrumentor = instrumented_app()
    yield client, recorder
    instrumentor.uninstrument()
    recorder.shutdown()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(traceparent=traceparents, tracestate=tracestates, baggage=baggages)
def test_any_incoming_headers_are_served_and_never_passed_on_invalid(
    app: Any, traceparent: str, tracestate: str, baggage: str
) -> None:
    client, recorder = app
    serve_and_check(client, recorder, traceparent, tracestate, baggage)


def test_atheris_finds_no_header_that_breaks_a_request(tmp_path: Path) -> None:
    """Coverage-guided fuzzing (atheris, libFuzzer) of the same request, bounded in runs."""
    pytest.importorskip("atheris")
    harness = Path(__file__).parents[2] / "fuzz" / "fuzz_trace_headers.py"
    done = subprocess.run(
        [sys.executable, str(harness), f"-runs={ATHERIS_RUNS}", "-max_len=2048", "-seed=1"],
        cwd=Path(__file__).parents[3],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done" in done.stderr  # libFuzzer's last line after the requested runs


@pytest.mark.parametrize("size", [1 << 10, 8 << 10, 64 << 10, 1 << 20])
@pytest.mark.parametrize(
    "unit",
    ["a=1,", ",", " ", " \t", "=", " \t, \t", "k@v=x ,", "a=1;p=2,", "a" * 300 + "=1,", "%41="],
)
def test_the_cost_of_large_hostile_headers_is_bounded(unit: str, size: int) -> None:
    # The shapes of bench/header_parse.py, deterministically, up to 1 MB: a bounded number of
    # calls, none to a regular expression, and the header is not passed on.
    header = (unit * (size // len(unit) + 1))[:size]
    assert parse_cost(VALID, header, header) <= MAX_PARSE_CALLS
    assert parse_cost(VALID, "a=1," + header, header + ",a=1") <= MAX_PARSE_CALLS
