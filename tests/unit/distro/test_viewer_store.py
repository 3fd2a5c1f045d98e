"""The viewer's bounded trace store and the OTLP decoding feeding it (``--view``)."""

from __future__ import annotations

import math

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from telemetry_run.viewer.decode import (
    MAX_ITEMS,
    MAX_SPAN_BYTES,
    MAX_STRING,
    decode_request,
    span_details,
)
from telemetry_run.viewer.store import TraceStore
from tests.unit.distro.viewer_requests import S, request, span_id, trace_id


def _store(*specs: S, **limits: int) -> TraceStore:
    store = TraceStore(**limits)
    store.add(*decode_request(request(*specs)))
    return store


def test_spans_are_grouped_by_trace_id_across_requests_and_services() -> None:
    store = TraceStore()
    store.add(*decode_request(request(S(1, 1, name="GET /a"), S(2, 5, name="GET /b"))))
    store.add(*decode_request(request(S(1, 2, p=1, service="billing"), S(2, 6, p=5))))
    lines = {line["trace_id"]: line for line in store.summaries()}
    assert set(lines) == {trace_id(1), trace_id(2)}
    assert lines[trace_id(1)]["span_count"] == 2
    assert lines[trace_id(1)]["root_name"] == "GET /a"
    assert lines[trace_id(1)]["service"] == "shop"
    assert lines[trace_id(1)]["services"] == ["billing", "shop"]
    assert lines[trace_id(2)]["root_name"] == "GET /b"
    assert store.services() == ["billing", "shop"]


def test_the_oldest_trace_is_evicted_first_and_counted() -> None:
    store = TraceStore(max_traces=2)
    for n in (1, 2, 3):
        store.add(*decode_request(request(S(n, 10 * n), S(n, 10 * n + 1, p=10 * n))))
    store.add(*decode_request(request(S(2, 29, p=20))))  # a late span keeps no trace alive longer
    store.add(*decode_request(request(S(4, 40))))
    assert store.trace(trace_id(1)) is None and store.trace(trace_id(2)) is None
    assert {line["trace_id"] for line in store.summaries()} == {trace_id(3), trace_id(4)}
    stats = store.stats()
    assert stats["traces"] == 2
    assert stats["evicted_traces"] == 2
    assert stats["evicted_spans"] == 5
    assert stats["received_spans"] == 8


def test_spans_beyond_the_per_trace_cap_are_dropped_and_counted() -> None:
    store = _store(*(S(1, n, p=1 if n > 1 else 0) for n in range(1, 6)), max_spans_per_trace=3)
    (line,) = store.summaries()
    assert line["span_count"] == 3
    assert line["dropped_spans"] == 2
    assert store.stats()["spans_over_trace_cap"] == 2
    trace = store.trace(trace_id(1))
    assert trace is not None and [s["span_id"] for s in trace["spans"]] == [
        span_id(1),
        span_id(2),
        span_id(3),
    ]


def test_a_resent_span_is_kept_once() -> None:
    store = TraceStore()
    batch = decode_request(request(S(1, 1), S(1, 2, p=1)))
    store.add(*batch)
    store.add(*batch)  # an exporter retrying a batch that had arrived
    (line,) = store.summaries()
    assert line["span_count"] == 2
    assert store.stats()["duplicate_spans"] == 2


def test_errors_are_counted_and_filter_the_list() -> None:
    store = _store(S(1, 1), S(2, 2, start_ms=5), S(2, 3, p=2, error=True), S(2, 4, p=2, error=True))
    lines = {line["trace_id"]: line for line in store.summaries()}
    assert lines[trace_id(1)]["error_count"] == 0
    assert lines[trace_id(2)]["error_count"] == 2
    assert [line["trace_id"] for line in store.summaries(errors_only=True)] == [trace_id(2)]


def test_the_service_filter_keeps_traces_the_service_took_part_in() -> None:
    store = _store(S(1, 1), S(1, 2, p=1, service="billing"), S(2, 3), S(3, 4, service="billing"))
    assert {line["trace_id"] for line in store.summaries(service="billing")} == {
        trace_id(1),
        trace_id(3),
    }
    assert store.summaries(service="nobody") == []


def test_the_list_shows_the_latest_trace_first() -> None:
    store = _store(
        S(1, 1, start_ms=30, end_ms=31),
        S(2, 2, start_ms=10, end_ms=11),
        S(3, 3, start_ms=20, end_ms=21),
    )
    assert [line["trace_id"] for line in store.summaries()] == [
        trace_id(1),
        trace_id(3),
        trace_id(2),
    ]


def test_a_trace_is_depth_first_with_children_by_start_time() -> None:
    store = _store(
        S(1, 4, p=2, name="tax", start_ms=3, end_ms=4),
        S(1, 3, p=1, name="second", start_ms=6, end_ms=9),
        S(1, 2, p=1, name="first", start_ms=2, end_ms=5),
        S(1, 1, name="GET /checkout", start_ms=0, end_ms=10),
    )
    trace = store.trace(trace_id(1))
    assert trace is not None
    rows = [(s["name"], s["depth"], s["parent_missing"]) for s in trace["spans"]]
    assert rows == [
        ("GET /checkout", 0, False),
        ("first", 1, False),
        ("tax", 2, False),
        ("second", 1, False),
    ]
    assert trace["duration_ms"] == 10
    tax = trace["spans"][2]
    assert tax["offset_ms"] == 3 and tax["duration_ms"] == 1


def test_a_span_whose_parent_is_elsewhere_is_a_root_marked_remote() -> None:
    store = _store(S(1, 2, p=99, name="GET /stock", start_ms=1), S(1, 3, p=2, name="query"))
    trace = store.trace(trace_id(1))
    assert trace is not None
    assert [(s["name"], s["depth"], s["parent_missing"]) for s in trace["spans"]] == [
        ("GET /stock", 0, True),
        ("query", 1, False),
    ]
    assert trace["root_has_parent"] is True
    assert trace["root_name"] == "GET /stock"


def test_the_true_root_is_named_before_an_orphan() -> None:
    store = _store(S(1, 5, p=77, name="late child", start_ms=0), S(1, 1, name="root", start_ms=1))
    (line,) = store.summaries()
    assert line["root_name"] == "root" and line["root_has_parent"] is False


def test_a_cycle_of_parent_ids_still_shows_every_span() -> None:
    store = _store(S(1, 1, p=2), S(1, 2, p=1))
    trace = store.trace(trace_id(1))
    assert trace is not None
    assert sorted(s["span_id"] for s in trace["spans"]) == [span_id(1), span_id(2)]
    assert all(s["parent_missing"] for s in trace["spans"] if s["depth"] == 0)


def test_events_exceptions_links_and_resource_reach_the_trace_view() -> None:
    store = _store(
        S(
            1,
            1,
            error=True,
            end_ms=8,
            attributes={"http.route": "/pay", "retries": 2, "ok": False, "ratio": 0.5},
            events=[("exception", 4, {"exception.type": "ValueError", "exception.message": "no"})],
            links=[(7, 8)],
        )
    )
    trace = store.trace(trace_id(1))
    assert trace is not None
    (span,) = trace["spans"]
    assert span["attributes"] == [
        ("http.route", "/pay"),
        ("retries", 2),
        ("ok", False),
        ("ratio", 0.5),
    ]
    assert span["events"] == [
        {
            "name": "exception",
            "offset_ms": 4,
            "attributes": [("exception.type", "ValueError"), ("exception.message", "no")],
        }
    ]
    assert span["links"] == [{"trace_id": trace_id(7), "span_id": span_id(8), "attributes": []}]
    assert span["resource"] == [("service.name", "shop"), ("host.name", "h1")]
    assert span["status"] == {"code": "error", "message": "it broke"}
    assert span["scope"] == {"name": "tests", "version": "1.0"}
    assert span["kind"] == "server"


def test_an_unknown_trace_is_none() -> None:
    assert _store(S(1, 1)).trace(trace_id(2)) is None


def test_spans_without_valid_ids_are_counted_not_stored() -> None:
    req = request(S(1, 1))
    spans = req.resource_spans[0].scope_spans[0].spans
    spans.append(trace_pb2.Span(trace_id=b"\0" * 16, span_id=b"\1" * 8, name="zero trace id"))
    spans.append(trace_pb2.Span(trace_id=b"\1" * 3, span_id=b"\1" * 8, name="short trace id"))
    spans.append(trace_pb2.Span(trace_id=b"\1" * 16, span_id=b"", name="no span id"))
    store = TraceStore()
    store.add(*decode_request(req))
    assert [line["trace_id"] for line in store.summaries()] == [trace_id(1)]
    assert store.stats()["invalid_spans"] == 3


def test_values_are_capped_and_made_json_safe() -> None:
    many = {f"k{n}": n for n in range(MAX_ITEMS + 10)}
    (record,), _ = decode_request(request(S(1, 1, name="x" * (MAX_STRING + 50), attributes=many)))
    assert len(record.name) == MAX_STRING and record.name.endswith("…")
    assert len(span_details(record)["attributes"]) == MAX_ITEMS
    (record,), _ = decode_request(
        request(
            S(
                1,
                1,
                attributes={
                    "nan": math.nan,
                    "inf": math.inf,
                    "raw": b"\x00\xff",
                    "list": [1, "two", [3]],
                    "map": {"a": {"b": 1}},
                },
            )
        )
    )
    assert dict(span_details(record)["attributes"]) == {
        "nan": "nan",
        "inf": "inf",
        "raw": "AP8=",
        "list": [1, "two", [3]],
        "map": [("a", [("b", 1)])],
    }


def test_a_span_too_large_to_keep_is_cut_down_and_marked() -> None:
    huge = "y" * (MAX_SPAN_BYTES * 2)
    (record,), _ = decode_request(
        request(
            S(
                1,
                1,
                attributes={"http.route": "/upload", "body": huge, "blob": [huge]},
                events=[("log", 1, {"line": huge})] * 3,
            )
        )
    )
    assert record.trimmed and len(record.raw) <= MAX_SPAN_BYTES
    details = span_details(record)
    attributes = dict(details["attributes"])
    assert attributes["http.route"] == "/upload"  # what is small is kept as it was
    assert len(attributes["body"]) == MAX_STRING and attributes["body"].endswith("…")
    assert attributes["blob"].startswith("… (") and "too large to keep" in attributes["blob"]
    assert [event["name"] for event in details["events"]] == ["log"] * 3
    (small,), _ = decode_request(request(S(1, 2, attributes={"body": "short"})))
    assert not small.trimmed


def test_the_oldest_traces_are_evicted_to_stay_within_the_byte_budget() -> None:
    records, _ = decode_request(
        request(*(S(n, n, attributes={"pad": "z" * 1000}) for n in (1, 2, 3, 4)))
    )
    budget = sum(record.size for record in records[:2])  # room for two of them
    store = TraceStore(max_bytes=budget)
    store.add(records)
    assert {line["trace_id"] for line in store.summaries()} == {trace_id(3), trace_id(4)}
    stats = store.stats()
    assert stats["evicted_traces"] == 2 and stats["bytes"] <= budget


def test_a_trace_larger_than_the_budget_is_kept_alone_and_capped_in_spans() -> None:
    records, _ = decode_request(request(S(1, 1), *(S(2, n, p=10) for n in range(10, 20))))
    store = TraceStore(max_bytes=records[0].size * 3, max_spans_per_trace=5)
    store.add(records)
    (line,) = store.summaries()
    assert line["trace_id"] == trace_id(2)
    assert (line["span_count"], line["dropped_spans"]) == (5, 5)


@pytest.mark.parametrize(("traces", "spans"), [(0, 10), (10, 0)])
def test_a_store_keeps_at_least_one_span(traces: int, spans: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        TraceStore(traces, spans)
