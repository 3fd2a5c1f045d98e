"""What an instrumentor is: cheap spec data, the base class, and the one way to patch.

Specs are read at start-up in every process (and by ``--list`` in the launcher), so this module
imports nothing heavy: wrapt and the SDK are imported only when an instrumentor patches, which
happens after its target library has been imported by the application.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, ParamSpec, Protocol, TypeVar

from telemetry_run.sdk._record import FrozenRecord

if TYPE_CHECKING:
    from types import TracebackType

    from telemetry_run.config import Config, Variable
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = [
    "KINDS",
    "Instrumentor",
    "InstrumentorSpec",
    "NotApplicable",
    "Patch",
    "Patcher",
    "ReleaseLine",
    "SupportsInstrument",
    "WrapperFunction",
    "guard",
]

P = ParamSpec("P")
R = TypeVar("R")

#: A wrapt wrapper: ``wrapper(wrapped, instance, args, kwargs)`` returning what ``wrapped`` does.
WrapperFunction = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]

# A PEP 508 distribution name at the start of a requirement: an ASCII letter or digit, then
# letters, digits and "._-", ending with a letter or digit (see ``_dist_name``).
_NAME_START: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_NAME_CHARS: Final = _NAME_START | frozenset("._-")


def _dist_name(requires: str) -> str | None:
    """The distribution name ``requires`` starts with (after whitespace), or None: the regular
    expression ``\\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)`` as a match, without
    compiling one at start-up."""
    text = requires.lstrip()
    if not text or text[0] not in _NAME_START:
        return None
    end = 1
    while end < len(text) and text[end] in _NAME_CHARS:
        end += 1
    return text[:end].rstrip("._-")


class SupportsInstrument(Protocol):
    """What ``InstrumentorSpec.load`` must name: a class like this (``Instrumentor`` is one)."""

    def instrument(self, tracer_provider: TracerProvider, config: Config, /) -> object: ...

    def uninstrument(self) -> None: ...


#: What ``InstrumentorSpec.kind`` may say: ``"http"`` gives the instrumentor its own
#: ``OTEL_PYTHON_<NAME>_EXCLUDED_URLS``; ``"rpc"`` and ``""`` (anything else) add no variable.
KINDS: Final = ("http", "rpc", "")


class ReleaseLine(FrozenRecord):
    """One release line of a library that the version matrix tests.

    ``version`` is a line (``"2.2"`` installs ``flask==2.2.*``) or ``"latest"``; ``python`` a
    specifier such as ``"<3.13"`` when the line runs on only some of the matrix's Pythons;
    ``companions`` the pins it needs beside it (``("werkzeug<3",)``). The README's
    instrumentor table shows ``python`` and ``companions`` as the line's caveats.
    """

    __match_args__ = ("version", "python", "companions")
    __slots__ = __match_args__

    version: str
    python: str
    companions: tuple[str, ...]

    def __init__(self, version: str, python: str = "", companions: tuple[str, ...] = ()) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "version", version)
        setattr_(self, "python", python)
        setattr_(self, "companions", tuple(companions))


class InstrumentorSpec(FrozenRecord):
    """An instrumentor as data: read at start-up, acted on only when its target is imported.

    ``name`` is the word users put in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``; ``modules`` the
    import names whose import triggers it; ``requires`` a PEP 508 requirement such as
    ``"flask>=2.2,<4"``, checked against the installed distribution's metadata before anything
    is imported (empty for a standard-library target); ``load`` names the instrumentor class as
    ``"module:Class"``, imported only after a target module has been.

    The rest is what everything else about a library is derived from (the registry of
    variables, ``--list``, the README tables, the version matrix): ``description`` says what it
    records; ``kind`` (one of ``KINDS``) brings the variables every instrumentor of that kind
    has; ``variables`` are its own ones; ``matrix`` the release lines its tests run against,
    the floor of ``requires`` first, ``"latest"`` last (a plain string is a ``ReleaseLine``
    without caveats).
    """

    __match_args__ = (
        "name",
        "modules",
        "requires",
        "load",
        "description",
        "kind",
        "variables",
        "matrix",
    )
    __slots__ = __match_args__

    name: str
    modules: tuple[str, ...]
    requires: str
    load: str
    description: str
    kind: str
    variables: tuple[Variable, ...]
    matrix: tuple[ReleaseLine, ...]

    def __init__(
        self,
        name: str,
        modules: tuple[str, ...],
        requires: str,
        load: str,
        description: str = "",
        kind: str = "",
        variables: tuple[Variable, ...] = (),
        matrix: tuple[ReleaseLine | str, ...] = (),
    ) -> None:
        given: object = modules
        if isinstance(given, str):
            raise TypeError(
                f"InstrumentorSpec.modules is a tuple of import names, not the string "
                f"{given!r} (write ({given!r},))"
            )
        setattr_ = object.__setattr__
        setattr_(self, "name", name)
        setattr_(self, "modules", tuple(modules))
        setattr_(self, "requires", requires)
        setattr_(self, "load", load)
        setattr_(self, "description", description)
        setattr_(self, "kind", kind)
        setattr_(self, "variables", tuple(variables))
        if self.variables:  # the built-ins declare none: no import at start-up for them
            from telemetry_run.config import Variable

            for variable in self.variables:
                if not isinstance(variable, Variable):
                    raise TypeError(f"InstrumentorSpec.variables holds {variable!r}, not Variables")
        setattr_(
            self,
            "matrix",
            tuple(line if isinstance(line, ReleaseLine) else ReleaseLine(line) for line in matrix),
        )
        if not self.name or not self.modules:
            raise ValueError("an InstrumentorSpec needs a name and at least one module")
        module, sep, attr = self.load.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"InstrumentorSpec.load must be 'module:Class', got {self.load!r}")
        if self.requires.strip() and _dist_name(self.requires) is None:
            raise ValueError(f"InstrumentorSpec.requires is not a requirement: {self.requires!r}")
        if self.kind not in KINDS:
            raise ValueError(f"InstrumentorSpec.kind must be one of {KINDS}, got {self.kind!r}")

    def declared_variables(self) -> tuple[Variable, ...]:
        """The variables this instrumentor reads: those of its kind, then its own."""
        if self.kind != "http":
            return self.variables
        from telemetry_run.config import Variable
        from telemetry_run.instrumentors import _http  # loaded with the built-in plugin anyway

        excluded = Variable(
            _http.excluded_urls_variable(self.name),
            _http.parse_url_patterns,
            (),
            f"as {_http.EXCLUDED_URLS}, for {self.name} only (wins over it)",
        )
        return (excluded, *self.variables)

    @property
    def distribution(self) -> str | None:
        """The distribution ``requires`` names; None for a standard-library target."""
        return _dist_name(self.requires)

    def load_class(self) -> Callable[[], SupportsInstrument]:
        """Import ``load`` (only call this once a target module is imported)."""
        module_name, _, qualname = self.load.partition(":")
        obj: Any = importlib.import_module(module_name)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
        factory: Callable[[], SupportsInstrument] = obj
        return factory


class NotApplicable(Exception):
    """Raised by ``instrument()`` for an expected skip (a feature the installed library lacks).

    Auto-loaded instrumentors that raise it are skipped quietly and ``--list`` shows the reason;
    anything else an instrumentor raises is reported as a bug.
    """


class Patch(FrozenRecord):
    """One wrap the Patcher made: where, what was there, and what it put there.

    ``created`` is true when the attribute was inherited (or served dynamically) rather than
    defined on ``parent``: undoing the patch deletes it instead of assigning the original.
    """

    __match_args__ = ("parent", "attribute", "original", "wrapper", "created")
    __slots__ = __match_args__

    parent: Any
    attribute: str
    original: Any
    wrapper: Any
    created: bool

    def __init__(
        self, parent: Any, attribute: str, original: Any, wrapper: Any, created: bool
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "parent", parent)
        setattr_(self, "attribute", attribute)
        setattr_(self, "original", original)
        setattr_(self, "wrapper", wrapper)
        setattr_(self, "created", created)


class Patcher:
    """Wraps attributes with wrapt and remembers each wrap, so undo is derived, never rewritten.

    ``patcher.wrap("flask", "Flask.wsgi_app", wrapper)`` wraps at most once per attribute;
    ``restore()`` puts back the exact original objects, last patch first.
    """

    def __init__(self) -> None:
        self._patches: list[Patch] = []
        self._lock = threading.Lock()
        _patchers.add(self)

    @property
    def patches(self) -> tuple[Patch, ...]:
        return tuple(self._patches)

    def wrap(self, target: str | object, path: str, wrapper: WrapperFunction) -> Any:
        """Wrap ``target.path`` (``target`` a module name, module, class or object).

        Returns the wrapt ``FunctionWrapper`` now in place; wrapping an attribute this patcher
        already wrapped returns the existing wrapper and changes nothing.
        """
        from telemetry_run.instrumentors._wrapt import load_wrapt

        wrapt = load_wrapt()  # only instrumentors that patch pay for wrapt

        if isinstance(target, str):
            target = importlib.import_module(target)
        parent, attribute, original = wrapt.resolve_path(target, path)
        with self._lock:
            for patch in self._patches:
                if patch.parent is parent and patch.attribute == attribute:
                    return patch.wrapper
            try:
                created = attribute not in vars(parent)
            except TypeError:  # no __dict__ (slots): the attribute is the parent's own
                created = False
            wrapped = wrapt.wrap_function_wrapper(parent, attribute, wrapper)
            self._patches.append(Patch(parent, attribute, original, wrapped, created))
        return wrapped

    def replace(self, owner: type, attribute: str, make: Callable[[Any], Any]) -> Any:
        """Put ``make(original)`` in place of the function ``owner.attribute``; no wrapt proxy.

        For a method every request of a busy service calls (Flask's ``wsgi_app``): a plain
        function binds as a method and gets the caller's arguments as they are, where a wrapt
        proxy binds a proxy at each access and packs the arguments for the wrapper (about
        0.5 µs a call more, measured). Recorded as a wrap is, so ``restore()`` undoes it the same
        way (also when another tool has wrapped over it since); replacing an attribute this
        patcher already patched returns what is in place and changes nothing.
        """
        import inspect

        with self._lock:
            for patch in self._patches:
                if patch.parent is owner and patch.attribute == attribute:
                    return patch.wrapper
            created = attribute not in vars(owner)
            original = inspect.getattr_static(owner, attribute)
            replacement = make(original)
            setattr(owner, attribute, replacement)
            self._patches.append(Patch(owner, attribute, original, replacement, created))
        return replacement

    def restore(self) -> list[Patch]:
        """Undo every patch in reverse order; returns those that could not be undone.

        When another tool has wrapped over one of ours with a wrapt proxy, ours is spliced out of
        its chain. When the attribute was replaced wholesale, ours stays wherever it now is, inert
        because the instrumentor's gate is off, and the patch is returned.
        """
        with self._lock:
            patches, self._patches = self._patches, []
        return [patch for patch in reversed(patches) if not _undo(patch)]


_MISSING: Final = object()


def _undo(patch: Patch) -> bool:
    parent, attribute = patch.parent, patch.attribute
    try:
        current = vars(parent).get(attribute, _MISSING)
    except TypeError:
        current = getattr(parent, attribute, _MISSING)
    if current is patch.wrapper:
        if patch.created:
            delattr(parent, attribute)
        else:
            setattr(parent, attribute, patch.original)
        return True
    from telemetry_run.instrumentors._wrapt import load_wrapt

    wrapt = load_wrapt()  # already imported by wrap()

    proxy_type = getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy)
    above = current
    for _ in range(64):  # wrapt's own bound on a wrapper chain
        if not isinstance(above, proxy_type):
            return False
        below = above.__wrapped__
        if below is patch.wrapper:
            above.__wrapped__ = patch.original
            return True
        above = below
    return False


def _report(where: str, exc: Exception) -> None:
    from telemetry_run.sdk.diagnostics import get_diagnostics  # see module doc

    get_diagnostics().internal_error(where, exc)


class guard:
    """Runs our own code so that its failure never reaches the application.

    As a context manager, an ``Exception`` raised in the block is reported through
    ``get_diagnostics().internal_error(where, exc)`` (logged once per interval for each place)
    and swallowed. As a decorator, the function returns None when it fails. Keep the
    application's call (``wrapped(*args, **kwargs)``) outside the guarded code, so its result
    and its exceptions pass through untouched. In strict mode the report raises.
    """

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if not isinstance(exc, Exception):
            return False  # no error, or KeyboardInterrupt/SystemExit: not ours to keep
        _report(self.where, exc)
        return True

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R | None]:
        where = self.where

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R | None:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  # reported; the application carries on
                _report(where, exc)
                return None

        return guarded


def _never_suppressed() -> bool:
    return False


# Bound to telemetry_run.sdk.context.is_suppressed by the first instrument(): importing the SDK
# here would make every spec-declaring plugin import it, the launcher's --list included.
_is_suppressed: Callable[[], bool] = _never_suppressed

# The instrumented instance of each Instrumentor class: patching twice is a no-op, even from a
# second instance.
_active: dict[type[Instrumentor], Instrumentor] = {}
_active_lock = threading.Lock()


class Instrumentor:
    """Base class of instrumentors: implement ``_instrument``, patching through ``self.patcher``.

    ``instrument()`` is a no-op while this class is already instrumented (by any instance);
    ``uninstrument()`` replays the patcher backwards, so the originals come back exactly. Each
    wrapper starts with the gate ``if not self.enabled(): return wrapped(*args, **kwargs)``.
    """

    def __init__(self) -> None:
        self.patcher = Patcher()
        self.active = False
        self.tracer_provider: TracerProvider | None = None
        self.config: Config | None = None

    def instrument(self, tracer_provider: TracerProvider, config: Config | None = None) -> bool:
        """Patch the target; False when this class was already instrumented (nothing done).

        Raises ``NotApplicable`` for an expected skip; on any failure, what was patched so far
        is restored before the exception propagates.
        """
        global _is_suppressed
        cls = type(self)
        with _active_lock:
            if cls in _active:
                return False
            _active[cls] = self
        try:
            from telemetry_run.sdk.context import is_suppressed  # see above

            _is_suppressed = is_suppressed
            if config is None:
                from telemetry_run.config import Config

                config = Config.from_env({})
            self.tracer_provider = tracer_provider
            self.config = config
            self._instrument(tracer_provider, config)
        except BaseException:
            self.patcher.restore()
            with _active_lock:
                _active.pop(cls, None)
            raise
        self.active = True
        return True

    def uninstrument(self) -> None:
        """Restore every original this instance patched; a no-op when it is not instrumented."""
        cls = type(self)
        with _active_lock:
            if _active.get(cls) is not self:
                return
        self.active = False
        try:
            self._uninstrument()
        finally:
            self.patcher.restore()
            with _active_lock:
                _active.pop(cls, None)

    def enabled(self) -> bool:
        """The gate: instrumented, and not inside ``suppress_instrumentation()``."""
        return self.active and not _is_suppressed()

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        """Import the target and patch it with ``self.patcher.wrap``; may raise NotApplicable."""
        raise NotImplementedError

    def _uninstrument(self) -> None:
        """Undo what the patcher did not do (rarely needed); the patcher is replayed after."""


# A child forked while another thread was patching or instrumenting would inherit these locks
# held, and its next instrument() would wait forever: it gets fresh ones.
_patchers: weakref.WeakSet[Patcher] = weakref.WeakSet()


def _reinit_locks_after_fork() -> None:
    global _active_lock
    _active_lock = threading.Lock()
    for patcher in list(_patchers):
        patcher._lock = threading.Lock()


# Python's own hook, not telemetry_run.sdk.forking's: this module must not import the SDK.
os.register_at_fork(after_in_child=_reinit_locks_after_fork)
