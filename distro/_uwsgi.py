"""uWSGI: repair the SDK in the workers it forks in C, and get their last spans out.

uWSGI forks its workers with a C ``fork()``, so Python's ``os.register_at_fork`` callbacks do
not run there (opentelemetry-python#2266): a worker would keep the master's queue and locks and
have no export thread. The launcher sets ``UWSGI_PY_CALL_UWSGI_FORK_HOOKS`` (telemetry_run.cli),
with which uWSGI runs them and, above all, holds the GIL across the fork (without it, a worker
forked while a master thread held the GIL never runs Python); under ``import
telemetry_run.auto`` or an older uWSGI they still do not run. Under uWSGI we therefore also

- register ``forking.after_fork_in_child`` through uWSGI's own post-fork mechanism: the
  ``uwsgidecorators`` postfork chain (shared with the application's own ``@postfork``
  functions, ours first), or, without a master process (where ``uwsgidecorators`` refuses to
  load), ``uwsgi.post_fork_hook`` chained with the hook already there;
- chain our exit flush into ``uwsgi.atexit``, which uWSGI calls in each worker before the
  interpreter's teardown (and even where ``--skip-atexit-teardown`` skips Python's ``atexit``).
  uWSGI skips every exit hook, ours included, of a worker it kills in the middle of a request
  (``--die-on-term`` stops workers brutally): an idle worker delivers its last spans, a busy
  one loses those of its last schedule delay;
- warn once when uWSGI runs without its fork hooks (``import telemetry_run.auto`` from an
  ini file: the launcher is not there to set them);
- warn once when Python threads are off (older uWSGI without ``--enable-threads``; 2.0.31
  enables them by default): the export thread then runs only while a request runs Python
  code, and at exit.

Under the launcher the bootstrap runs from sitecustomize while uWSGI initialises the
interpreter, before the ``uwsgi`` module exists. In such an embedded interpreter (empty
``sys.orig_argv``) the setup waits for the first import that finds the module: the master's
import of the application, or, with ``--lazy-apps``, each worker's (already forked: the repair
runs at once). A fork that still escapes every hook is repaired by the batch processor itself at
the worker's first span.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from telemetry_run.sdk import forking
from telemetry_run.sdk._log import logger

if TYPE_CHECKING:
    from telemetry_run.bootstrap import Bootstrapped

__all__ = [
    "FORK_HOOKS_WARNING",
    "THREADS_WARNING",
    "WaitForUwsgi",
    "setup_if_running",
    "threads_enabled",
]


THREADS_WARNING: Final = (
    "uWSGI runs with Python threads disabled: spans are exported only while a request runs and "
    "when a worker exits; add --enable-threads (or threads = N) to uWSGI's options"
)

FORK_HOOKS_WARNING: Final = (
    "uWSGI forks without py-call-uwsgi-fork-hooks: a worker forked while another thread of the "
    "master holds the GIL (an export thread, or one of the app's) never serves; add "
    "py-call-uwsgi-fork-hooks = true to uWSGI's options (telemetry-run sets it for you)"
)

FORK_HOOKS_OPTION: Final = "py-call-uwsgi-fork-hooks"  # UWSGI_PY_CALL_UWSGI_FORK_HOOKS

_set_up_in: int | None = None  # the pid that ran the setup (forked workers inherit it)


def setup_if_running(state: Bootstrapped) -> None:
    """Set up for uWSGI now if this is uWSGI, or at the first import once it can tell."""
    if _setup(state):
        return
    if not getattr(sys, "orig_argv", None):  # an embedded interpreter: maybe uWSGI, not yet
        sys.meta_path.insert(0, WaitForUwsgi(state))


class WaitForUwsgi:
    """A ``sys.meta_path`` finder that finds nothing: before each import it checks whether
    uWSGI has created its module, and sets up once it has.

    It stays in ``sys.meta_path`` afterwards as a no-op (one attribute read per import):
    removing itself while the import system iterates that list would skip the next finder.
    """

    def __init__(self, state: Bootstrapped) -> None:
        self._state = state
        self.done = False

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if self.done:
            return
        try:
            self.done = _setup(self._state)
        except Exception as exc:  # noqa: BLE001  # never fail the application's import
            self.done = True
            from telemetry_run._servers import report

            report("uWSGI setup", exc)


def running_uwsgi() -> ModuleType | None:
    """uWSGI's ``uwsgi`` module once uWSGI has filled it (it exists only inside uWSGI)."""
    module = sys.modules.get("uwsgi")
    return module if module is not None and hasattr(module, "opt") else None


def _setup(state: Bootstrapped) -> bool:
    """Hook into uWSGI once per process; False while this is not (yet) known to be uWSGI."""
    global _set_up_in
    uwsgi = running_uwsgi()
    if uwsgi is None:
        return False
    pid = os.getpid()
    if _set_up_in is not None:
        return True  # done in this process or in the master it was forked from
    _set_up_in = pid
    forking.after_fork_in_child()  # a --lazy-apps worker: forked before we could hook in
    _register_post_fork(uwsgi)
    if state.exit_hook is not None:
        _chain_atexit(uwsgi, state.exit_hook.flush)
    if _worker_id(uwsgi) <= 1:  # the master, or the first lazy worker: once
        if not threads_enabled(uwsgi):
            logger.warning("%s", THREADS_WARNING)
        elif FORK_HOOKS_OPTION not in getattr(uwsgi, "opt", {}):  # a value the user set: theirs
            logger.warning("%s", FORK_HOOKS_WARNING)
    return True


def _register_post_fork(uwsgi: Any) -> None:
    after_fork = forking.after_fork_in_child
    previous_hook = getattr(uwsgi, "post_fork_hook", None)
    previous_spooler = getattr(uwsgi, "spooler", None)
    uwsgidecorators: Any = None
    # Its first import replaces uwsgi.post_fork_hook with its chain: an application that
    # imports it after us must find our hook in that chain, not lose it. It raises when not
    # installed, and without a master process.
    with contextlib.suppress(Exception):
        uwsgidecorators = importlib.import_module("uwsgidecorators")
    chain = getattr(uwsgidecorators, "postfork_chain", None)
    if uwsgidecorators is None or not isinstance(chain, list):

        def post_fork_hook() -> None:
            after_fork()
            if previous_hook is not None:
                previous_hook()

        uwsgi.post_fork_hook = post_fork_hook
        return
    if previous_spooler is not None:
        uwsgi.spooler = previous_spooler  # importing uwsgidecorators set its own
    chain_hook = getattr(uwsgidecorators, "postfork_chain_hook", None)
    if previous_hook is not None and previous_hook is not chain_hook:
        chain.insert(0, previous_hook)  # a hook the application set before: kept
        uwsgi.post_fork_hook = chain_hook
    chain.insert(0, after_fork)  # first: the application's postfork functions may trace


def _chain_atexit(uwsgi: Any, flush: Callable[[], None]) -> None:
    previous = getattr(uwsgi, "atexit", None)

    def atexit() -> None:
        try:
            if previous is not None:
                previous()  # the application's last words may still make spans
        finally:
            flush()

    uwsgi.atexit = atexit


def threads_enabled(uwsgi: Any) -> bool:
    """Whether uWSGI runs Python threads (``uwsgi.has_threads``, else its options)."""
    has_threads = getattr(uwsgi, "has_threads", None)
    if has_threads is not None:
        return bool(has_threads)
    options = getattr(uwsgi, "opt", {})
    return bool(options.get("enable-threads")) or _as_int(options.get("threads")) > 0


def _worker_id(uwsgi: Any) -> int:
    try:
        return int(uwsgi.worker_id())
    except Exception:  # noqa: BLE001
        return 0


def _as_int(value: object) -> int:
    if isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return int(str(value))
    except ValueError:
        return 0
