"""Process pools and processes carry the trace context to the child that runs the task.

A task handed to another process (``ProcessPoolExecutor.submit``/``map``, ``multiprocessing``
``Pool.apply_async``/``map``/``imap``/``starmap``, ``Process(target=...)``) while a span is
current is wrapped in a ``RemoteContext``: the task, plus the W3C ``traceparent``,
``tracestate`` and ``baggage`` of the submitter, pickled with it. The child extracts them and
runs the task under that context, so its spans are children of the submitter's span (the
child process is instrumented already: the launcher's environment reaches it). Outside a span
nothing is wrapped. The W3C propagators are used whatever ``OTEL_PROPAGATORS`` says: this is
our channel between two of our processes, not a header another service reads.

A ``Process`` subclass that overrides ``run`` has no target to wrap and is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.instrumentors._replace import Replacements
from telemetry_run.instrumentors.base import Instrumentor, guard
from telemetry_run.sdk.baggage import get_all
from telemetry_run.sdk.context import Context, attach, detach
from telemetry_run.sdk.propagation.baggage import W3CBaggagePropagator
from telemetry_run.sdk.propagation.tracecontext import TraceContextTextMapPropagator
from telemetry_run.sdk.trace.current import get_current_span

if TYPE_CHECKING:
    from types import ModuleType

    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["ProcessesInstrumentor", "RemoteContext"]

_TRACE_CONTEXT: Final = TraceContextTextMapPropagator()
_BAGGAGE: Final = W3CBaggagePropagator()

# multiprocessing.pool.Pool methods taking the task function first; apply, map and starmap
# go through apply_async and _map_async, imap_unordered does not go through imap.
_POOL_METHODS: Final = ("apply_async", "map", "map_async", "starmap", "starmap_async")
_POOL_ITERATORS: Final = ("imap", "imap_unordered")


class RemoteContext:
    """A task and the submitter's trace context as W3C headers; picklable if the task is.

    The headers are read once per unpickled wrapper: a ``Pool.map`` chunk calls the same one
    for each of its items.
    """

    __slots__ = ("carrier", "context", "task")

    def __init__(self, task: Callable[..., Any], carrier: Mapping[str, str]) -> None:
        self.task = task
        self.carrier = carrier
        self.context: Context | None = None

    def __reduce__(self) -> tuple[type[RemoteContext], tuple[Any, ...]]:
        return (RemoteContext, (self.task, self.carrier))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        context = self.context
        if context is None:
            context = self.context = _extract(self.carrier)
        token = attach(context) if context is not None else None
        try:
            return self.task(*args, **kwargs)
        finally:
            if token is not None:
                detach(token)

    def __repr__(self) -> str:
        return f"RemoteContext({self.task!r})"


@guard("processes: extract the submitter's context")
def _extract(carrier: Mapping[str, str]) -> Context:
    return _BAGGAGE.extract(carrier, _TRACE_CONTEXT.extract(carrier))


# The headers of the last context injected, for the next submit in the same span: a loop of
# submits formats them once. Replaced as a whole, so a thread reads one consistent triple.
_last: tuple[object, object, dict[str, str]] = (None, None, {})


def _carrier() -> dict[str, str] | None:
    """The current context as W3C headers, or None outside a span (never to be changed: it
    is shared by every task submitted in the same span with the same baggage)."""
    global _last
    span = get_current_span()
    if not span.get_span_context().is_valid:
        return None
    entries = get_all()
    last = _last
    if last[0] is span and last[1] is entries:
        return last[2]
    carrier: dict[str, str] = {}
    _TRACE_CONTEXT.inject(carrier)
    _BAGGAGE.inject(carrier)
    _last = (span, entries, carrier)
    return carrier


class ProcessesInstrumentor(Instrumentor):
    """Tasks submitted to other processes inside a span run as its children there."""

    def __init__(self) -> None:
        super().__init__()
        self.replacements = Replacements()
        self.uninstrumented = False

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        from telemetry_run._import_hooks import register_post_import_hook

        hooks: tuple[tuple[Callable[[ModuleType], None], str], ...] = (
            (self._patch_process, "multiprocessing.process"),
            (self._patch_pool, "multiprocessing.pool"),
            (self._patch_executor, "concurrent.futures.process"),
        )
        for hook, module in hooks:
            register_post_import_hook(guard(f"processes: patch {module}")(hook), module)

    def _uninstrument(self) -> None:
        self.uninstrumented = True
        self.replacements.restore()

    def _wrap(self, task: Any) -> Any:
        """``task`` with the current context, when a span is current and we are enabled."""
        if not self.enabled() or not callable(task) or isinstance(task, RemoteContext):
            return task
        with guard("processes: inject the context"):
            carrier = _carrier()
            if carrier is not None:
                return RemoteContext(task, carrier)
        return task

    # Each hook may run inside _instrument (the module already imported), before ``active``.

    def _patch_process(self, module: ModuleType) -> None:
        if self.uninstrumented:
            return

        def make(original: Callable[[Any], None]) -> Callable[[Any], None]:
            def start(process: Any) -> None:
                target = getattr(process, "_target", None)
                if target is not None:
                    process._target = self._wrap(target)
                original(process)

            return start

        self.replacements.replace(module.BaseProcess, "start", make)

    def _patch_pool(self, module: ModuleType) -> None:
        if self.uninstrumented:
            return
        for name in (*_POOL_METHODS, *_POOL_ITERATORS):
            self.replacements.replace(module.Pool, name, self._task_first)

    def _patch_executor(self, module: ModuleType) -> None:
        if not self.uninstrumented:
            self.replacements.replace(module.ProcessPoolExecutor, "submit", self._task_first)

    def _task_first(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """A method taking the task first (``submit(fn, ...)``, ``map(func, iterable)``)."""

        def method(owner: Any, task: Any, /, *args: Any, **kwargs: Any) -> Any:
            return original(owner, self._wrap(task), *args, **kwargs)

        return method
