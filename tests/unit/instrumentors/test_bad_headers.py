"""Hostile incoming trace headers through a real WSGI request: never an error, never passed on
invalid or oversized."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import flask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.flask import FlaskInstrumentor
from telemetry_run.sdk.propagation import inject
from telemetry_run.testing import SpanRecorder, config_for

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]")
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ATHERIS_RUNS = int(os.environ.get("ATHERIS_RUNS", "3000"))  # a person: ATHERIS_RUNS=1000000

# Header values a WSGI server can hand over: latin-1 text without line breaks.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=600,
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
    st.lists(st.builds(lambda k, v: f"{k}={v}", header_text, header_text), max_size=200).map(
        ",".join
    ),
)


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
