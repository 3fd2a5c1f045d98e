"""One check of the instrumentor contract, run in a fresh interpreter by ``contract.py``.

Started as a script (``python -I path/to/_contract_child.py PAYLOAD``), never imported as
``telemetry_run.testing._contract_child``: importing the package would import pytest and the SDK,
and the checks need to see which modules the instrumentation itself imports. Exit status 0 is
a pass, 3 a skip (the reason on stdout), anything else a failure (the traceback on stderr).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from telemetry_run.config import Config
    from telemetry_run.instrumentors.base import InstrumentorSpec
    from telemetry_run.sdk.exporters.memory import InMemorySpanExporter
    from telemetry_run.sdk.trace.provider import TracerProvider

SKIP: Final = 3
_MISSING: Final = object()


class Skip(Exception):
    """The check does not apply to this spec."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


class Context:
    """What every check needs: the spec, a recording provider, the exercise, a config."""

    def __init__(self, payload: dict[str, Any]) -> None:
        from telemetry_run.config import Config  # after sys.path is set
        from telemetry_run.instrumentors.base import InstrumentorSpec
        from telemetry_run.plugins import make_strict
        from telemetry_run.sdk import (
            InMemorySpanExporter,
            SimpleSpanProcessor,
            TracerProvider,
        )
        from telemetry_run.sdk.diagnostics import get_diagnostics

        raw = payload["spec"]
        self.spec: InstrumentorSpec = InstrumentorSpec(
            name=raw["name"],
            modules=tuple(raw["modules"]),
            requires=raw["requires"],
            load=raw["load"],
            description=raw.get("description", ""),
        )
        self.plugin: str = payload["plugin"]
        self.exercise_path: str = payload["exercise"]
        make_strict(get_diagnostics())  # an internal error fails the check, with its traceback
        self.exporter: InMemorySpanExporter = InMemorySpanExporter()
        self.provider: TracerProvider = TracerProvider(shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.config_type = Config

    def config(self, environ: dict[str, str] | None = None) -> Config:
        return self.config_type.from_env(environ or {})

    def exercise(self) -> int:
        """Run the exercise once; the number of spans it produced."""
        self.exporter.clear()
        module_name, _, qualname = self.exercise_path.partition(":")
        obj: Any = importlib.import_module(module_name)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
        fn: Callable[[], object] = obj
        fn()
        return len(self.exporter.get_finished_spans())

    def import_target(self) -> None:
        importlib.import_module(self.spec.modules[0])

    def targets_loaded(self) -> list[str]:
        return [name for name in self.spec.modules if name in sys.modules]

    @property
    def load_module(self) -> str:
        return self.spec.load.partition(":")[0]


def _place(parent: object) -> str:
    if isinstance(parent, type):
        return f"{parent.__module__}.{parent.__qualname__}"
    return str(getattr(parent, "__name__", repr(parent)))


def _functions(module_names: tuple[str, ...]) -> dict[tuple[str, ...], object]:
    """Every callable (and descriptor) of the target modules and their classes, by place."""
    found: dict[tuple[str, ...], object] = {}
    for loaded_name, module in list(sys.modules.items()):
        if not any(loaded_name == m or loaded_name.startswith(m + ".") for m in module_names):
            continue
        for attr, value in list(vars(module).items()):
            try:
                plain = callable(value) or isinstance(value, staticmethod | classmethod | property)
            except Exception:  # noqa: BLE001  # a lazy object (Django's settings) that cannot load
                continue
            if plain:
                found[(loaded_name, attr)] = value
            if isinstance(value, type) and value.__module__ == loaded_name:
                for member, inner in list(vars(value).items()):
                    if callable(inner) or isinstance(inner, staticmethod | classmethod | property):
                        found[(loaded_name, attr, member)] = inner
    return found


def _changed(before: dict[tuple[str, ...], object]) -> list[str]:
    after = _functions(tuple({key[0] for key in before}))
    return [".".join(key) for key, value in before.items() if after.get(key, _MISSING) is not value]


def check_patch_before_import(ctx: Context) -> None:
    from telemetry_run.instrumentation import install, plan

    loaded = ctx.targets_loaded()
    require(not loaded, f"{loaded} already imported when the interpreter started: cannot check")
    config = ctx.config()
    installed = install(plan([(ctx.plugin, ctx.spec)], config), config, ctx.provider)
    status = installed.status(ctx.spec.name)
    require(status.state == "enabled", f"expected the spec to be enabled, got {status.text!r}")
    require(not ctx.targets_loaded(), f"install() imported the target {ctx.targets_loaded()}")
    require(
        ctx.load_module not in sys.modules,
        f"install() imported the instrumentor module {ctx.load_module} before its target",
    )
    ctx.import_target()
    require(status.state == "patched", f"importing the target did not patch it: {status.text!r}")
    require(ctx.exercise() > 0, "the instrumented target produced no span")


def check_import_before_patch(ctx: Context) -> None:
    from telemetry_run.instrumentation import install, plan

    ctx.import_target()
    config = ctx.config()
    installed = install(plan([(ctx.plugin, ctx.spec)], config), config, ctx.provider)
    status = installed.status(ctx.spec.name)
    require(status.state == "patched", f"an imported target was not patched: {status.text!r}")
    require(ctx.exercise() > 0, "the instrumented target produced no span")


def check_double_instrument(ctx: Context) -> None:
    from telemetry_run.instrumentors.base import Instrumentor

    ctx.import_target()
    cls = ctx.spec.load_class()
    first = cls()
    first.instrument(ctx.provider, ctx.config())
    once = ctx.exercise()
    require(once > 0, "the instrumented target produced no span")
    first.instrument(ctx.provider, ctx.config())
    second = cls()
    second.instrument(ctx.provider, ctx.config())
    twice = ctx.exercise()
    require(
        twice == once,
        f"after instrument() twice (and from a second instance) one use made {twice} spans, "
        f"not {once}: the target is wrapped twice",
    )
    if isinstance(second, Instrumentor):
        require(not second.patcher.patches, "a second instance patched again")
    first.uninstrument()


def check_uninstrument_restores(ctx: Context) -> None:
    from telemetry_run.instrumentors.base import Instrumentor

    ctx.import_target()
    before = _functions(ctx.spec.modules)
    instrumentor = ctx.spec.load_class()()
    instrumentor.instrument(ctx.provider, ctx.config())
    patches = instrumentor.patcher.patches if isinstance(instrumentor, Instrumentor) else ()
    require(
        bool(patches),
        "instrument() recorded no patch: patch through self.patcher so uninstrument() can undo it",
    )
    require(ctx.exercise() > 0, "the instrumented target produced no span")
    instrumentor.uninstrument()
    for patch in patches:
        try:
            current = vars(patch.parent).get(patch.attribute, _MISSING)
        except TypeError:
            current = getattr(patch.parent, patch.attribute, _MISSING)
        expected = _MISSING if patch.created else patch.original
        require(current is expected, f"{_place(patch.parent)}.{patch.attribute} was not restored")
    changed = _changed(before)
    require(not changed, f"uninstrument() left these changed (not the same objects): {changed}")
    require(ctx.exercise() == 0, "spans were still produced after uninstrument()")
    instrumentor.instrument(ctx.provider, ctx.config())
    require(ctx.exercise() > 0, "instrument() after uninstrument() produced no span")
    instrumentor.uninstrument()


def check_version_outside_requires(ctx: Context) -> None:
    import importlib.metadata

    from telemetry_run.instrumentation import install, plan

    dist = ctx.spec.distribution
    if dist is None:
        raise Skip("the spec has no requires (a standard-library target)")
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise Skip(f"{dist} is not installed") from None
    spec = ctx.spec.__replace__(requires=f"{dist}>{version}")
    config = ctx.config()
    statuses = plan([(ctx.plugin, spec)], config)
    (status,) = statuses
    require(status.state == "skipped", f"a range excluding {version} gave {status.text!r}")
    require(version in status.reason, f"the reason does not name the version: {status.text!r}")
    install(statuses, config, ctx.provider)
    ctx.import_target()
    require(ctx.exercise() == 0, "a skipped instrumentor produced spans")
    require(ctx.load_module not in sys.modules, "a skipped instrumentor's module was imported")


def check_disabled_by_name(ctx: Context) -> None:
    from telemetry_run.instrumentation import install, plan

    config = ctx.config({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": f"other,{ctx.spec.name}"})
    statuses = plan([(ctx.plugin, ctx.spec)], config)
    require(statuses[0].state == "disabled", f"a disabled name gave {statuses[0].text!r}")
    install(statuses, config, ctx.provider)
    ctx.import_target()
    require(ctx.exercise() == 0, "a disabled instrumentor produced spans")
    require(ctx.load_module not in sys.modules, "a disabled instrumentor's module was imported")


CHECKS: Final[dict[str, Callable[[Context], None]]] = {
    "patch_before_import": check_patch_before_import,
    "import_before_patch": check_import_before_patch,
    "double_instrument": check_double_instrument,
    "uninstrument_restores": check_uninstrument_restores,
    "version_outside_requires": check_version_outside_requires,
    "disabled_by_name": check_disabled_by_name,
}


def main(argv: list[str]) -> int:
    payload = json.loads(argv[1])
    sys.path[:] = payload["sys_path"]
    check = CHECKS[payload["check"]]
    try:
        check(Context(payload))
    except Skip as exc:
        print(exc)
        return SKIP
    except AssertionError as exc:  # a broken promise: its message says which
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
