"""The layers hold: every import in the package, read from the source with ``ast``, goes the
right way.

``sdk/`` (``telemetry_run.sdk``) is a tracing SDK of its own: it imports nothing of the distro
or the instrumentors, so it can be used, tested and reasoned about alone. ``instrumentors/``
(``telemetry_run.instrumentors``) build on the SDK and, of the distro, use only the plugin
contract and the configuration types: ``telemetry_run.hookspecs`` (``@hookimpl``),
``telemetry_run.config`` (``Config``, ``Variable``), ``telemetry_run._env`` (the variable
parsers a spec's own variables use), ``telemetry_run._version``, ``telemetry_run._import_hooks``
(a post-import hook on a module besides the spec's targets), and ``telemetry_run.plugin``,
the plugin authors' module that re-exports those (so a built-in instrumentor may be written
exactly as a third-party one). The distro may import both.
No module of the package imports the test suite or the benchmarks. Imports under
``TYPE_CHECKING`` count too: a type is a dependency.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The folders and the package each one is (pyproject.toml's package-dir).
PACKAGES = {
    "distro": "telemetry_run",
    "sdk": "telemetry_run.sdk",
    "instrumentors": "telemetry_run.instrumentors",
    "sitecustomize": "telemetry_run.sitecustomize",
}
#: What an instrumentor may import of the distro: the plugin hooks and the configuration types.
INSTRUMENTORS_MAY_USE = frozenset(
    {
        "telemetry_run.hookspecs",
        "telemetry_run.config",
        "telemetry_run._env",
        "telemetry_run._version",
        "telemetry_run._import_hooks",
        "telemetry_run.plugin",
    }
)
#: (from, to) layer pairs always allowed; the same layer is, too.
ALLOWED = frozenset({("distro", "sdk"), ("distro", "instrumentors"), ("instrumentors", "sdk")})
BENCH_MODULES = frozenset(path.stem for path in (ROOT / "bench").glob("*.py"))


def _layer(module: str) -> str | None:
    """The layer a module name belongs to, or None for a third-party or standard one."""
    top = module.split(".", maxsplit=1)[0]
    if top == "tests":
        return "tests"
    if top == "bench" or top in BENCH_MODULES:
        return "bench"
    if top != "telemetry_run":
        return None
    if module == "telemetry_run.sdk" or module.startswith("telemetry_run.sdk."):
        return "sdk"
    if module == "telemetry_run.instrumentors" or module.startswith("telemetry_run.instrumentors."):
        return "instrumentors"
    return "distro"


def _module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Iterator[tuple[str, Path]]:
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield _module_name(path), path


def _is_module(name: str) -> bool:
    """Whether ``name`` (one of ours) is a module or package in the tree."""
    for folder, package in sorted(PACKAGES.items(), key=lambda item: -len(item[1])):
        if name == package or name.startswith(package + "."):
            relative = name[len(package) + 1 :].replace(".", "/") if name != package else ""
            base = ROOT / folder / relative
            return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()
    return False


def imports_of(module: str, source: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, relative ones resolved; for
    ``from package import name``, the submodule when ``name`` is one of ours."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                yield node.lineno, candidate if _is_module(candidate) else target


def crossings(module: str, source: str, is_package: bool = False) -> list[str]:
    """Each import of ``module`` that crosses the layers the wrong way, as ``line: target``."""
    layer = _layer(module)
    found = []
    for line, target in imports_of(module, source, is_package):
        to = _layer(target)
        if to is None or to == layer:
            continue
        if (layer, to) in ALLOWED or (
            (layer, to) == ("instrumentors", "distro") and target in INSTRUMENTORS_MAY_USE
        ):
            continue
        found.append(f"{line}: {target} ({layer} -> {to})")
    return found


MODULES = list(_modules())


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[name for name, _ in MODULES])
def test_no_import_crosses_the_layers_the_wrong_way(module: str, path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert crossings(module, source, path.name == "__init__.py") == []


def test_every_folder_of_the_package_is_walked() -> None:
    names = {name for name, _ in MODULES}
    assert {"telemetry_run.bootstrap", "telemetry_run.sdk.trace.provider"} <= names
    assert {"telemetry_run.instrumentors.flask", "telemetry_run.testing.otlp"} <= names


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "telemetry_run.sdk.trace.span",
            "from telemetry_run.config import Config",
            ["1: telemetry_run.config (sdk -> distro)"],
        ),
        (
            "telemetry_run.sdk.trace.span",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from telemetry_run.instrumentors import base",
            ["3: telemetry_run.instrumentors.base (sdk -> instrumentors)"],
        ),
        (
            "telemetry_run.sdk.trace.span",
            "from ... import bootstrap",
            ["1: telemetry_run.bootstrap (sdk -> distro)"],
        ),
        (
            "telemetry_run.instrumentors.flask",
            "import telemetry_run.bootstrap",
            ["1: telemetry_run.bootstrap (instrumentors -> distro)"],
        ),
        (
            "telemetry_run.instrumentors.flask",
            "from telemetry_run import plugins",
            ["1: telemetry_run.plugins (instrumentors -> distro)"],
        ),
        (
            "telemetry_run.bootstrap",
            "from tests.integration.conftest import run",
            ["1: tests.integration.conftest (distro -> tests)"],
        ),
        ("telemetry_run.listing", "import _common", ["1: _common (distro -> bench)"]),
        ("telemetry_run.instrumentors.flask", "from telemetry_run.config import Config", []),
        ("telemetry_run.instrumentors.flask", "from telemetry_run.hookspecs import hookimpl", []),
        ("telemetry_run.bootstrap", "from telemetry_run.sdk.trace import provider", []),
        ("telemetry_run.sdk.trace.span", "from telemetry_run.sdk._log import logger", []),
    ],
)
def test_a_crossing_import_is_found(module: str, source: str, expected: list[str]) -> None:
    assert crossings(module, source) == expected


def test_the_plugin_module_re_exports_only_what_an_instrumentor_may_use() -> None:
    # telemetry_run.plugin is open to instrumentors because everything it re-exports is.
    from telemetry_run import plugin

    homes = set(vars(plugin)["_HOME"].values())
    assert homes
    for home in homes:
        assert _layer(home) in ("sdk", "instrumentors") or home in INSTRUMENTORS_MAY_USE, home


def module_getattrs(source: str) -> list[int]:
    """The lines of a module-level ``def __getattr__`` (PEP 562) in ``source``."""
    return [
        node.lineno
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
    ]


def test_lazy_re_exports_go_through_the_one_mechanism() -> None:
    # A package that re-exports names lazily assigns what ``lazy_exports`` returns; a module
    # writing its own ``__getattr__`` is a second variant of it (it was four, then five).
    own = {
        module: lines
        for module, path in MODULES
        if (lines := module_getattrs(path.read_text(encoding="utf-8")))
        and module != "telemetry_run.sdk._lazy"
    }
    assert own == {}
    assert module_getattrs("def __getattr__(name):\n    return name\n") == [1]
