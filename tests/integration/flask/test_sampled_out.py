"""Sampled-out traces through a real Flask server under telemetry-run.

Under ``always_off``, or below an unsampled incoming parent with the default parent-based
sampler, the app's spans are dropped; the trace must still go on: the outgoing ``requests``
call carries the trace id on, with flags 00 (02 when the trace id is ours, random), under a
span id of its own. The real OTLP receiver must receive nothing.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import otlp_env, served
from tests.integration.flask.test_flask import get
from tests.integration.flask.test_trace_context_level2 import (  # the fixture too
    APP,
    PARENT_ID,
    TRACE_ID,
    downstream,  # noqa: F401
)

if TYPE_CHECKING:
    from telemetry_run.testing.otlp import OTLPReceiver

pytest.importorskip("flask")


@pytest.mark.parametrize("sampler", ["parentbased_always_on", "always_off"])
def test_a_dropped_trace_goes_on_downstream_and_nothing_is_exported(
    otlp_receiver: OTLPReceiver,
    tmp_path: Path,
    downstream: tuple[str, list[dict[str, str]]],  # noqa: F811  # the imported fixture
    sampler: str,
) -> None:
    base, seen = downstream
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = otlp_env(
        otlp_receiver, PYTHONPATH=str(tmp_path), DOWNSTREAM=base, OTEL_TRACES_SAMPLER=sampler
    )
    command = [sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)]
    incoming = {
        "not random": f"00-{TRACE_ID}-{PARENT_ID}-00",
        "random": f"00-{TRACE_ID}-{PARENT_ID}-02",
    }
    if sampler == "always_off":
        incoming["generated"] = None  # a root: always_off drops it too
    with served(command, port=port, env=env, cwd=tmp_path) as app:
        for traceparent in incoming.values():
            headers = {} if traceparent is None else {"traceparent": traceparent}
            assert get(app.url("/call"), headers) == (200, b"200")
        assert app.stop() in (0, -15)  # its exit flush has run: anything queued was sent
    assert otlp_receiver.spans() == []
    sent = dict(zip(incoming, seen, strict=True))
    parents = {name: headers["traceparent"].split("-") for name, headers in sent.items()}
    for name in ("not random", "random"):
        version, trace_id, span_id, flags = parents[name]
        assert (version, trace_id) == ("00", TRACE_ID)
        assert span_id not in (PARENT_ID, "0" * 16)  # the client span's own id
        assert flags == ("00" if name == "not random" else "02")
    if sampler == "always_off":
        version, trace_id, span_id, flags = parents["generated"]
        assert trace_id not in (TRACE_ID, "0" * 32) and span_id != "0" * 16
        assert flags == "02"  # our trace id is random; not sampled
