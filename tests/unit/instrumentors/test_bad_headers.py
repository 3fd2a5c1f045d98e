"""Hostile incoming trace headers through a real WSGI request: never an error, never passed on
invalid or oversized."""

from __future__ import annotations

import re
from typing import Any

import flask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry_run.instrumentors import plugin
from telemetry_run.instrumentors.flask import FlaskInstrumentor
from telemetry_run.sdk.propagation import inject
from telemetry_run.testing import SpanRecorder, config_for

TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]")
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

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


@pytest.fixture(scope="module")
def app() -> Any:
    recorder = SpanRecorder()
    instrumentor = FlaskInstrumentor()
    instrumentor.instrument(recorder.provider, config_for(plugin))
    application = flask.Flask("fuzz")

    @application.route("/downstream")
    def downstream() -> dict[str, str]:
        carrier: dict[str, str] = {}
        inject(carrier)  # what an outgoing call from this view would send
        return carrier

    yield application.test_client(), recorder
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
