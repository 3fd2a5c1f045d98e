"""Traced functions: where each kind's span starts, ends, and is current (#16)."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import AsyncIterator, Iterator

import pytest

from telemetry_run.config import Config
from telemetry_run.instrumentors.plugin import SPECS
from telemetry_run.instrumentors.trace_functions import TraceFunctionsInstrumentor, parse_entry
from telemetry_run.testing import SpanRecorder

SOURCE = """
from telemetry_run import trace

def numbers(n):
    for i in range(n):
        trace.get_tracer("body").start_span(f"in-body-{i}").end()
        yield i
    return "finished"

async def anumbers(n):
    for i in range(n):
        trace.get_tracer("body").start_span(f"in-async-body-{i}").end()
        yield i

def plain(x):
    return x * 2
"""


@pytest.fixture
def module(span_recorder: SpanRecorder) -> Iterator[types.ModuleType]:
    from telemetry_run.sdk.trace import globals as trace_globals

    mod = types.ModuleType("traced_functions_target")
    exec(compile(SOURCE, "<traced_functions_target>", "exec"), mod.__dict__)
    sys.modules[mod.__name__] = mod
    (spec,) = [spec for spec in SPECS if spec.name == "trace_functions"]
    entries = ",".join(f"{mod.__name__}:{name}" for name in ("numbers", "anumbers", "plain"))
    config = Config.from_env(
        {"TELEMETRY_RUN_TRACE_FUNCTIONS": entries}, list(spec.declared_variables())
    )
    trace_globals._reset_for_tests()
    trace_globals.set_tracer_provider(span_recorder.provider)
    original = mod.plain
    instrumentor = TraceFunctionsInstrumentor()
    instrumentor.instrument(span_recorder.provider, config)
    assert mod.plain is not original
    yield mod
    instrumentor.uninstrument()
    assert mod.plain is original
    trace_globals._reset_for_tests()
    del sys.modules[mod.__name__]


def test_a_generator_span_is_current_in_its_body_only_and_ends_when_closed(
    module: types.ModuleType, span_recorder: SpanRecorder
) -> None:
    tracer = span_recorder.tracer
    with tracer.start_as_current_span("consumer"):
        numbers = module.numbers(3)
        assert next(numbers) == 0
        tracer.start_span("between-items").end()  # the consumer's own code
        assert next(numbers) == 1
        assert span_recorder.by_name("numbers") == []  # still running
        numbers.close()
    generator = span_recorder.one("numbers")
    consumer = span_recorder.one("consumer")
    assert generator.parent == consumer.context
    assert span_recorder.one("between-items").parent == consumer.context
    for name in ("in-body-0", "in-body-1"):
        assert span_recorder.one(name).parent == generator.context
    assert generator.status.status_code.name == "UNSET"  # closed early is not an error


def test_the_generators_return_value_and_a_thrown_exception_pass_through(
    module: types.ModuleType, span_recorder: SpanRecorder
) -> None:
    numbers = module.numbers(1)
    assert list(numbers) == [0]
    with pytest.raises(StopIteration) as stop:
        next(module.numbers(0))
    assert stop.value.value == "finished"
    failing = module.numbers(2)
    next(failing)
    with pytest.raises(KeyError):
        failing.throw(KeyError("from the consumer"))
    spans = span_recorder.by_name("numbers")
    assert len(spans) == 3
    assert spans[-1].status.status_code.name == "ERROR"
    assert [event.name for event in spans[-1].events] == ["exception"]


def test_an_async_generator_and_a_plain_function(
    module: types.ModuleType, span_recorder: SpanRecorder
) -> None:
    async def consume() -> list[int]:
        items: AsyncIterator[int] = module.anumbers(2)
        return [item async for item in items]

    assert asyncio.run(consume()) == [0, 1]
    assert module.plain(21) == 42
    generator = span_recorder.one("anumbers")
    assert span_recorder.one("in-async-body-1").parent == generator.context
    assert span_recorder.one("plain").attributes["code.function.name"] == (
        "traced_functions_target.plain"
    )


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("pkg.mod:func", ("pkg.mod", "func")),
        (" pkg.mod:Class.method ", ("pkg.mod", "Class.method")),
        ("pkg.mod", None),
        ("pkg.mod:", None),
        (":func", None),
        ("pkg mod:func", None),
        ("pkg.mod:Class..method", None),
    ],
)
def test_entries_are_module_colon_qualname(entry: str, parsed: tuple[str, str] | None) -> None:
    assert parse_entry(entry) == parsed
