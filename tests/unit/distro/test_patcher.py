"""The Patcher undoes exactly what it did, the Instrumentor base patches once, guard contains."""

from __future__ import annotations

import logging
import types
import uuid
from typing import Any

import pytest
import wrapt

from telemetry_run.config import Config
from telemetry_run.instrumentors.base import Instrumentor, NotApplicable, Patcher, guard
from telemetry_run.plugins import make_strict
from telemetry_run.sdk.context import suppress_instrumentation
from telemetry_run.sdk.diagnostics import Diagnostics, InternalError, get_diagnostics
from telemetry_run.sdk.trace.api import TracerProvider
from telemetry_run.testing import SpanRecorder


@pytest.fixture
def reported(_clean_globals: list[InternalError]) -> list[InternalError]:
    """The internal errors reported during the test (it must be marked internal_errors)."""
    return _clean_globals


class Base:
    def inherited(self) -> str:
        return "base"


class Target(Base):
    def method(self, x: int) -> int:
        return x * 2

    @staticmethod
    def static(x: int) -> int:
        return x + 1

    @classmethod
    def klass(cls, x: int) -> str:
        return f"{cls.__name__}:{x}"


def _module() -> types.ModuleType:
    module = types.ModuleType(f"patch_target_{uuid.uuid4().hex[:8]}")

    def function(x: int) -> int:
        return x - 1

    module.function = function  # type: ignore[attr-defined]
    module.Target = type("Target", (Target,), {"own": lambda self: "own"})  # type: ignore[attr-defined]
    return module


def _plus_100(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs) + 100


def _tagged(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return f"[{wrapped(*args, **kwargs)}]"


def test_restore_puts_back_the_exact_originals_in_reverse_order() -> None:
    module = _module()
    cls = module.Target
    originals = {
        "function": vars(module)["function"],
        "method": vars(Target)["method"],
        "static": vars(Target)["static"],
        "klass": vars(Target)["klass"],
    }
    patcher = Patcher()
    patcher.wrap(module, "function", _plus_100)
    patcher.wrap(Target, "method", _plus_100)
    patcher.wrap(Target, "static", _plus_100)
    patcher.wrap(Target, "klass", _tagged)
    patcher.wrap(module, "Target.inherited", _tagged)  # defined on Base, patched on the subclass

    assert module.function(1) == 100
    assert Target().method(1) == 102 and Target.static(1) == 102
    assert Target.klass(3) == "[Target:3]" and cls().inherited() == "[base]"
    assert Base().inherited() == "base"  # the base class itself is untouched
    assert [p.attribute for p in patcher.patches] == [
        "function",
        "method",
        "static",
        "klass",
        "inherited",
    ]
    assert patcher.patches[-1].created and not patcher.patches[0].created

    assert patcher.restore() == []
    assert vars(module)["function"] is originals["function"]
    for name in ("method", "static", "klass"):
        assert vars(Target)[name] is originals[name]
    assert "inherited" not in vars(cls)  # the shadowing slot is gone, not filled with a copy
    assert cls().inherited() == "base" and module.function(1) == 0
    assert patcher.patches == ()


def test_wrapping_the_same_attribute_twice_wraps_once() -> None:
    module = _module()
    patcher = Patcher()
    first = patcher.wrap(module, "function", _plus_100)
    second = patcher.wrap(module, "function", _plus_100)
    assert first is second and len(patcher.patches) == 1
    assert module.function(1) == 100


def test_a_module_name_is_imported_and_patched() -> None:
    import json

    original = vars(json)["dumps"]
    patcher = Patcher()
    patcher.wrap("json", "dumps", _tagged)
    try:
        assert json.dumps(1) == "[1]"
    finally:
        patcher.restore()
    assert vars(json)["dumps"] is original


def test_a_wrapper_added_on_top_by_another_tool_survives_our_restore() -> None:
    module = _module()
    original = module.function
    ours = Patcher()
    ours.wrap(module, "function", _plus_100)
    theirs = wrapt.wrap_function_wrapper(module, "function", _tagged)

    assert module.function(1) == "[100]"
    assert ours.restore() == []
    assert module.function is theirs and module.function(1) == "[0]"
    assert theirs.__wrapped__ is original


def test_an_attribute_replaced_wholesale_is_reported_not_clobbered() -> None:
    module = _module()
    patcher = Patcher()
    patcher.wrap(module, "function", _plus_100)

    def replacement(x: int) -> int:
        return 7

    module.function = replacement  # type: ignore[attr-defined]
    (left,) = patcher.restore()
    assert left.attribute == "function"
    assert module.function is replacement


def _doubled_plus_1000(original: Any) -> Any:
    def method(self: Any, x: int) -> int:
        return original(self, x) + 1000

    return method


def test_a_replaced_method_is_a_plain_function_undone_as_a_wrap_is() -> None:
    module = _module()
    cls = module.Target
    original = vars(Target)["method"]
    patcher = Patcher()
    replacement = patcher.replace(cls, "method", _doubled_plus_1000)
    assert patcher.replace(cls, "method", _doubled_plus_1000) is replacement  # once
    assert type(vars(cls)["method"]) is types.FunctionType  # no proxy
    assert cls().method(1) == 1002 and Target().method(1) == 2  # on the class given only
    own = vars(cls)["own"]
    patcher.replace(cls, "own", lambda original: lambda self: f"not {original(self)}")
    assert cls().own() == "not own"
    assert patcher.restore() == []
    assert "method" not in vars(cls) and vars(Target)["method"] is original  # inherited: deleted
    assert vars(cls)["own"] is own and cls().method(1) == 2


def test_a_replaced_method_wrapped_over_by_another_tool_is_spliced_out() -> None:
    cls = _module().Target
    ours = Patcher()
    ours.replace(cls, "own", lambda original: lambda self: f"ours({original(self)})")
    theirs = wrapt.wrap_function_wrapper(cls, "own", _tagged)
    assert cls().own() == "[ours(own)]"
    assert ours.restore() == []
    assert vars(cls)["own"] is theirs and cls().own() == "[own]"


class _Recording(Instrumentor):
    target: types.ModuleType

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        tracer = tracer_provider.get_tracer("test")

        def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if not self.enabled():
                return wrapped(*args, **kwargs)
            with tracer.start_as_current_span("function"):
                return wrapped(*args, **kwargs)

        self.patcher.wrap(self.target, "function", wrapper)


def _instrumentor_class(module: types.ModuleType) -> type[_Recording]:
    return type("Recording", (_Recording,), {"target": module})


def test_instrumenting_twice_is_a_no_op_even_from_a_second_instance() -> None:
    module = _module()
    original = module.function
    recorder = SpanRecorder()
    cls = _instrumentor_class(module)
    first, second = cls(), cls()

    assert first.instrument(recorder.provider) is True
    assert first.instrument(recorder.provider) is False
    assert second.instrument(recorder.provider) is False
    module.function(1)
    assert len(recorder.by_name("function")) == 1
    assert second.patcher.patches == ()

    second.uninstrument()  # not the instrumented one: nothing happens
    assert first.active
    first.uninstrument()
    assert module.function is original and not first.active
    assert second.instrument(recorder.provider) is True  # free again
    second.uninstrument()


def test_the_gate_closes_under_suppression_and_after_uninstrument() -> None:
    module = _module()
    recorder = SpanRecorder()
    instrumentor = _instrumentor_class(module)()
    instrumentor.instrument(recorder.provider, Config.from_env({}))
    assert instrumentor.enabled()
    with suppress_instrumentation():
        assert not instrumentor.enabled()
        module.function(1)
    assert recorder.spans == ()
    wrapper = module.function
    instrumentor.uninstrument()
    assert not instrumentor.enabled()
    wrapper(1)  # a wrapper someone kept a reference to is inert
    assert recorder.spans == ()


def test_a_failing_instrument_restores_what_it_had_patched() -> None:
    module = _module()
    original = module.function

    class Failing(Instrumentor):
        def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
            self.patcher.wrap(module, "function", _plus_100)
            raise NotApplicable("no feature")

    instrumentor = Failing()
    with pytest.raises(NotApplicable):
        instrumentor.instrument(SpanRecorder().provider)
    assert module.function is original and not instrumentor.active
    with pytest.raises(NotApplicable):  # the class is free again: a new instance tries anew
        Failing().instrument(SpanRecorder().provider)


@pytest.mark.internal_errors
def test_guard_reports_our_error_and_leaves_the_apps_result_and_exception_alone(
    reported: list[InternalError], caplog: pytest.LogCaptureFixture
) -> None:
    where = f"test.{uuid.uuid4().hex[:6]}"
    app_error = ValueError("the app's own error")

    def app(x: int) -> int:
        if x < 0:
            raise app_error
        return x * 3

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        with guard(where):
            raise RuntimeError("our bug before the call")
        try:
            result = wrapped(*args, **kwargs)
        finally:
            with guard(where):
                raise RuntimeError("our bug after the call")
        return result

    wrapped = wrapt.FunctionWrapper(app, wrapper)
    with caplog.at_level(logging.ERROR, logger="telemetry_run"):
        assert wrapped(2) == 6
        with pytest.raises(ValueError) as raised:
            wrapped(-1)
    assert raised.value is app_error
    assert [e.where for e in reported] == [where] * 4
    assert all(isinstance(e.exception, RuntimeError) for e in reported)
    logged = [r for r in caplog.records if where in r.getMessage()]
    assert len(logged) == 1  # the first failure of a place is logged, repeats are folded


@pytest.mark.internal_errors
def test_guard_as_a_decorator_returns_none_on_failure(
    reported: list[InternalError],
) -> None:
    @guard("test.decorated")
    def compute(x: int) -> int:
        return 10 // x

    assert compute(2) == 5
    assert compute(0) is None
    assert [type(e.exception) for e in reported] == [ZeroDivisionError]


def test_guard_lets_keyboard_interrupt_and_system_exit_through() -> None:
    for exc in (KeyboardInterrupt(), SystemExit(3)):
        with pytest.raises(type(exc)), guard("test.base"):
            raise exc


def test_strict_mode_makes_guard_raise_the_original_error() -> None:
    diagnostics = get_diagnostics()
    seen: list[InternalError] = []
    previous = diagnostics.on_internal_error
    diagnostics.on_internal_error = seen.append
    make_strict(diagnostics)
    try:
        bug = RuntimeError("strict")
        with pytest.raises(RuntimeError) as raised, guard("test.strict"):
            raise bug
        assert raised.value is bug
        assert [e.exception for e in seen] == [bug]  # the handler before ours still saw it
    finally:
        diagnostics.on_internal_error = previous


def test_make_strict_on_a_fresh_diagnostics() -> None:
    diagnostics = Diagnostics()
    make_strict(diagnostics)
    with pytest.raises(KeyError):
        diagnostics.internal_error("test.fresh", KeyError("k"))
