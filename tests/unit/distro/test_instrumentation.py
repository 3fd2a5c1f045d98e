"""Instrumentation is planned from metadata and happens on import, never breaking the import."""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from telemetry_run.config import Config
from telemetry_run.instrumentation import install, plan
from telemetry_run.instrumentors.base import InstrumentorSpec
from telemetry_run.plugins import make_strict
from telemetry_run.sdk.diagnostics import Diagnostics, InternalError
from telemetry_run.testing import SpanRecorder

FIXTURES = Path(__file__).with_name("fixtures")
PYTEST_VERSION = pytest.__version__

INSTRUMENTORS = """
from telemetry_run.plugin import Instrumentor, NotApplicable
import {target} as target

class Good(Instrumentor):
    def _instrument(self, tracer_provider, config):
        tracer = tracer_provider.get_tracer("test")

        def wrapper(wrapped, instance, args, kwargs):
            if not self.enabled():
                return wrapped(*args, **kwargs)
            with tracer.start_as_current_span("work"):
                return wrapped(*args, **kwargs)

        self.patcher.wrap(target, "work", wrapper)

class Broken(Instrumentor):
    def _instrument(self, tracer_provider, config):
        self.patcher.wrap(target, "work", lambda wrapped, i, a, k: wrapped(*a, **k))
        raise RuntimeError("instrumentor bug")

class Skips(Instrumentor):
    def _instrument(self, tracer_provider, config):
        raise NotApplicable("target has no async API")
"""


@pytest.fixture
def reported(_clean_globals: list[InternalError]) -> list[InternalError]:
    """The internal errors reported during the test (it must be marked internal_errors)."""
    return _clean_globals


@dataclass
class Library:
    target: str
    instrumentors: str

    def spec(self, cls: str = "Good", requires: str = "") -> InstrumentorSpec:
        return InstrumentorSpec(
            self.target, (self.target,), requires, f"{self.instrumentors}:{cls}"
        )


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Library]:
    """A target module and instrumentors for it, importable, not yet imported."""
    target = f"tr_target_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{target}.py").write_text("def work(x):\n    return x + 1\n")
    (tmp_path / f"{target}_instr.py").write_text(INSTRUMENTORS.format(target=target))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Library(target, f"{target}_instr")
    for name in (target, f"{target}_instr"):
        sys.modules.pop(name, None)


def config(**environ: str) -> Config:
    return Config.from_env(environ)


def test_plan_decides_from_configuration_and_metadata() -> None:
    specs = [
        ("p", InstrumentorSpec("off", ("x",), "pytest>=1", "m:C")),
        ("p", InstrumentorSpec("absent", ("x",), "no-such-dist-for-tests>=1", "m:C")),
        ("p", InstrumentorSpec("old", ("x",), "pytest<1", "m:C")),
        ("p", InstrumentorSpec("fits", ("x",), "pytest>=1,<1000", "m:C")),
        ("p", InstrumentorSpec("any", ("x",), "pytest", "m:C")),
        ("p", InstrumentorSpec("stdlib", ("sqlite3",), "", "m:C")),
        ("p", InstrumentorSpec("marker", ("x",), "pytest>=1; python_version < '3'", "m:C")),
        ("p", InstrumentorSpec("extras", ("x",), "pytest[testing]>=1", "m:C")),
        ("p", InstrumentorSpec("invalid", ("x",), "pytest>=>1", "m:C")),
    ]
    statuses = {s.name: s for s in plan(specs, config(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="off"))}

    assert statuses["off"].text == "disabled: listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    assert statuses["absent"].text == (
        "not installed: distribution no-such-dist-for-tests is not installed"
    )
    old = statuses["old"]
    assert old.state == "skipped" and old.installed_version == PYTEST_VERSION
    assert old.reason == f"pytest {PYTEST_VERSION} is outside pytest<1"
    assert (old.distribution, old.requires, old.plugin, old.modules) == (
        "pytest",
        "pytest<1",
        "p",
        ("x",),
    )
    assert statuses["fits"].text == "enabled"
    assert statuses["any"].text == "enabled"
    stdlib = statuses["stdlib"]
    assert stdlib.text == "enabled" and stdlib.distribution is None
    assert statuses["marker"].state == "skipped" and "python_version" in statuses["marker"].reason
    assert statuses["extras"].text == "enabled"
    assert statuses["invalid"].state == "failed"
    assert "not a valid requirement" in statuses["invalid"].reason


def test_a_star_disables_everything() -> None:
    spec = InstrumentorSpec("a", ("x",), "", "m:C")
    (status,) = plan([("p", spec)], config(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="*"))
    assert status.state == "disabled"


def test_specs_reject_what_would_fail_later() -> None:
    with pytest.raises(TypeError, match=r"write \('flask',\)"):
        InstrumentorSpec("flask", "flask", "flask", "m:C")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="module:Class"):
        InstrumentorSpec("flask", ("flask",), "flask", "m.C")
    with pytest.raises(ValueError, match="at least one module"):
        InstrumentorSpec("flask", (), "flask", "m:C")
    with pytest.raises(ValueError, match="not a requirement"):
        InstrumentorSpec("flask", ("flask",), ">=2", "m:C")
    assert InstrumentorSpec("f", ["flask"], " Flask >=2", "m:C").modules == ("flask",)  # type: ignore[arg-type]
    assert InstrumentorSpec("f", ("flask",), " Flask >=2", "m:C").distribution == "Flask"


def test_a_target_imported_later_is_patched_on_import(library: Library) -> None:
    recorder = SpanRecorder()
    installed = install(plan([("p", library.spec())], config()), config(), recorder.provider)
    status = installed.status(library.target)
    assert status.state == "enabled"
    assert library.target not in sys.modules and library.instrumentors not in sys.modules

    module = importlib.import_module(library.target)
    assert status.text == "patched"
    assert module.work(1) == 2
    assert len(recorder.by_name("work")) == 1

    installed.uninstall()
    module.work(1)
    assert len(recorder.by_name("work")) == 1
    assert installed.instrumentors == {}


def test_a_target_already_imported_is_patched_at_install(library: Library) -> None:
    module = importlib.import_module(library.target)
    recorder = SpanRecorder()
    installed = install(plan([("p", library.spec())], config()), config(), recorder.provider)
    assert installed.status(library.target).state == "patched"
    module.work(1)
    assert len(recorder.spans) == 1
    installed.uninstall()


@pytest.mark.internal_errors
def test_a_broken_instrumentor_never_breaks_the_import(
    library: Library, reported: list[InternalError]
) -> None:
    recorder = SpanRecorder()
    installed = install(
        plan([("p", library.spec("Broken"))], config()), config(), recorder.provider
    )
    module = importlib.import_module(library.target)  # must not raise
    assert module.work(1) == 2
    status = installed.status(library.target)
    assert status.text == "failed: RuntimeError: instrumentor bug"
    assert "work" in vars(module) and not hasattr(vars(module)["work"], "__wrapped__")
    (error,) = reported
    assert error.where == f"instrumentor {library.target} ({library.instrumentors}:Broken)"


def test_not_applicable_is_a_quiet_skip(library: Library, caplog: pytest.LogCaptureFixture) -> None:
    recorder = SpanRecorder()
    installed = install(plan([("p", library.spec("Skips"))], config()), config(), recorder.provider)
    with caplog.at_level(logging.INFO, logger="telemetry_run"):
        importlib.import_module(library.target)
    assert installed.status(library.target).text == "not applicable: target has no async API"
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_strict_mode_lets_an_instrumentor_failure_fail_the_import(library: Library) -> None:
    diagnostics = Diagnostics()
    make_strict(diagnostics)
    recorder = SpanRecorder()
    statuses = plan([("p", library.spec("Broken"))], config())
    install(statuses, config(), recorder.provider, diagnostics=diagnostics)
    with pytest.raises(RuntimeError, match="instrumentor bug"):
        importlib.import_module(library.target)
    assert library.target not in sys.modules


def test_a_disarmed_hook_does_nothing(library: Library) -> None:
    recorder = SpanRecorder()
    installed = install(plan([("p", library.spec())], config()), config(), recorder.provider)
    installed.uninstall()
    importlib.import_module(library.target).work(1)
    assert installed.status(library.target).text == "disabled: instrumentation uninstalled"
    assert recorder.spans == ()


def test_skipped_and_disabled_specs_are_logged_once_and_install_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    specs = [
        ("p", InstrumentorSpec("old", ("tr_never_imported_a",), "pytest<1", "m:C")),
        ("p", InstrumentorSpec("off", ("tr_never_imported_b",), "", "m:C")),
    ]
    statuses = plan(specs, config(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="off"))
    with caplog.at_level(logging.DEBUG, logger="telemetry_run"):
        install(statuses, config(), SpanRecorder().provider)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (
            logging.INFO,
            f"instrumentor old skipped: pytest {PYTEST_VERSION} is outside pytest<1",
        ),
        (
            logging.DEBUG,
            "instrumentor off disabled: listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        ),
    ]


def _run(code: str) -> dict[str, object]:
    """Run ``code`` in a clean interpreter with the fixtures importable; its JSON output."""
    prelude = f"import sys; sys.path.insert(0, {str(FIXTURES)!r})\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_a_library_never_imported_is_never_imported_by_us() -> None:
    result = _run(
        """
        import json, sys
        from telemetry_run.config import Config
        from telemetry_run.instrumentation import install, plan
        from telemetry_run.instrumentors.base import InstrumentorSpec
        from telemetry_run.sdk import TracerProvider

        spec = InstrumentorSpec(
            "client", ("contract_target",), "contract-target>=1,<2",
            "contract_instrumentors:ClientInstrumentor",
        )
        config = Config.from_env({})
        installed = install(plan([("p", spec)], config), config, TracerProvider())
        status = installed.status("client")
        after_install = {
            "state": status.state,
            "version": status.installed_version,
            "target": "contract_target" in sys.modules,
            "instrumentor": "contract_instrumentors" in sys.modules,
        }
        import contract_target
        print(json.dumps({
            "after_install": after_install,
            "after_import": status.state,
            "wrapped": hasattr(contract_target.helper, "__wrapped__"),
        }))
        """
    )
    assert result == {
        "after_install": {
            "state": "enabled",
            "version": "1.2.3",
            "target": False,
            "instrumentor": False,
        },
        "after_import": "patched",
        "wrapped": True,
    }


def test_without_an_enabled_spec_neither_wrapt_nor_packaging_is_imported() -> None:
    result = _run(
        """
        import json, sys
        from telemetry_run.config import Config
        from telemetry_run.instrumentation import install, plan
        from telemetry_run.instrumentors.base import InstrumentorSpec

        specs = [
            ("p", InstrumentorSpec("a", ("contract_target",), "no-such-dist-xyz>=1", "m:C")),
            ("p", InstrumentorSpec("b", ("contract_target",), "contract-target", "m:C")),
        ]
        config = Config.from_env({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "b"})
        install(plan(specs, config), config, None)
        # The SDK's private leaves (logger, records, printing, version) are the distro's too.
        print(json.dumps(sorted(
            m for m in sys.modules
            if m.startswith(("wrapt", "packaging", "contract_", "telemetry_run.sdk."))
            and not m.startswith("telemetry_run.sdk._")
        )))
        """
    )
    assert result == []


def test_a_class_instrumented_already_is_not_patched_twice(library: Library) -> None:
    module = importlib.import_module(library.target)
    recorder = SpanRecorder()
    manual = library.spec().load_class()()
    manual.instrument(recorder.provider, config())
    installed = install(plan([("p", library.spec())], config()), config(), recorder.provider)
    status = installed.status(library.target)
    assert status.text == "patched: already instrumented in this process"
    module.work(1)
    assert len(recorder.spans) == 1
    manual.uninstrument()
