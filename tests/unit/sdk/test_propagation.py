"""Carriers, the composite propagator, and the global propagator with its failure containment."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from telemetry_run.sdk import baggage
from telemetry_run.sdk.context import Context, set_value
from telemetry_run.sdk.propagation import (
    CompositePropagator,
    DefaultGetter,
    DefaultSetter,
    Getter,
    HeaderListGetter,
    HeaderListSetter,
    Setter,
    TextMapPropagator,
    WSGIEnvironGetter,
    _textmap,
    default_getter,
    default_setter,
    extract,
    get_global_textmap,
    inject,
    set_global_textmap,
)
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.sdk.trace.api import NonRecordingSpan, SpanContext, TraceFlags
from telemetry_run.sdk.trace.current import get_current_span, set_span_in_context

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


class Recording(TextMapPropagator):
    """Writes and reads one field, and remembers the calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[str] = []

    def extract(
        self, carrier: Any, context: Context | None = None, getter: Getter[Any] = default_getter
    ) -> Context:
        self.calls.append("extract")
        values = getter.get(carrier, self.name)
        return set_value(self.name, values[0] if values else None, context or Context())

    def inject(
        self, carrier: Any, context: Context | None = None, setter: Setter[Any] = default_setter
    ) -> None:
        self.calls.append("inject")
        setter.set(carrier, self.name, f"from-{self.name}")

    @property
    def fields(self) -> set[str]:
        return {self.name}


class Broken(TextMapPropagator):
    """A third-party propagator with a bug in everything."""

    def extract(
        self, carrier: Any, context: Context | None = None, getter: Getter[Any] = default_getter
    ) -> Context:
        raise RuntimeError("extract bug")

    def inject(
        self, carrier: Any, context: Context | None = None, setter: Setter[Any] = default_setter
    ) -> None:
        raise RuntimeError("inject bug")

    @property
    def fields(self) -> set[str]:
        raise RuntimeError("fields bug")


@pytest.fixture(autouse=True)
def restore_global() -> Iterator[None]:
    saved = _textmap._global, _textmap._default
    _textmap._reported.clear()
    yield
    _textmap._global, _textmap._default = saved
    _textmap._reported.clear()


def span_context_of(context: Context) -> SpanContext:
    return get_current_span(context).get_span_context()


def with_span() -> Context:
    span_context = SpanContext(TRACE_ID, 0x00F067AA0BA902B7, False, TraceFlags.SAMPLED)
    return set_span_in_context(NonRecordingSpan(span_context), Context())


# -- DefaultGetter / DefaultSetter ------------------------------------------------------------


def test_default_getter_reads_str_list_and_bytes() -> None:
    carrier = {"a": "1", "b": ["2", "3"], "c": b"4", "d": ("5",)}
    assert default_getter.get(carrier, "a") == ["1"]
    assert default_getter.get(carrier, "b") == ["2", "3"]
    assert default_getter.get(carrier, "c") == ["4"]
    assert default_getter.get(carrier, "d") == ["5"]
    assert default_getter.get(carrier, "missing") is None


def test_default_getter_falls_back_to_any_case() -> None:
    carrier = {"TraceParent": "x", "traceparent-not": "y"}
    assert default_getter.get(carrier, "traceparent") == ["x"]
    assert default_getter.get({"traceparent": "exact", "TRACEPARENT": "other"}, "traceparent") == [
        "exact"
    ]


def test_default_getter_keys() -> None:
    assert default_getter.keys({"a": 1, "b": 2}) == ["a", "b"]


class Hostile(Mapping[str, str]):
    def __getitem__(self, key: str) -> str:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


@pytest.mark.parametrize(
    "carrier", [None, 42, "traceparent", ["traceparent"], object(), Hostile(), {1: "x"}]
)
def test_default_getter_never_raises(carrier: Any) -> None:
    assert default_getter.get(carrier, "traceparent") is None
    assert all(isinstance(key, str) for key in default_getter.keys(carrier))


@pytest.mark.parametrize("value", [None, 5, {"x": 1}, [1, None], [], object()])
def test_default_getter_odd_values_read_as_absent(value: object) -> None:
    assert default_getter.get({"k": value}, "k") is None


def test_default_setter_assigns() -> None:
    carrier: dict[str, str] = {"k": "old"}
    default_setter.set(carrier, "k", "new")
    DefaultSetter().set(carrier, "j", "1")
    assert carrier == {"k": "new", "j": "1"}
    assert isinstance(default_getter, DefaultGetter)


# -- WSGI environ ---------------------------------------------------------------------------


def test_wsgi_getter_reads_http_variables() -> None:
    environ = {
        "HTTP_TRACEPARENT": TRACEPARENT,
        "HTTP_X_B3_TRACEID": "abc",
        "CONTENT_TYPE": "text/plain",
        "traceparent": "not from the environ",
    }
    getter = WSGIEnvironGetter()
    assert getter.get(environ, "traceparent") == [TRACEPARENT]
    assert getter.get(environ, "x-b3-traceid") == ["abc"]
    assert getter.get(environ, "content-type") is None
    assert getter.get(environ, "baggage") is None
    assert sorted(getter.keys(environ)) == ["traceparent", "x-b3-traceid"]


@pytest.mark.parametrize("carrier", [None, 7, ["HTTP_TRACEPARENT"], Hostile()])
def test_wsgi_getter_never_raises(carrier: Any) -> None:
    getter = WSGIEnvironGetter()
    assert getter.get(carrier, "traceparent") is None
    assert all(isinstance(key, str) for key in getter.keys(carrier))


def test_extract_from_a_wsgi_environ() -> None:
    environ = {"HTTP_TRACEPARENT": TRACEPARENT, "HTTP_BAGGAGE": "user=alice"}
    context = extract(environ, getter=WSGIEnvironGetter())
    assert span_context_of(context).trace_id == TRACE_ID
    assert baggage.get_all(context) == {"user": "alice"}


def test_a_wsgi_environ_without_the_headers_gives_the_context_as_given() -> None:
    """The usual request from outside the traced system (one frame: see ``extract``)."""
    getter = WSGIEnvironGetter()
    given = set_value("unrelated", 1, Context())
    environ = {"PATH_INFO": "/", "traceparent": TRACEPARENT, "baggage": "user=alice"}
    assert extract(environ, given, getter) is given
    assert extract(environ, None, getter) == Context()
    with_baggage = extract({"HTTP_BAGGAGE": "user=alice"}, given, getter)
    assert baggage.get_all(with_baggage) == {"user": "alice"}
    assert with_baggage.get("unrelated") == 1
    with_parent = extract({"HTTP_TRACEPARENT": TRACEPARENT}, given, getter)
    assert span_context_of(with_parent).trace_id == TRACE_ID
    assert with_parent.get("unrelated") == 1


@pytest.mark.parametrize("members", ["own", "added", "assigned"])
def test_a_wsgi_environ_reaches_propagators_of_the_users_choice(members: str) -> None:
    reader = Recording("x-request-context")
    default = [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    if members == "assigned":  # not through set_global_textmap: the default is still known
        get_global_textmap()
        _textmap._global = reader
    else:
        set_global_textmap(reader if members == "own" else CompositePropagator([*default, reader]))
    context = extract({"HTTP_X_REQUEST_CONTEXT": "v"}, None, WSGIEnvironGetter())
    assert reader.calls == ["extract"] and context.get("x-request-context") == "v"


def test_wsgi_joined_duplicate_traceparents_are_invalid() -> None:
    environ = {"HTTP_TRACEPARENT": f"{TRACEPARENT}, {TRACEPARENT}"}
    assert not span_context_of(extract(environ, getter=WSGIEnvironGetter())).is_valid


# -- header lists -----------------------------------------------------------------------------


def test_header_list_getter_reads_str_pairs_in_any_case() -> None:
    metadata = [
        ("TraceParent", TRACEPARENT),
        ("other", "x"),
        ("baggage", "a=1"),
        ("BAGGAGE", "b=2"),
    ]
    getter = HeaderListGetter()
    assert getter.get(metadata, "traceparent") == [TRACEPARENT]
    assert getter.get(metadata, "baggage") == ["a=1", "b=2"]
    assert getter.get(metadata, "missing") is None
    assert getter.keys(metadata) == ["TraceParent", "other", "baggage", "BAGGAGE"]


def test_header_list_getter_decodes_bytes_pairs_as_latin1() -> None:
    headers = [(b"traceparent", TRACEPARENT.encode()), (b"x-name", b"caf\xe9")]
    getter = HeaderListGetter()
    assert getter.get(headers, "traceparent") == [TRACEPARENT]
    assert getter.get(headers, "X-Name") == ["caf\u00e9"]
    assert getter.keys(headers) == ["traceparent", "x-name"]


def test_header_list_getter_skips_malformed_entries() -> None:
    headers: list[Any] = [
        ("traceparent",),
        ("traceparent", "a", "b"),
        None,
        42,
        (1, "x"),
        ("traceparent", 5),
        ["traceparent", "ok"],
    ]
    getter = HeaderListGetter()
    assert getter.get(headers, "traceparent") == ["ok"]
    assert getter.keys(headers) == ["traceparent", "traceparent"]


@pytest.mark.parametrize("carrier", [None, 5, object()])
def test_header_list_getter_never_raises(carrier: Any) -> None:
    getter = HeaderListGetter()
    assert getter.get(carrier, "traceparent") is None
    assert getter.keys(carrier) == []


def test_extract_from_asgi_headers_and_reject_duplicates() -> None:
    headers = [(b"traceparent", TRACEPARENT.encode()), (b"baggage", b"a=1")]
    context = extract(headers, getter=HeaderListGetter())
    assert span_context_of(context).trace_id == TRACE_ID
    assert baggage.get_all(context) == {"a": "1"}
    doubled = [*headers, (b"Traceparent", TRACEPARENT.encode())]
    assert not span_context_of(extract(doubled, getter=HeaderListGetter())).is_valid


def test_header_list_setter_appends_and_replaces() -> None:
    metadata: list[Any] = [("x", "1"), ("TraceParent", "old"), ("traceparent", "older")]
    setter = HeaderListSetter()
    setter.set(metadata, "traceparent", "new")
    setter.set(metadata, "tracestate", "a=1")
    assert metadata == [("x", "1"), ("traceparent", "new"), ("tracestate", "a=1")]


def test_header_list_setter_follows_bytes_entries() -> None:
    headers: list[Any] = [(b"content-type", b"text/plain"), (b"traceparent", b"old")]
    HeaderListSetter().set(headers, "traceparent", "new")
    assert headers == [(b"content-type", b"text/plain"), (b"traceparent", b"new")]


def test_header_list_setter_explicit_mode() -> None:
    as_bytes: list[Any] = []
    HeaderListSetter(as_bytes=True).set(as_bytes, "traceparent", "v")
    as_str: list[Any] = [(b"a", b"b")]
    HeaderListSetter(as_bytes=False).set(as_str, "traceparent", "v")
    assert as_bytes == [(b"traceparent", b"v")]
    assert as_str == [(b"a", b"b"), ("traceparent", "v")]


def test_inject_into_a_header_list_twice_keeps_one_traceparent() -> None:
    headers: list[Any] = []
    inject(headers, with_span(), setter=HeaderListSetter())
    inject(headers, with_span(), setter=HeaderListSetter())
    assert headers == [("traceparent", TRACEPARENT)]


# -- composite --------------------------------------------------------------------------------


def test_composite_runs_all_in_order() -> None:
    first, second = Recording("first"), Recording("second")
    composite = CompositePropagator([first, second])
    carrier: dict[str, str] = {}
    composite.inject(carrier, Context())
    assert carrier == {"first": "from-first", "second": "from-second"}
    context = composite.extract({"first": "1", "second": "2"})
    assert context == {"first": "1", "second": "2"}
    assert first.calls == ["inject", "extract"]
    assert composite.fields == {"first", "second"}


def test_composite_chains_the_context_through_extractors() -> None:
    composite = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    given_context = set_value("unrelated", 1, Context())
    context = composite.extract({"traceparent": TRACEPARENT, "baggage": "a=1"}, given_context)
    assert context["unrelated"] == 1
    assert span_context_of(context).trace_id == TRACE_ID
    assert baggage.get_all(context) == {"a": "1"}


def test_composite_contains_a_raising_propagator(caplog: pytest.LogCaptureFixture) -> None:
    good = Recording("good")
    composite = CompositePropagator([Broken(), good])
    given_context = set_value("unrelated", 1, Context())
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        for _ in range(3):
            context = composite.extract({"good": "yes"}, given_context)
            carrier: dict[str, str] = {}
            composite.inject(carrier, given_context)
            assert composite.fields == {"good"}
    assert context == {"unrelated": 1, "good": "yes"}
    assert carrier == {"good": "from-good"}
    assert good.calls == ["extract", "inject"] * 3
    broken_records = [r for r in caplog.records if "Broken" in r.getMessage()]
    assert len(broken_records) == 3  # one each for extract, inject and fields, not per call
    assert all(r.name == "telemetry_run" for r in broken_records)


def test_empty_composite() -> None:
    composite = CompositePropagator([])
    given_context = Context()
    assert composite.extract({"traceparent": TRACEPARENT}, given_context) is given_context
    assert composite.fields == set()


# -- the global propagator --------------------------------------------------------------------


def test_default_global_is_tracecontext_then_baggage() -> None:
    _textmap._global = None
    propagator = get_global_textmap()
    assert isinstance(propagator, CompositePropagator)
    assert propagator.fields == {"traceparent", "tracestate", "baggage"}
    assert get_global_textmap() is propagator


def test_module_functions_use_the_global_propagator() -> None:
    context = baggage.set_baggage("user", "alice", with_span())
    carrier: dict[str, str] = {}
    inject(carrier, context)
    assert carrier == {"traceparent": TRACEPARENT, "baggage": "user=alice"}
    extracted = extract(carrier)
    assert span_context_of(extracted).trace_id == TRACE_ID
    assert span_context_of(extracted).is_remote
    assert baggage.get_all(extracted) == {"user": "alice"}


def test_set_global_textmap_replaces_it() -> None:
    recording = Recording("custom")
    set_global_textmap(recording)
    assert get_global_textmap() is recording
    carrier: dict[str, str] = {}
    inject(carrier, with_span())
    assert carrier == {"custom": "from-custom"}
    assert extract({"custom": "v"}) == {"custom": "v"}


def test_a_raising_global_propagator_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    set_global_textmap(Broken())
    given_context = set_value("unrelated", 1, Context())
    carrier: dict[str, str] = {}
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        for _ in range(2):
            assert extract({"traceparent": TRACEPARENT}, given_context) is given_context
            assert extract({"traceparent": TRACEPARENT}) == Context()
            inject(carrier, with_span())
    assert carrier == {}
    assert len(caplog.records) == 2
    assert {r.exc_info[1].args[0] for r in caplog.records if r.exc_info and r.exc_info[1]} == {
        "extract bug",
        "inject bug",
    }


def test_a_raising_getter_is_contained() -> None:
    class ExplodingGetter:
        def get(self, carrier: object, key: str) -> list[str] | None:
            raise ValueError("getter bug")

        def keys(self, carrier: object) -> list[str]:
            return []

    given_context = Context()
    assert extract({}, given_context, getter=ExplodingGetter()) is given_context
