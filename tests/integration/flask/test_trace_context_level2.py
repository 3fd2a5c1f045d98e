"""W3C Trace Context Level 2 through a real Flask server under telemetry-run.

The app calls a second local server with ``requests``; that server records the ``traceparent``
and ``tracestate`` it is sent. The spans go to the real OTLP receiver.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import otlp_env, served
from tests.integration.downstream import downstream_server
from tests.integration.flask.test_flask import get

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("flask")
import requests  # noqa: F401  # installed in every flask session (tests/matrix.py SERVERS)

APP = """
import os
import flask
import requests

app = flask.Flask(__name__)


@app.route("/call")
def call():
    return str(requests.get(os.environ["DOWNSTREAM"] + "/record", timeout=10).status_code)
"""

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
SERVER = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER


@pytest.fixture
def downstream() -> Iterator[tuple[str, list[dict[str, str]]]]:
    with downstream_server() as server:
        yield server


def test_outgoing_traceparent_flags_and_tracestate_follow_level_2(
    otlp_receiver: OTLPReceiver, tmp_path: Path, downstream: tuple[str, list[dict[str, str]]]
) -> None:
    base, seen = downstream
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = otlp_env(otlp_receiver, PYTHONPATH=str(tmp_path), DOWNSTREAM=base)
    command = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    # Level 2 keys, a duplicate (kept once, the first), OWS and empty members, two lines.
    tracestate = "1vendor=a, foo@=b,,a@@b=c"
    incoming = {
        "generated": None,
        "random": f"00-{TRACE_ID}-{PARENT_ID}-03",
        "not random": f"00-{TRACE_ID}-{PARENT_ID}-01",
        "unknown bits": f"00-{TRACE_ID}-{PARENT_ID}-fd",
    }
    with served(command, port=port, env=env, cwd=tmp_path) as app:
        for traceparent in incoming.values():
            headers = {} if traceparent is None else {"traceparent": traceparent}
            if traceparent is not None:
                headers["tracestate"] = tracestate + ", \t1vendor=dup,\t"
            assert get(app.url("/call"), headers) == (200, b"200")
        spans = otlp_receiver.wait_for_spans(2 * len(incoming), timeout=20)
        assert app.stop() in (0, -15)
    sent = dict(zip(incoming, seen, strict=True))
    parents = {name: headers["traceparent"].split("-") for name, headers in sent.items()}
    assert parents["generated"][0] == "00"
    assert parents["generated"][1] != TRACE_ID
    assert parents["generated"][3] == "03"  # our trace id is random, and sampled
    assert parents["random"][1:4:2] == [TRACE_ID, "03"]
    assert parents["not random"][1:4:2] == [TRACE_ID, "01"]
    assert parents["unknown bits"][1:4:2] == [TRACE_ID, "01"]  # only defined bits go on
    assert "tracestate" not in sent["generated"]
    for name in ("random", "not random", "unknown bits"):
        assert sent[name]["tracestate"] == "1vendor=a,foo@=b,a@@b=c"

    # The OTLP span flags: the W3C flags in bits 0-7, the remote parent in bits 8-9.
    server_flags = sorted(span.flags for span in spans if span.kind == SERVER)
    # generated (root: has-is-remote only), not random, unknown bits, random (remote parent)
    assert server_flags == [0x103, 0x301, 0x301, 0x303]
