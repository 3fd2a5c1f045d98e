"""Lazy instrumentation: decide from metadata alone, patch when the application imports.

``plan`` decides for each instrumentor spec without importing anything of its target: disabled
by ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, distribution not installed, installed version
outside ``requires``, or enabled. ``install`` registers a post-import hook per target module
of each enabled spec (``telemetry_run._import_hooks``), so a library imported after start-up is
patched when it is imported, and one never imported costs nothing and is never imported by us.
A hook's exception never fails the application's import: the hook body is guarded.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, Literal

from telemetry_run.instrumentors.base import NotApplicable
from telemetry_run.sdk._log import logger
from telemetry_run.sdk._record import Record

if TYPE_CHECKING:
    from types import ModuleType

    from telemetry_run.config import Config
    from telemetry_run.instrumentors.base import InstrumentorSpec, SupportsInstrument
    from telemetry_run.sdk.diagnostics import Diagnostics
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = [
    "DISABLED",
    "ENABLED",
    "FAILED",
    "NOT_APPLICABLE",
    "NOT_INSTALLED",
    "PATCHED",
    "SKIPPED",
    "Installed",
    "InstrumentorStatus",
    "State",
    "install",
    "plan",
]


State = Literal[
    "enabled", "disabled", "not installed", "skipped", "patched", "not applicable", "failed"
]
ENABLED: Final = "enabled"  # a hook waits for the target's import
DISABLED: Final = "disabled"  # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS
NOT_INSTALLED: Final = "not installed"  # the distribution in `requires` is absent
SKIPPED: Final = "skipped"  # the installed version is outside `requires`
PATCHED: Final = "patched"  # the target was imported and instrument() succeeded
NOT_APPLICABLE: Final = "not applicable"  # instrument() raised NotApplicable
FAILED: Final = "failed"  # anything else went wrong; reported once

# Requirements of this shape need only a SpecifierSet; others (extras, markers, URLs) are parsed
# with packaging's full Requirement.
_SIMPLE_SPECIFIER_CHARS: Final = frozenset(
    "<>=!~.,*+-_ \tabcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)


class InstrumentorStatus(Record):
    """What became of one instrumentor, for logs, ``--list`` and tests.

    ``state`` is one of the constants above and ``reason`` says why in words; ``text`` joins
    them (``"skipped: flask 1.1.4 is outside flask>=2.2,<4"``). ``spec`` is neither shown nor
    compared.
    """

    __match_args__ = (
        "name",
        "plugin",
        "modules",
        "distribution",
        "installed_version",
        "requires",
        "state",
        "reason",
        "spec",
    )
    __slots__ = __match_args__
    _repr_skip = _compare_skip = frozenset({"spec"})

    name: str
    plugin: str
    modules: tuple[str, ...]
    distribution: str | None
    installed_version: str | None
    requires: str
    state: State
    reason: str
    spec: InstrumentorSpec | None

    def __init__(
        self,
        name: str,
        plugin: str,
        modules: tuple[str, ...],
        distribution: str | None,
        installed_version: str | None,
        requires: str,
        state: State,
        reason: str = "",
        spec: InstrumentorSpec | None = None,
    ) -> None:
        self.name = name
        self.plugin = plugin
        self.modules = modules
        self.distribution = distribution
        self.installed_version = installed_version
        self.requires = requires
        self.state = state
        self.reason = reason
        self.spec = spec

    @property
    def text(self) -> str:
        return f"{self.state}: {self.reason}" if self.reason else self.state


def plan(specs: Iterable[tuple[str, InstrumentorSpec]], config: Config) -> list[InstrumentorStatus]:
    """Decide, for each (plugin name, spec), whether it is enabled; nothing is imported.

    Reads only the configuration and distribution metadata (``packaging`` is imported only
    when an installed version has to be compared with a range).
    """
    disabled = config.disabled_instrumentations
    statuses = []
    for plugin, spec in specs:
        status = InstrumentorStatus(
            spec.name,
            plugin,
            spec.modules,
            spec.distribution,
            None,
            spec.requires,
            ENABLED,
            spec=spec,
        )
        if spec.name in disabled or "*" in disabled:
            status.state = DISABLED
            status.reason = "listed in OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
        else:
            _check_requirement(status, spec)
        statuses.append(status)
    return statuses


def _check_requirement(status: InstrumentorStatus, spec: InstrumentorSpec) -> None:
    dist = spec.distribution
    if dist is None:
        return  # a standard-library target: nothing to check
    from telemetry_run._dists import version as installed_version

    version = installed_version(dist)
    if version is None:
        status.state = NOT_INSTALLED
        status.reason = f"distribution {dist} is not installed"
        return
    status.installed_version = version
    try:
        outside = _outside(spec.requires, dist, version)
    except Exception as exc:  # noqa: BLE001  # packaging's errors; the spec is the plugin's bug
        status.state = FAILED
        status.reason = f"requires {spec.requires!r} is not a valid requirement: {exc}"
        return
    if outside is not None:
        status.state = SKIPPED
        status.reason = outside


def _outside(requires: str, dist: str, version: str) -> str | None:
    """Why ``version`` of ``dist`` does not satisfy ``requires``, or None when it does."""
    rest = requires.strip()[len(dist) :]
    if not rest.strip():
        return None
    inside = _release_range_contains(rest, version)
    if inside is not None:
        return None if inside else f"{dist} {version} is outside {requires.strip()}"
    if set(rest) <= _SIMPLE_SPECIFIER_CHARS:
        from packaging.specifiers import SpecifierSet  # only when comparing

        specifier = SpecifierSet(rest)
    else:
        from packaging.requirements import Requirement  # extras, markers

        requirement = Requirement(requires)
        if requirement.marker is not None and not requirement.marker.evaluate():
            return f"{requirement.marker} is false here"
        specifier = requirement.specifier
    # An installed pre-release inside the range is what the user runs: accept it.
    if specifier.contains(version, prereleases=True):
        return None
    return f"{dist} {version} is outside {requires.strip()}"


_OPERATORS: Final = (">=", "<=", "==", "!=", "<", ">")  # two-character ones first
_COMPARE: Final[dict[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]]] = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}


def _release_range_contains(specifier: str, version: str) -> bool | None:
    """``3.1.3`` against ``>=2.2,<4`` without importing packaging (every process checks every
    installed target at start-up; ``bench/startup_parts.py``, row ``versions``); None when
    either side is more than plain release numbers (pre-releases, wildcards, ``~=``), which
    packaging then decides."""
    installed = _release(version)
    if installed is None:
        return None
    clauses = [_clause(clause) for clause in specifier.split(",")]
    if not all(clauses):
        return None
    for clause in clauses:
        assert clause is not None  # checked above
        operator, bound = clause
        width = max(len(installed), len(bound))  # PEP 440: 3.1 == 3.1.0
        left = tuple(installed + [0] * (width - len(installed)))
        right = tuple(bound + [0] * (width - len(bound)))
        if not _COMPARE[operator](left, right):
            return False
    return True


def _release(text: str) -> list[int] | None:
    """``3.1.3`` as ``[3, 1, 3]``; None unless ``text`` is dot-separated decimal numbers only
    (the regular expression ``\\d+(?:\\.\\d+)*``, without compiling one at start-up)."""
    parts = text.split(".")
    if not all(part.isdecimal() for part in parts):  # "" is not decimal
        return None
    return [int(part) for part in parts]


def _clause(text: str) -> tuple[str, list[int]] | None:
    """``>= 2.2`` as ``(">=", [2, 2])``: an operator and a release, whitespace around either;
    None for anything else (``~=``, wildcards, pre-releases)."""
    text = text.strip()
    for operator in _OPERATORS:
        if text.startswith(operator):
            release = _release(text[len(operator) :].strip())
            return None if release is None else (operator, release)
    return None


class Installed:
    """The hooks ``install`` registered; statuses change as target modules get imported.

    ``uninstall()`` (tests, and a process shutting instrumentation down) uninstruments what was
    patched and disarms the hooks still waiting (wrapt cannot unregister them); their statuses
    become "disabled: instrumentation uninstalled".
    """

    def __init__(
        self,
        statuses: list[InstrumentorStatus],
        config: Config,
        tracer_provider: TracerProvider,
        diagnostics: Diagnostics | None,
    ) -> None:
        self.statuses = statuses
        self.instrumentors: dict[str, SupportsInstrument] = {}
        self._config = config
        self._tracer_provider = tracer_provider
        self._diagnostics = diagnostics
        self._armed = True
        self._started: set[str] = set()
        self._lock = threading.Lock()
        _installed.add(self)

    def status(self, name: str) -> InstrumentorStatus:
        for status in self.statuses:
            if status.name == name:
                return status
        raise KeyError(name)

    def hook_for(self, status: InstrumentorStatus) -> Callable[[ModuleType], None]:
        def on_import(module: ModuleType) -> None:
            self._on_import(status, module)

        return on_import

    def _on_import(self, status: InstrumentorStatus, module: ModuleType) -> None:
        spec = status.spec
        with self._lock:
            # Once per spec: a second trigger module, or instrument() importing one, is a no-op.
            if not self._armed or spec is None or status.name in self._started:
                return
            self._started.add(status.name)
        try:
            instrumentor = spec.load_class()()
            done = instrumentor.instrument(self._tracer_provider, self._config)
        except NotApplicable as exc:
            status.state = NOT_APPLICABLE
            status.reason = str(exc) or type(exc).__name__
            logger.info("instrumentor %s %s", status.name, status.text)
            return
        except Exception as exc:  # noqa: BLE001  # the application's import must still succeed
            status.state = FAILED
            status.reason = f"{type(exc).__name__}: {exc}"
            self._report(f"instrumentor {status.name} ({spec.load})", exc)
            return
        status.state = PATCHED
        if done is False:  # Instrumentor.instrument: this class was instrumented already
            status.reason = "already instrumented in this process"
            return
        self.instrumentors[status.name] = instrumentor
        logger.debug("instrumentor %s patched on import of %s", status.name, module.__name__)

    def _report(self, where: str, exc: Exception) -> None:
        diagnostics = self._diagnostics
        if diagnostics is None:
            from telemetry_run.sdk.diagnostics import get_diagnostics

            diagnostics = get_diagnostics()
        diagnostics.internal_error(where, exc)

    def uninstall(self) -> None:
        """Uninstrument what was patched and disarm the hooks still waiting for an import."""
        with self._lock:
            self._armed = False
        for name, instrumentor in list(self.instrumentors.items()):
            instrumentor.uninstrument()
            del self.instrumentors[name]
        for status in self.statuses:
            if status.state in (ENABLED, PATCHED):
                status.state = DISABLED
                status.reason = "instrumentation uninstalled"


def install(
    statuses: list[InstrumentorStatus],
    config: Config,
    tracer_provider: TracerProvider,
    *,
    diagnostics: Diagnostics | None = None,
) -> Installed:
    """Register a post-import hook per target module of every enabled status.

    A target already imported is patched at once. Skipped, disabled and not-installed statuses
    get one log line each (info for a version outside the range, a warning for an invalid
    ``requires``, debug otherwise). Failures of
    an instrumentor are reported through ``diagnostics`` (default: the global one).
    """
    installed = Installed(statuses, config, tracer_provider, diagnostics)
    enabled = []
    for status in statuses:
        if status.state == ENABLED and status.spec is not None:
            enabled.append(status)
        elif status.state == FAILED:
            logger.warning("instrumentor %s %s", status.name, status.text)
        elif status.state == SKIPPED:
            logger.info("instrumentor %s %s", status.name, status.text)
        else:
            logger.debug("instrumentor %s %s", status.name, status.text)
    from telemetry_run._import_hooks import register_post_import_hook

    for status in enabled:
        hook = installed.hook_for(status)
        for module_name in status.modules:
            register_post_import_hook(hook, module_name)
    return installed


# A child forked while another thread was instrumenting (a library imported on that thread)
# would inherit the lock held, and its next instrumented import would wait forever.
_installed: weakref.WeakSet[Installed] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    for installed in list(_installed):
        installed._lock = threading.Lock()


# Python's own hook, not telemetry_run.sdk.forking's: this module must not import the SDK.
os.register_at_fork(after_in_child=_reinit_locks_after_fork)
