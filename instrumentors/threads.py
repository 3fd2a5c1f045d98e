"""Threads and thread pools run their work in the context of the code that started or submitted it.

Without this, a span started in a ``threading.Thread``, a ``ThreadPoolExecutor`` task or a
``loop.run_in_executor`` call has no parent: each thread starts with an empty
``contextvars`` context. ``Thread.start`` and ``ThreadPoolExecutor.submit`` take a copy of the
caller's whole context (``contextvars.copy_context()``: a constant-time snapshot, the
application's own variables included) and run the work inside it. The context is carried, not
the span, so a task that outlives the span that submitted it is still its correct child.

``Executor.map`` and ``loop.run_in_executor`` go through ``submit``; ``asyncio.to_thread``
and asyncio tasks copy the context themselves.

``threading`` is imported before the application runs, so this module is loaded at start-up:
it imports nothing beyond what is already loaded, and patches with plain functions (see
``_replace``). The pool is patched when ``concurrent.futures.thread`` is imported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import copy_context
from functools import partial
from typing import TYPE_CHECKING, Any

from telemetry_run.instrumentors._replace import Replacements
from telemetry_run.instrumentors.base import Instrumentor, guard

if TYPE_CHECKING:
    from types import ModuleType

    from telemetry_run.config import Config
    from telemetry_run.sdk.trace.api import TracerProvider

__all__ = ["ThreadsInstrumentor"]


class ThreadsInstrumentor(Instrumentor):
    """``threading.Thread.start`` and ``ThreadPoolExecutor.submit`` carry the caller's context.

    The gate is ``active``, not ``enabled()``: inside ``suppress_instrumentation()`` the context
    is carried too, and with it the suppression.
    """

    def __init__(self) -> None:
        super().__init__()
        self.replacements = Replacements()
        self.uninstrumented = False

    def _instrument(self, tracer_provider: TracerProvider, config: Config) -> None:
        self.replacements.replace(threading.Thread, "start", self._start)
        from telemetry_run._import_hooks import register_post_import_hook

        patch_pool = guard("threads: ThreadPoolExecutor.submit")(self._patch_pool)
        register_post_import_hook(patch_pool, "concurrent.futures.thread")

    def _uninstrument(self) -> None:
        self.uninstrumented = True
        self.replacements.restore()

    def _patch_pool(self, module: ModuleType) -> None:
        # May run inside _instrument (the pool already imported), before ``active`` is set.
        if not self.uninstrumented:
            self.replacements.replace(module.ThreadPoolExecutor, "submit", self._submit)

    def _start(self, original: Callable[[threading.Thread], None]) -> Callable[..., None]:
        def start(thread: threading.Thread) -> None:
            # The instance attribute shadows the class's run (a subclass's own run included),
            # and Thread._bootstrap_inner calls self.run().
            if self.active:
                thread.run = partial(copy_context().run, thread.run)  # type: ignore[method-assign]
            original(thread)

        return start

    def _submit(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def submit(executor: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            if self.active:
                # Context.run is the task: no wrapper object, no frame of ours in the worker.
                return original(executor, copy_context().run, fn, *args, **kwargs)
            return original(executor, fn, *args, **kwargs)

        return submit
