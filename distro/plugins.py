"""Loads plugins one entry point at a time and asks them for things by name.

Every plugin, built-ins included, registers with one pluggy ``PluginManager`` (pytest's rule).
pluggy's own loader stops at the first broken plugin; here each entry point of the
``telemetry_run`` group is loaded under its own ``try`` (the containment of opentelemetry-contrib's
``_load.py``), so a broken plugin is reported once and the others, built-ins included, still load.
Hooks are called one implementation at a time for the same reason: the hook's implementations,
read from pluggy in its call order (the last-registered plugin first, ``tryfirst``/``trylast``
honoured), each called under its own ``try``; that order is how a third-party plugin overrides
a built-in name.

This runs at interpreter start-up in every instrumented process and in ``telemetry-run --list``,
and imports nothing of the SDK's tracing (only its private logger and records; entry points are
read by ``telemetry_run._dists``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn

import pluggy

from telemetry_run import hookspecs
from telemetry_run.hookspecs import PROJECT, hookimpl
from telemetry_run.sdk._log import logger
from telemetry_run.sdk._record import FrozenRecord

if TYPE_CHECKING:
    from telemetry_run._dists import EntryPointLike as EntryPoint
    from telemetry_run.config import Config, Variable
    from telemetry_run.instrumentors.base import InstrumentorSpec
    from telemetry_run.sdk.diagnostics import Diagnostics, InternalError
    from telemetry_run.sdk.exporters import SpanExporter
    from telemetry_run.sdk.propagation import TextMapPropagator
    from telemetry_run.sdk.trace.provider import TracerProvider
    from telemetry_run.sdk.trace.sampling import Sampler

__all__ = [
    "KINDS",
    "PluginError",
    "PluginFailure",
    "PluginInfo",
    "Plugins",
    "hookimpl",
    "make_strict",
]


#: The kinds of things plugins build by name (keys of ``telemetry_run_provides``).
KINDS: Final = ("exporter", "sampler", "propagator")

_FACTORY_HOOKS: Final = {
    "exporter": "telemetry_run_span_exporter",
    "sampler": "telemetry_run_sampler",
    "propagator": "telemetry_run_propagator",
}

# Our own entry points live in our namespace; they register before every other plugin.
_BUILTIN_PREFIX: Final = f"{PROJECT}."


class PluginError(Exception):
    """A plugin failed while ``TELEMETRY_RUN_STRICT`` was on."""


class PluginFailure(FrozenRecord):
    """A plugin (by entry-point name) that failed to load (``where == "load"``) or in a hook;
    ``error`` is one line: the exception's type and message."""

    __match_args__ = ("name", "where", "error")
    __slots__ = __match_args__

    name: str
    where: str
    error: str

    def __init__(self, name: str, where: str, error: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "where", where)
        object.__setattr__(self, "error", error)

    def __str__(self) -> str:
        if self.where == "load":
            return f"plugin {self.name!r} failed to load: {self.error}"
        return f"plugin {self.name!r} failed in {self.where}: {self.error}"


class PluginInfo(FrozenRecord):
    """A registered plugin: its entry-point name and value and the distribution shipping it."""

    __match_args__ = ("name", "value", "distribution", "version", "builtin")
    __slots__ = __match_args__

    name: str
    value: str
    distribution: str | None
    version: str | None
    builtin: bool

    def __init__(
        self, name: str, value: str, distribution: str | None, version: str | None, builtin: bool
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "distribution", distribution)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "builtin", builtin)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_builtin(ep: EntryPoint) -> bool:
    return ep.value.startswith(_BUILTIN_PREFIX)


class Plugins:
    """The plugin manager of one process; build it with ``Plugins.load()``.

    Every call into a plugin is guarded: a failure is recorded in ``failures``, logged once, and
    the plugin is treated as not answering. With ``strict = True`` failures raise ``PluginError``
    instead (and one that already happened raises at once).
    """

    def __init__(self) -> None:
        self.failures: list[PluginFailure] = []
        self.registered: list[PluginInfo] = []
        self._strict = False
        self._reported: set[tuple[str, str]] = set()
        self._provides: dict[str, dict[str, str]] | None = None
        #: The pluggy plugin manager every plugin, built-in or not, is registered with.
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(hookspecs)

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, entry_points: Iterable[EntryPoint] | None = None) -> Plugins:
        """Register the built-in plugins, then every other entry point in name order.

        ``entry_points`` defaults to the ``telemetry_run`` group of the installed distributions
        (read once); tests pass their own.
        """
        if entry_points is None:
            # The one scan of installed metadata, without importlib.metadata's import cost.
            from telemetry_run._dists import entry_points as installed

            entry_points = installed(PROJECT)
        plugins = cls()
        for ep in sorted(entry_points, key=lambda ep: (not _is_builtin(ep), ep.name)):
            plugins._load_entry_point(ep)
        return plugins

    def _load_entry_point(self, ep: EntryPoint) -> None:
        builtin = _is_builtin(ep)
        try:
            plugin = ep.load()
            if plugin is None:
                raise TypeError(f"entry point {ep.value!r} is None")
            self.register(plugin, ep.name)
        except Exception as exc:  # noqa: BLE001  # a broken plugin never stops the others
            self._fail(ep.name, "load", exc)
            return
        dist = getattr(ep, "dist", None)
        self.registered.append(
            PluginInfo(
                ep.name,
                ep.value,
                getattr(dist, "name", None),
                getattr(dist, "version", None),
                builtin,
            )
        )

    def register(self, plugin: object, name: str) -> None:
        """Register ``plugin`` (a module or object with ``@hookimpl`` functions) as ``name``.

        Raises for a plugin pluggy rejects (a hook implementation with arguments the spec lacks),
        one implementing a hook we do not define (a typo, unless marked ``optionalhook``), or
        one declaring a hook wrapper; nothing of it stays registered.
        """
        manager = self.manager
        manager.register(plugin, name=name)
        problems = []
        for caller in manager.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                if impl.wrapper or impl.hookwrapper:
                    problems.append(f"{caller.name} is a hook wrapper (not supported)")
                elif not caller.has_spec() and not impl.optionalhook:
                    problems.append(f"{caller.name} is not a telemetry_run hook")
        if problems:
            manager.unregister(plugin)
            raise pluggy.PluginValidationError(plugin, "; ".join(problems))
        self._provides = None

    # -- strictness and failures --------------------------------------------------------------

    @property
    def strict(self) -> bool:
        """``TELEMETRY_RUN_STRICT``: plugin failures raise ``PluginError``.

        Set it once the configuration is built; setting it true when a plugin has already failed
        (to load, most likely) raises at once.
        """
        return self._strict

    @strict.setter
    def strict(self, strict: bool) -> None:
        self._strict = strict
        if strict and self.failures:
            raise PluginError("; ".join(str(f) for f in self.failures))

    def _fail(self, plugin: str, where: str, exc: Exception) -> None:
        failure = PluginFailure(plugin, where, _one_line(exc))
        if (plugin, where) not in self._reported:
            self._reported.add((plugin, where))
            self.failures.append(failure)
            ignored = "it is skipped" if where == "load" else "its answer is ignored"
            logger.warning("%s; %s", failure, ignored)
        if self._strict:
            raise PluginError(str(failure)) from exc

    # -- calling hooks ------------------------------------------------------------------------

    def _ask(self, hook_name: str, where: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """(plugin name, answer) for each implementation, in pluggy's call order, guarded."""
        for plugin_name, function, argnames in self._impls(hook_name):
            try:
                result = function(*[kwargs[name] for name in argnames])
            except Exception as exc:  # noqa: BLE001  # one plugin's bug is reported, not fatal
                self._fail(plugin_name, where, exc)
                continue
            yield plugin_name, result

    def _impls(self, hook_name: str) -> list[tuple[str, Callable[..., Any], Sequence[str]]]:
        """(plugin name, function, argument names) of each implementation, in pluggy's call
        order (``get_hookimpls`` lists them in the reverse of it)."""
        caller = getattr(self.manager.hook, hook_name)
        return [
            (impl.plugin_name, impl.function, impl.argnames)
            for impl in reversed(caller.get_hookimpls())
        ]

    def _sequence(
        self, hook_name: str, item_type: type[Any], check: Callable[[Any], None] | None = None
    ) -> Iterator[tuple[str, Any]]:
        """Each item of each plugin's sequence answer, checked; a bad answer is a failure."""
        for plugin, answer in self._ask(hook_name, hook_name):
            if answer is None:
                continue
            try:
                if isinstance(answer, str | bytes | Mapping) or not isinstance(answer, Sequence):
                    raise TypeError(f"expected a sequence of {item_type.__name__}, got {answer!r}")
                for item in answer:
                    if not isinstance(item, item_type):
                        raise TypeError(f"expected {item_type.__name__}, got {item!r}")
                    if check is not None:
                        check(item)
            except Exception as exc:  # noqa: BLE001  # the whole answer of that plugin is dropped
                self._fail(plugin, hook_name, exc)
                continue
            for item in answer:
                yield plugin, item

    def _build(self, kind: str, name: str, **kwargs: Any) -> Any:
        hook_name = _FACTORY_HOOKS[kind]
        for plugin, result in self._ask(hook_name, f"{hook_name}({name!r})", name=name, **kwargs):
            if result is not None:
                logger.debug("%s %r built by plugin %r", kind, name, plugin)
                return result
        return None

    # -- what the bootstrap and --list ask for ----------------------------------------------

    def variables(self) -> list[Variable]:
        """The environment variables plugins declare, for ``Config.from_env(..., extra=...)``.

        Built-ins first (in registration order), so a built-in declaration wins a clash.
        """
        from telemetry_run.config import Variable  # keep this module light

        by_plugin: dict[str, list[Variable]] = {}
        for plugin, variable in self._sequence("telemetry_run_variables", Variable):
            by_plugin.setdefault(plugin, []).append(variable)
        return [var for variables in reversed(by_plugin.values()) for var in variables]

    def span_exporter(self, name: str, config: Config) -> SpanExporter | None:
        """The exporter ``name`` built by the plugin that answers it first, or None."""
        exporter: SpanExporter | None = self._build("exporter", name, config=config)
        return exporter

    def sampler(self, name: str, arg: str | None, config: Config) -> Sampler | None:
        """The sampler ``name`` (with ``OTEL_TRACES_SAMPLER_ARG`` as ``arg``), or None."""
        sampler: Sampler | None = self._build("sampler", name, arg=arg, config=config)
        return sampler

    def propagator(self, name: str, config: Config) -> TextMapPropagator | None:
        """The propagator ``name`` built by the plugin that answers it first, or None."""
        propagator: TextMapPropagator | None = self._build("propagator", name, config=config)
        return propagator

    def provides(self) -> dict[str, dict[str, str]]:
        """Kind -> name -> the plugin that provides it (the one asked first), for ``--list``."""
        if self._provides is None:
            table: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
            for plugin, answer in self._ask("telemetry_run_provides", "telemetry_run_provides"):
                if answer is None:
                    continue
                try:
                    entries = [
                        (str(kind), name)
                        for kind, names in dict(answer).items()
                        for name in ([names] if isinstance(names, str) else list(names))
                    ]
                    for _, name in entries:
                        if not isinstance(name, str):
                            raise TypeError(f"expected names (str), got {name!r}")
                except Exception as exc:  # noqa: BLE001  # a malformed answer is dropped whole
                    self._fail(plugin, "telemetry_run_provides", exc)
                    continue
                for kind, name in entries:
                    table.setdefault(kind, {}).setdefault(name, plugin)
            self._provides = table
        return {kind: dict(names) for kind, names in self._provides.items()}

    def provider_of(self, kind: str, name: str) -> str | None:
        """The plugin whose factory answers ``name`` first (a third-party one over a built-in)."""
        return self.provides().get(kind, {}).get(name)

    def instrumentor_specs(self) -> list[tuple[str, InstrumentorSpec]]:
        """(plugin name, spec) of every declared instrumentor, sorted by instrumentor name.

        When two plugins declare the same name, the later-registered one wins.
        """
        from telemetry_run.instrumentors.base import InstrumentorSpec

        chosen: dict[str, tuple[str, InstrumentorSpec]] = {}
        for plugin, spec in self._sequence("telemetry_run_instrumentors", InstrumentorSpec):
            if spec.name in chosen:
                logger.debug(
                    "instrumentor %r of plugin %r is replaced by plugin %r's",
                    spec.name,
                    plugin,
                    chosen[spec.name][0],
                )
                continue
            chosen[spec.name] = (plugin, spec)
        return sorted(chosen.values(), key=lambda item: item[1].name)

    def configure(self, config: Config, tracer_provider: TracerProvider) -> None:
        """Call every plugin's ``telemetry_run_configure`` (each guarded)."""
        for _ in self._ask(
            "telemetry_run_configure",
            "telemetry_run_configure",
            config=config,
            tracer_provider=tracer_provider,
        ):
            pass


def make_strict(diagnostics: Diagnostics) -> None:
    """``TELEMETRY_RUN_STRICT``: internal errors reported to ``diagnostics`` raise.

    The exception raised is the original one, so a broken instrumentor fails a test suite with
    its own error; a handler already installed (a test's collector) still sees it first.
    """
    previous = diagnostics.on_internal_error

    def raise_error(error: InternalError) -> NoReturn:
        if previous is not None:
            previous(error)
        raise error.exception

    diagnostics.on_internal_error = raise_error
