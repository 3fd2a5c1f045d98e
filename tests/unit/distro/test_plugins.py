"""Plugins load one by one, built-ins first; the last registered answers a name first."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import telemetry_run
from telemetry_run import hookspecs, plugin, plugins
from telemetry_run._env import parse_int
from telemetry_run.config import Config, Variable
from telemetry_run.hookspecs import hookimpl
from telemetry_run.instrumentors.base import InstrumentorSpec
from telemetry_run.plugins import PluginError, Plugins
from telemetry_run.sdk import TracerProvider
from telemetry_run.sdk.exporters.memory import InMemorySpanExporter
from telemetry_run.sdk.trace.sampling import ALWAYS_OFF

GROUP = "telemetry_run"
BUILTINS = [
    importlib.metadata.EntryPoint("builtin", "telemetry_run._builtins", GROUP),
    importlib.metadata.EntryPoint(
        "builtin-instrumentors", "telemetry_run.instrumentors.plugin", GROUP
    ),
]


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Put a module made of the given functions into sys.modules; returns its name."""
    count = 0

    def make(**functions: Any) -> str:
        nonlocal count
        count += 1
        name = f"fake_telemetry_plugin_{count}"
        module = types.ModuleType(name)
        for attr, value in functions.items():
            setattr(module, attr, value)
        monkeypatch.setitem(sys.modules, name, module)
        return name

    return make


def ep(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name, value, GROUP)


class Exporter(InMemorySpanExporter):
    """A plugin's exporter (any SpanExporter will do)."""


def _exporter_plugin(answer: str) -> Callable[..., Any]:
    @hookimpl
    def telemetry_run_span_exporter(name: str, config: Config) -> Any:
        return Exporter() if name == answer else None

    return telemetry_run_span_exporter


def test_the_installed_entry_points_register_the_builtins_first() -> None:
    loaded = Plugins.load()
    assert [p.name for p in loaded.registered[:2]] == ["builtin", "builtin-instrumentors"]
    assert all(p.builtin and p.distribution == "telemetry-run" for p in loaded.registered[:2])
    assert [f for f in loaded.failures if f.name.startswith("builtin")] == []


def test_builtins_first_then_every_other_plugin_in_name_order(
    fake_module: Callable[..., str],
) -> None:
    first, second = fake_module(), fake_module()
    loaded = Plugins.load([ep("zeta", first), ep("alpha", second), *reversed(BUILTINS)])
    assert [p.name for p in loaded.registered] == [
        "builtin",
        "builtin-instrumentors",
        "alpha",
        "zeta",
    ]
    assert [p.builtin for p in loaded.registered] == [True, True, False, False]


def test_a_broken_plugin_is_reported_once_and_the_others_still_load(
    fake_module: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "raising_plugin_mod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    @hookimpl
    def telemetry_run_span_exporter(name: str, unknown_argument: int) -> None:
        return None

    @hookimpl
    def telemetry_run_exporters() -> None:  # a typo of a hook name
        return None

    @hookimpl(wrapper=True)
    def telemetry_run_sampler(name: str) -> Any:
        return (yield)

    entry_points = [
        *BUILTINS,
        ep("a-missing", "no_such_module_for_telemetry_run_tests"),
        ep("b-raises", "raising_plugin_mod"),
        ep("c-bad-args", fake_module(telemetry_run_span_exporter=telemetry_run_span_exporter)),
        ep("d-typo", fake_module(telemetry_run_exporters=telemetry_run_exporters)),
        ep("e-wrapper", fake_module(telemetry_run_sampler=telemetry_run_sampler)),
        ep("f-missing-attr", f"{fake_module()}:nothing_here"),
        ep("g-good", fake_module(telemetry_run_span_exporter=_exporter_plugin("good"))),
    ]
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        loaded = Plugins.load(entry_points)

    failures = {f.name: f for f in loaded.failures}
    assert list(failures) == [
        "a-missing",
        "b-raises",
        "c-bad-args",
        "d-typo",
        "e-wrapper",
        "f-missing-attr",
    ]
    assert all(f.where == "load" and "\n" not in f.error for f in failures.values())
    assert failures["a-missing"].error.startswith("ModuleNotFoundError: ")
    assert failures["b-raises"].error == "RuntimeError: boom at import"
    assert "unknown_argument" in failures["c-bad-args"].error
    assert "telemetry_run_exporters is not a telemetry_run hook" in failures["d-typo"].error
    assert "hook wrapper" in failures["e-wrapper"].error
    assert failures["f-missing-attr"].error.startswith("AttributeError: ")
    assert len(caplog.records) == 6
    assert caplog.records[1].getMessage() == (
        "plugin 'b-raises' failed to load: RuntimeError: boom at import; it is skipped"
    )
    assert [p.name for p in loaded.registered] == ["builtin", "builtin-instrumentors", "g-good"]
    config = Config.from_env({})
    assert isinstance(loaded.span_exporter("good", config), Exporter)
    # Nothing of a rejected plugin stays registered.
    assert loaded.manager.get_plugin("c-bad-args") is None
    assert loaded.manager.get_plugin("d-typo") is None


def test_a_third_party_plugin_answering_a_builtin_name_wins(
    fake_module: Callable[..., str],
) -> None:
    @hookimpl
    def telemetry_run_sampler(name: str, arg: str | None, config: Config) -> Any:
        return ALWAYS_OFF if name == "always_on" else None

    @hookimpl
    def telemetry_run_provides() -> dict[str, list[str]]:
        return {"exporter": ["console"], "sampler": ["always_on", "mine"]}

    name = fake_module(
        telemetry_run_span_exporter=_exporter_plugin("console"),
        telemetry_run_sampler=telemetry_run_sampler,
        telemetry_run_provides=telemetry_run_provides,
    )
    loaded = Plugins.load([*BUILTINS, ep("acme", name)])
    config = Config.from_env({})

    assert isinstance(loaded.span_exporter("console", config), Exporter)
    assert loaded.sampler("always_on", None, config) is ALWAYS_OFF
    assert loaded.provider_of("exporter", "console") == "acme"
    assert loaded.provider_of("sampler", "always_on") == "acme"
    assert loaded.provider_of("sampler", "always_off") == "builtin"
    assert loaded.provider_of("sampler", "nobody") is None
    provides = loaded.provides()
    assert provides["sampler"]["mine"] == "acme"
    assert provides["exporter"] == {"console": "acme", "none": "builtin"}
    # A name the plugin does not answer still reaches the built-in.
    assert loaded.sampler("always_off", None, config) is not None


def test_a_factory_that_raises_is_reported_once_and_the_next_plugin_answers(
    fake_module: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    @hookimpl
    def telemetry_run_propagator(name: str) -> Any:
        raise ValueError(f"cannot build {name}")

    loaded = Plugins.load(
        [*BUILTINS, ep("flaky", fake_module(telemetry_run_propagator=telemetry_run_propagator))]
    )
    config = Config.from_env({})
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        for _ in range(3):
            assert loaded.propagator("tracecontext", config) is not None
    (failure,) = loaded.failures
    assert failure.name == "flaky"
    assert failure.where == "telemetry_run_propagator('tracecontext')"
    assert failure.error == "ValueError: cannot build tracecontext"
    assert len(caplog.records) == 1


def test_strict_mode_raises_for_past_and_new_failures(fake_module: Callable[..., str]) -> None:
    loaded = Plugins.load([*BUILTINS, ep("missing", "no_such_module_for_telemetry_run_tests")])
    assert not loaded.strict
    with pytest.raises(PluginError, match="plugin 'missing' failed to load"):
        loaded.strict = True

    @hookimpl
    def telemetry_run_span_exporter(name: str) -> Any:
        raise KeyError(name)

    clean = Plugins.load(
        [*BUILTINS, ep("bad", fake_module(telemetry_run_span_exporter=telemetry_run_span_exporter))]
    )
    clean.strict = True
    with pytest.raises(PluginError, match="telemetry_run_span_exporter") as raised:
        clean.span_exporter("console", Config.from_env({}))
    assert isinstance(raised.value.__cause__, KeyError)


def test_plugin_variables_join_the_registry(
    fake_module: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    level = Variable("TELEMETRY_RUN_ACME_LEVEL", parse_int(0, 9), 3, "acme's level")
    clash = Variable("OTEL_SERVICE_NAME", parse_int(), 0, "a plugin cannot redefine this")

    @hookimpl
    def telemetry_run_variables() -> list[Variable]:
        return [level, clash]

    loaded = Plugins.load(
        [*BUILTINS, ep("acme", fake_module(telemetry_run_variables=telemetry_run_variables))]
    )
    variables = loaded.variables()
    builtin_names = {v.name for v in variables[:-2]}
    assert variables[-2:] == [level, clash]  # after the built-in plugins' own variables
    assert "OTEL_PYTHON_EXCLUDED_URLS" in builtin_names

    config = Config.from_env(
        {"TELEMETRY_RUN_ACME_LEVEL": "7", "OTEL_SERVICE_NAME": "svc"}, variables
    )
    assert config["TELEMETRY_RUN_ACME_LEVEL"] == 7
    assert config["OTEL_SERVICE_NAME"] == "svc"  # the built-in declaration wins
    with caplog.at_level(logging.WARNING, logger="telemetry_run"):
        bad = Config.from_env({"TELEMETRY_RUN_ACME_LEVEL": "12"}, variables)
    assert bad["TELEMETRY_RUN_ACME_LEVEL"] == 3
    assert any("TELEMETRY_RUN_ACME_LEVEL='12'" in m for m in bad.warnings)


def test_a_malformed_answer_is_dropped_as_a_failure(fake_module: Callable[..., str]) -> None:
    @hookimpl
    def telemetry_run_variables() -> Any:
        return ["TELEMETRY_RUN_NOT_A_VARIABLE"]

    @hookimpl
    def telemetry_run_instrumentors() -> Any:
        return "flask"

    @hookimpl
    def telemetry_run_provides() -> Any:
        return ["console"]

    loaded = Plugins.load(
        [
            *BUILTINS,
            ep(
                "odd",
                fake_module(
                    telemetry_run_variables=telemetry_run_variables,
                    telemetry_run_instrumentors=telemetry_run_instrumentors,
                    telemetry_run_provides=telemetry_run_provides,
                ),
            ),
        ]
    )
    builtin = Plugins.load(BUILTINS)
    assert loaded.variables() == builtin.variables()  # the odd plugin's answers are dropped
    assert loaded.instrumentor_specs() == builtin.instrumentor_specs()
    assert loaded.provider_of("exporter", "console") == "builtin"
    assert sorted(f.where for f in loaded.failures) == [
        "telemetry_run_instrumentors",
        "telemetry_run_provides",
        "telemetry_run_variables",
    ]


def test_the_later_plugin_wins_an_instrumentor_name(fake_module: Callable[..., str]) -> None:
    def declaring(*specs: InstrumentorSpec) -> Callable[[], list[InstrumentorSpec]]:
        @hookimpl
        def telemetry_run_instrumentors() -> list[InstrumentorSpec]:
            return list(specs)

        return telemetry_run_instrumentors

    ours = InstrumentorSpec("flask", ("flask",), "flask>=2.2", "ours.flask:Flask")
    theirs = InstrumentorSpec("flask", ("flask",), "flask>=3", "theirs:Flask")
    other = InstrumentorSpec("celery", ("celery",), "celery>=5", "theirs:Celery")
    loaded = Plugins.load(
        [
            *BUILTINS,
            ep("a-ours", fake_module(telemetry_run_instrumentors=declaring(ours))),
            ep("b-theirs", fake_module(telemetry_run_instrumentors=declaring(theirs, other))),
        ]
    )
    specs = loaded.instrumentor_specs()
    assert ("b-theirs", theirs) in specs and ("b-theirs", other) in specs
    assert [spec for _, spec in specs if spec.name == "flask"] == [theirs]  # the later one wins


def test_configure_calls_every_plugin_each_guarded(fake_module: Callable[..., str]) -> None:
    seen: list[tuple[Config, TracerProvider]] = []

    @hookimpl
    def telemetry_run_configure(config: Config, tracer_provider: TracerProvider) -> None:
        seen.append((config, tracer_provider))

    @hookimpl(specname="telemetry_run_configure")
    def failing(config: Config) -> None:
        raise RuntimeError("configure bug")

    loaded = Plugins.load(
        [
            *BUILTINS,
            ep("a-fails", fake_module(failing=failing)),
            ep("b-records", fake_module(telemetry_run_configure=telemetry_run_configure)),
        ]
    )
    config = Config.from_env({})
    provider = TracerProvider(shutdown_on_exit=False)
    loaded.configure(config, provider)
    assert seen == [(config, provider)]
    assert [(f.name, f.where) for f in loaded.failures] == [("a-fails", "telemetry_run_configure")]


def test_hookimpl_has_one_definition_reexported() -> None:
    assert telemetry_run.hookimpl is hookspecs.hookimpl
    assert plugin.hookimpl is hookspecs.hookimpl
    assert plugins.hookimpl is hookspecs.hookimpl


def test_the_root_package_exports_exactly_its_front_door() -> None:
    assert telemetry_run.__all__ == ["__version__", "hookimpl", "trace"]
    from telemetry_run import trace

    assert telemetry_run.trace is trace
    with pytest.raises(AttributeError):
        telemetry_run.nothing  # noqa: B018


def test_the_plugin_module_exports_exactly_its_names() -> None:
    assert dir(plugin) == sorted(plugin.__all__)
    assert len(set(plugin.__all__)) == len(plugin.__all__)
    for name in plugin.__all__:
        assert getattr(plugin, name) is not None
    assert plugin.InstrumentorSpec is InstrumentorSpec
    with pytest.raises(AttributeError):
        plugin.nothing  # noqa: B018


def test_the_plugin_module_hands_out_the_toolkit_of_the_built_ins() -> None:
    """A third-party instrumentor imports the call helpers from where the plugin API is."""
    from telemetry_run.instrumentors import toolkit

    for name in toolkit.__all__:
        assert getattr(plugin, name) is getattr(toolkit, name), name


def test_start_up_imports_stay_light() -> None:
    """What runs in every process (and in --list) imports neither the SDK, wrapt nor packaging."""
    code = """
import json, sys
import telemetry_run
bare = sorted(m for m in sys.modules if m.startswith(("pluggy", "telemetry_run")))
from telemetry_run import hookimpl
from telemetry_run.plugin import InstrumentorSpec, NotApplicable
from telemetry_run.config import Config
from telemetry_run.plugins import Plugins
from telemetry_run.instrumentation import plan
plugins = Plugins.load()
config = Config.from_env({}, plugins.variables())
plan(plugins.instrumentor_specs(), config)
plugins.provides()
# The SDK's private leaves (logger, records, printing, version) are the distro's too.
heavy = sorted(
    m for m in sys.modules
    if m.startswith(("telemetry_run.sdk.", "wrapt", "packaging"))
    and not m.startswith("telemetry_run.sdk._")
)
print(json.dumps({"bare": bare, "heavy": heavy}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out)
    assert result["bare"] == ["telemetry_run", "telemetry_run.sdk", "telemetry_run.sdk._lazy"]
    assert result["heavy"] == []


OTLP = importlib.metadata.EntryPoint("builtin-otlp", "telemetry_run._otlp", GROUP)


def _answers(loaded: Plugins) -> dict[str, Any]:
    config = Config.from_env({}, loaded.variables())
    return {
        "provides": loaded.provides(),
        "variables": [v.name for v in loaded.variables()],
        "specs": loaded.instrumentor_specs(),
        "exporter": type(loaded.span_exporter("console", config)).__name__,
        "sampler": repr(loaded.sampler("parentbased_traceidratio", "0.5", config)),
        "propagators": [
            type(loaded.propagator(name, config)).__name__ for name in ("tracecontext", "baggage")
        ],
        "failures": loaded.failures,
    }


def test_builtins_and_third_party_plugins_share_one_pluggy_manager(
    fake_module: Callable[..., str],
) -> None:
    # One plugin path: the built-ins register with pluggy exactly like a third-party plugin,
    # and a plugin that answers nothing changes no answer of theirs.
    alone = Plugins.load([*BUILTINS, OTLP])
    answers = _answers(alone)
    with_quiet = Plugins.load([*BUILTINS, OTLP, ep("quiet", fake_module())])
    names = ["builtin", "builtin-instrumentors", "builtin-otlp", "quiet"]
    assert [name for name, _ in with_quiet.manager.list_name_plugin()] == names
    assert [p.name for p in with_quiet.registered] == names
    assert _answers(with_quiet) == answers
    assert answers["exporter"] == "ConsoleSpanExporter" and answers["failures"] == []
    assert {"flask", "django", "requests"} <= {spec.name for _, spec in answers["specs"]}
    assert "otlp" in answers["provides"]["exporter"]


def test_the_manager_made_later_keeps_the_order_of_registration(
    fake_module: Callable[..., str],
) -> None:
    loaded = Plugins.load([*BUILTINS, OTLP])
    loaded.register(
        sys.modules[fake_module(telemetry_run_span_exporter=_exporter_plugin("console"))], "acme"
    )
    config = Config.from_env({}, [])
    assert type(loaded.span_exporter("console", config)) is Exporter  # the later plugin wins
    assert loaded.provider_of("exporter", "otlp") == "builtin-otlp"
    names = [
        impl.plugin_name for impl in loaded.manager.hook.telemetry_run_provides.get_hookimpls()
    ]
    assert names == ["builtin", "builtin-otlp"]


def test_pluggys_ordering_options_are_honoured(fake_module: Callable[..., str]) -> None:
    # Registered last, a plugin is asked first, unless it asks to be asked last.
    @hookimpl(trylast=True)
    def telemetry_run_span_exporter(name: str) -> Any:
        return Exporter() if name == "console" else None

    late = fake_module(telemetry_run_span_exporter=telemetry_run_span_exporter)
    loaded = Plugins.load([*BUILTINS, ep("late", late)])
    config = Config.from_env({}, [])
    assert type(loaded.span_exporter("console", config)).__name__ == "ConsoleSpanExporter"
    eager = fake_module(telemetry_run_span_exporter=_exporter_plugin("console"))
    loaded = Plugins.load([*BUILTINS, ep("eager", eager)])
    assert type(loaded.span_exporter("console", config)) is Exporter


def test_pluggys_own_marker_and_ours_are_the_same_to_the_manager(
    fake_module: Callable[..., str],
) -> None:
    import pluggy

    @pluggy.HookimplMarker("telemetry_run")
    def telemetry_run_provides() -> Any:
        return {"exporter": ["theirs"]}

    loaded = Plugins.load(
        [
            *BUILTINS,
            ep("marked-by-pluggy", fake_module(telemetry_run_provides=telemetry_run_provides)),
        ]
    )
    assert loaded.provider_of("exporter", "theirs") == "marked-by-pluggy"
    assert loaded.provider_of("exporter", "console") == "builtin"
