"""Pre-fork servers and reloaders under the launcher, as users run them, with no code change.

Each scenario starts a real server under ``telemetry-run`` on 127.0.0.1, sends requests to an app
that makes one span per request through ``telemetry_run.trace``, stops the server with SIGTERM
and then checks what users of the peers miss (REFERENCE.md section 5, items 1-4 and 8):

- every request was answered, and every span the app made was exported exactly once, by the
  process that handled the request, the last ones (sent just before SIGTERM) included;
- the bootstrap ran once per process: a forked worker inherits its parent's, a new interpreter
  (spawned worker, reloader child) runs its own, and nobody runs it twice;
- nothing was reported as undelivered, and nothing of ours failed.

The spans go through a test exporter plugin (``jsonl``, installed as a fake distribution) that
appends one JSON line per span, with the exporting process's pid, to a file every process
shares. A server package that is not installed skips its scenarios with the reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import launched, script
from tests.integration.conftest import JSONL_PLUGIN, PYTHON, FakeDistribution, clean_env

pytestmark = pytest.mark.timeout(180)

SPAN_NAME = "handle /req"
START_TIMEOUT = 60.0  # a cold start on a busy CI box (Django's checks, uWSGI, spawn)
STOP_TIMEOUT = 30.0  # the exit bound (5 s) per process layer, with room to spare
SCHEDULE_DELAY_MS = 500  # short: exported while running, yet the last ones wait for the exit

# -- the apps --------------------------------------------------------------------------------

# Every app answers /ping (no span: readiness polling) and /req/<id>?delay=s with one span
# carrying the request id and the pid, and a body telling which process handled it.
COMMON = """
import os
import time

from telemetry_run import trace
from telemetry_run.sdk import forking

tracer = trace.get_tracer("test-app")


def handle(rid, delay):
    # Whether the SDK was set up for this very process before the request's span: a fork
    # repaired by a fork hook (Python's, or uWSGI's post-fork hook), or a new interpreter.
    ready = forking.repaired_in() == os.getpid()
    # The span ends before the response is sent, as a server span would.
    with tracer.start_as_current_span(
        "handle /req", attributes={"request.id": rid, "app.pid": os.getpid()}
    ):
        time.sleep(delay)
    return {"id": rid, "pid": os.getpid(), "ppid": os.getppid(), "ready": ready}


def delay_of(query):
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "delay" and value:
            return float(value)
    return 0.0
"""

WSGI_APP = """
import json
import os

from common import delay_of, handle


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/req/"):
        body = handle(path[len("/req/"):], delay_of(environ.get("QUERY_STRING", "")))
    else:
        body = {"pid": os.getpid()}
    data = json.dumps(body).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]
"""

ASGI_APP = """
import json
import os

from common import delay_of, handle


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path.startswith("/req/"):
        # Blocking on purpose: a busy worker leaves the next connections to the other one.
        body = handle(path[len("/req/"):], delay_of(scope["query_string"].decode()))
    else:
        body = {"pid": os.getpid()}
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json")],
    })
    await send({"type": "http.response.body", "body": data})
"""

FLASK_APP = """
import os

from flask import Flask, request

from common import delay_of, handle

app = Flask(__name__)


@app.route("/req/<rid>")
def req(rid):
    return handle(rid, delay_of(request.query_string.decode()))


@app.route("/ping")
def ping():
    return {"pid": os.getpid()}
"""

# A one-file Django project: settings, URLs and views in one module.
DJANGO_APP = """
import os

from django.http import JsonResponse
from django.urls import path

from common import delay_of, handle

SECRET_KEY = "not-secret-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = __name__
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True


def req(request, rid):
    return JsonResponse(handle(rid, delay_of(request.META.get("QUERY_STRING", ""))))


def ping(request):
    return JsonResponse({"pid": os.getpid()})


urlpatterns = [path("req/<str:rid>", req), path("ping", ping)]
"""

DJANGO_MANAGE = """
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

# -- the harness -----------------------------------------------------------------------------


def requires(*modules: str) -> None:
    """Skip unless every server package is importable (pip install -e '.[test,servers]'); in CI
    (CI=true) a missing server fails: the README promises support for each of them."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            if os.environ.get("CI", "").lower() in ("true", "1"):
                pytest.fail(f"CI must run every server's tests: {module} is not installed")
            pytest.skip(f"{module} is not installed (pip install -e '.[test,servers]')")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


@dataclass
class Run:
    """One server run: what the clients saw, what was exported, who bootstrapped."""

    pid: int  # the launched process (the master, the reloader's parent)
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    spans: list[dict[str, Any]] = field(default_factory=list)
    bootstraps: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    log: str = ""

    @property
    def handlers(self) -> set[int]:
        """The pids that answered requests."""
        return {r["pid"] for r in self.responses.values()}

    @property
    def bootstrap_pids(self) -> list[int]:
        return [b["pid"] for b in self.bootstraps]


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def get(self, path: str, timeout: float = 15.0) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        request = urllib.request.Request(url, headers={"Connection": "close"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            assert response.status == 200
            body: dict[str, Any] = json.loads(response.read())
            return body

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.get("/ping", timeout=2.0)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        pytest.fail(f"the server did not answer within {START_TIMEOUT} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class Scenario:
    """How to start one server: the command for a port, and the app files it needs."""

    command: Callable[[int], Sequence[str]]
    files: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    cwd_app: bool = False  # run from the app folder (manage.py, flask's --app lookup)
    # uWSGI skips every exit hook of a worker it kills while that worker is still closing a
    # request (a few ms after the client has the response): SIGTERM after it has settled.
    settle: float = 0.0


def run_server(
    tmp_path: Path, plugins_dir: FakeDistribution, scenario: Scenario, *, exit_only: bool = False
) -> Run:
    """Start, serve two rounds of requests, SIGTERM the launched process, collect the files.

    ``exit_only`` makes the schedule delay longer than the test: every span then has to leave
    through the exit path (the worker's exit, the reloader child's SIGTERM).
    """
    plugins_dir.add("jsonl_plugin", JSONL_PLUGIN)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "common.py").write_text(textwrap.dedent(COMMON))
    for name, source in scenario.files.items():
        (app_dir / name).write_text(textwrap.dedent(source))
    spans_path = tmp_path / "spans.jsonl"
    boots_path = tmp_path / "bootstraps.jsonl"
    env = clean_env(
        PYTHONPATH=os.pathsep.join([str(plugins_dir.root), str(app_dir)]),
        OTEL_TRACES_EXPORTER="jsonl",
        OTEL_BSP_SCHEDULE_DELAY=str(3_600_000 if exit_only else SCHEDULE_DELAY_MS),
        TEST_JSONL_SPANS=str(spans_path),
        TEST_JSONL_BOOTSTRAPS=str(boots_path),
        **scenario.env,
    )
    port = free_port()
    log_path = tmp_path / "server.log"
    cwd = app_dir if scenario.cwd_app else tmp_path
    command = scenario.command(port)
    with launched(command, env=env, cwd=cwd, log_path=log_path, stop_timeout=0) as proc:
        server = Server(proc, port, log_path)
        run = Run(proc.pid)
        server.wait_ready()
        # Round 1, concurrent and a little slow, so that every worker gets some: exported
        # while the server runs (the batch worker thread works in every worker process).
        send(server, run, [f"r1-{i}" for i in range(8)], delay=0.15, concurrency=4)
        if not exit_only:
            wait_for(lambda: len(read_jsonl(spans_path)) >= 8, 20.0, "round 1 exported", server)
        # Round 2 right before SIGTERM: these are still queued when the server is stopped.
        send(server, run, [f"r2-{i}" for i in range(6)], delay=0.05, concurrency=2)
        time.sleep(scenario.settle)
        proc.send_signal(signal.SIGTERM)
        try:
            run.returncode = proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not stop within {STOP_TIMEOUT} s of SIGTERM")
        # Workers and reloader children may outlive the launched process by a moment.
        wait_for(lambda: not server.group_alive(), STOP_TIMEOUT, "every process ended", server)
    run.log = server.log()
    run.spans = read_jsonl(spans_path)
    run.bootstraps = read_jsonl(boots_path)
    return run


def send(server: Server, run: Run, ids: Sequence[str], *, delay: float, concurrency: int) -> None:
    with ThreadPoolExecutor(concurrency) as pool:
        bodies = list(pool.map(lambda rid: server.get(f"/req/{rid}?delay={delay}"), ids))
    for rid, body in zip(ids, bodies, strict=True):
        assert body["id"] == rid, body
        run.responses[rid] = body


def wait_for(done: Callable[[], bool], timeout: float, what: str, server: Server) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {what}\n{server.log()}")
        time.sleep(0.05)


def assert_exported_exactly_once_by_the_handler(run: Run) -> None:
    """Every request's span exported once, by the pid that answered it; nothing else."""
    app_spans = [s for s in run.spans if s["name"] == SPAN_NAME]
    counts = Counter(s["attributes"]["request.id"] for s in app_spans)
    missing = sorted(set(run.responses) - set(counts))
    duplicated = sorted(rid for rid, n in counts.items() if n > 1)
    unexpected = sorted(set(counts) - set(run.responses))
    assert not missing and not duplicated and not unexpected, (
        f"missing={missing} duplicated={duplicated} unexpected={unexpected}\n{run.log}"
    )
    for span in app_spans:
        handler = run.responses[span["attributes"]["request.id"]]["pid"]
        assert span["attributes"]["app.pid"] == handler  # made where the request was handled
        assert span["pid"] == handler, f"span exported by {span['pid']}, not by {handler}"
    # Everything was delivered (no undelivered-spans line) and nothing of ours failed.
    assert "telemetry-run: spans produced" not in run.log, run.log
    assert "bootstrap failed" not in run.log, run.log
    assert "Traceback" not in run.log, run.log
    # Set up before any span: uWSGI's C forks through its post-fork hook, not by the batch
    # processor's own last-resort check.
    assert all(r["ready"] for r in run.responses.values()), run.responses


def assert_bootstrapped_once_each(run: Run) -> None:
    pids = run.bootstrap_pids
    assert len(pids) == len(set(pids)), f"a process bootstrapped twice: {run.bootstraps}"
    assert run.pid in pids, run.bootstraps


def assert_forked_workers(run: Run, workers: int) -> None:
    """A pre-fork server: the master bootstrapped once, its forked workers inherited it."""
    assert len(run.handlers) == workers, run.responses
    assert {r["ppid"] for r in run.responses.values()} == {run.pid}
    assert run.bootstrap_pids == [run.pid], run.bootstraps


def assert_reloader(run: Run) -> None:
    """A reloader: the parent and its one child each bootstrapped once; the child served.

    Other Python helpers may bootstrap too (multiprocessing's resource tracker under uvicorn),
    once each, and export nothing.
    """
    assert_bootstrapped_once_each(run)
    assert len(run.handlers) == 1, run.responses
    (child,) = run.handlers
    assert child != run.pid
    assert {r["ppid"] for r in run.responses.values()} == {run.pid}
    assert child in run.bootstrap_pids, run.bootstraps


# -- the servers -------------------------------------------------------------------------------


def gunicorn_command(
    port: int, app: str, *, preload: bool, options: Sequence[str] = ()
) -> list[str]:
    """``gunicorn`` with two sync workers on 127.0.0.1 (shared with the metrics tests)."""
    requires("gunicorn")
    return [
        script("gunicorn"),
        *options,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--worker-class",
        "sync",
        "--graceful-timeout",
        "10",
        *(["--preload"] if preload else []),
        app,
    ]


def uwsgi_command(port: int, app: str, *, lazy_apps: bool, threads: bool = False) -> list[str]:
    """uWSGI with a master and two processes on 127.0.0.1 (shared with the metrics tests)."""
    requires("uwsgidecorators")  # ships with the uwsgi distribution
    return [
        script("uwsgi"),
        "--http-socket",
        f"127.0.0.1:{port}",
        "--master",
        "--processes",
        "2",
        "--module",
        app,
        "--need-app",
        "--die-on-term",  # uWSGI 2.0 reloads on SIGTERM without it
        "--worker-reload-mercy",
        "10",
        "--virtualenv",  # the embedded interpreter finds this venv's packages (ours)
        sys.prefix,
        "--disable-logging",
        *(["--lazy-apps"] if lazy_apps else []),
        *(["--enable-threads"] if threads else []),
    ]


def gunicorn(preload: bool) -> Scenario:
    requires("gunicorn")
    return Scenario(
        lambda port: gunicorn_command(port, "wsgi_app:application", preload=preload),
        {"wsgi_app.py": WSGI_APP},
    )


def uwsgi(lazy_apps: bool, threads: bool) -> Scenario:
    requires("uwsgidecorators")
    return Scenario(
        lambda port: uwsgi_command(
            port, "wsgi_app:application", lazy_apps=lazy_apps, threads=threads
        ),
        {"wsgi_app.py": WSGI_APP},
        settle=0.2,
    )


def uvicorn(*options: str) -> Scenario:
    requires("uvicorn")
    command = script("uvicorn")
    return Scenario(
        lambda port: [command, "asgi_app:app", "--host", "127.0.0.1", f"--port={port}", *options],
        {"asgi_app.py": ASGI_APP},
        cwd_app=True,  # --reload watches the working directory
    )


def flask(*options: str) -> Scenario:
    requires("flask")
    command = script("flask")
    return Scenario(
        lambda port: [command, "--app", "flask_app:app", *options, "--port", str(port)],
        {"flask_app.py": FLASK_APP},
        env={"FLASK_RUN_HOST": "127.0.0.1"},
        cwd_app=True,
    )


def django(how: str, reload: bool) -> Scenario:
    requires("django")
    if how == "django-admin":
        base = [script("django-admin"), "runserver", "--settings", "django_app"]
    else:
        base = [PYTHON, "manage.py", "runserver"]
    return Scenario(
        lambda port: [*base, f"127.0.0.1:{port}", *([] if reload else ["--noreload"])],
        {"django_app.py": DJANGO_APP, "manage.py": DJANGO_MANAGE},
        cwd_app=True,
    )


# -- gunicorn ----------------------------------------------------------------------------------


@pytest.mark.parametrize("preload", [True, False], ids=["preload", "no-preload"])
def test_gunicorn_two_sync_workers(
    tmp_path: Path, plugins_dir: FakeDistribution, preload: bool
) -> None:
    run = run_server(tmp_path, plugins_dir, gunicorn(preload))
    assert run.returncode == 0, run.log  # gunicorn's master exits 0 on SIGTERM
    assert_exported_exactly_once_by_the_handler(run)
    assert_forked_workers(run, workers=2)


# -- uWSGI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("lazy_apps", [False, True], ids=["preload", "lazy-apps"])
@pytest.mark.parametrize("threads", [True, False], ids=["enable-threads", "no-enable-threads"])
def test_uwsgi_two_workers(
    tmp_path: Path, plugins_dir: FakeDistribution, lazy_apps: bool, threads: bool
) -> None:
    run = run_server(tmp_path, plugins_dir, uwsgi(lazy_apps, threads))
    assert run.returncode == 0, run.log  # --die-on-term: the master exits 0 on SIGTERM
    assert_exported_exactly_once_by_the_handler(run)
    # Even with --lazy-apps uWSGI initialises Python in the master, which runs the bootstrap:
    # the workers, forked in C, are repaired through uWSGI's post-fork hook, not bootstrapped.
    assert_forked_workers(run, workers=2)
    # uWSGI 2.0.31 runs Python threads without --enable-threads too: no warning then. Older
    # releases disable them; the warning (printed once) is covered by the unit tests.
    from telemetry_run._uwsgi import FORK_HOOKS_WARNING, THREADS_WARNING

    assert run.log.count(THREADS_WARNING) == 0, run.log
    assert FORK_HOOKS_WARNING not in run.log  # the launcher set them


# A thread of the master that runs Python while uWSGI forks: ours export and collect in bursts;
# this one never pauses, so every fork meets it holding the GIL.
BUSY_MASTER_THREAD = """

import threading


def _busy():
    while True:
        sum(range(1000))


threading.Thread(target=_busy, daemon=True).start()
"""


def test_uwsgi_workers_forked_while_a_master_thread_runs_python_serve(
    tmp_path: Path, plugins_dir: FakeDistribution
) -> None:
    """Forked in C with another thread holding the GIL, a worker would wait for it forever: the
    launcher has uWSGI take the GIL around its forks (UWSGI_PY_CALL_UWSGI_FORK_HOOKS)."""
    scenario = uwsgi(lazy_apps=False, threads=True)
    scenario.files["wsgi_app.py"] = WSGI_APP + BUSY_MASTER_THREAD
    run = run_server(tmp_path, plugins_dir, scenario)
    assert run.returncode == 0, run.log
    assert_exported_exactly_once_by_the_handler(run)
    assert_forked_workers(run, workers=2)


# -- uvicorn -----------------------------------------------------------------------------------


def test_uvicorn_two_workers(tmp_path: Path, plugins_dir: FakeDistribution) -> None:
    run = run_server(tmp_path, plugins_dir, uvicorn("--workers", "2"))
    assert run.returncode == 0, run.log  # uvicorn's supervisor exits 0 on SIGTERM
    assert_exported_exactly_once_by_the_handler(run)
    # Spawned workers are new interpreters: each bootstraps itself, once.
    assert_bootstrapped_once_each(run)
    assert run.pid not in run.handlers
    assert {r["ppid"] for r in run.responses.values()} == {run.pid}
    assert run.handlers <= set(run.bootstrap_pids), run.bootstraps


def test_uvicorn_reload(tmp_path: Path, plugins_dir: FakeDistribution) -> None:
    run = run_server(tmp_path, plugins_dir, uvicorn("--reload", "--reload-dir", "."))
    assert_exported_exactly_once_by_the_handler(run)
    assert_reloader(run)


# -- Flask (werkzeug's reloader) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [("run", "--reload"), ("--debug", "run")], ids=["run-reload", "debug-run"]
)
def test_flask_reloader(
    tmp_path: Path, plugins_dir: FakeDistribution, options: tuple[str, ...]
) -> None:
    run = run_server(tmp_path, plugins_dir, flask(*options))
    assert_exported_exactly_once_by_the_handler(run)
    assert_reloader(run)
    assert run.returncode == 0  # the parent ends as werkzeug's own SIGTERM handler ends it


# -- Django (its autoreloader) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "reload"),
    [("django-admin", True), ("manage.py", True), ("manage.py", False)],
    ids=["django-admin-autoreload", "manage-py-autoreload", "manage-py-noreload"],
)
def test_django_runserver(
    tmp_path: Path, plugins_dir: FakeDistribution, how: str, reload: bool
) -> None:
    run = run_server(tmp_path, plugins_dir, django(how, reload))
    assert_exported_exactly_once_by_the_handler(run)
    if reload:
        assert_reloader(run)
        assert run.returncode == 0
    else:
        assert run.handlers == {run.pid}
        assert run.bootstrap_pids == [run.pid]


# -- the exit path alone -------------------------------------------------------------------------

EXIT_PATHS: dict[str, Callable[[], Scenario]] = {
    "gunicorn-preload": lambda: gunicorn(preload=True),
    "uwsgi-preload": lambda: uwsgi(lazy_apps=False, threads=True),
    "uwsgi-lazy-apps": lambda: uwsgi(lazy_apps=True, threads=True),
    "uvicorn-workers": lambda: uvicorn("--workers", "2"),
    "uvicorn-reload": lambda: uvicorn("--reload", "--reload-dir", "."),
    "flask-reload": lambda: flask("run", "--reload"),
    "django-autoreload": lambda: django("manage.py", reload=True),
}


@pytest.mark.parametrize("server", list(EXIT_PATHS))
def test_every_span_leaves_through_the_exit_path(
    tmp_path: Path, plugins_dir: FakeDistribution, server: str
) -> None:
    """With a schedule delay longer than the test, nothing is exported before SIGTERM: each
    worker's exit (or the reloader child's, told by its parent) must deliver them all."""
    run = run_server(tmp_path, plugins_dir, EXIT_PATHS[server](), exit_only=True)
    assert_exported_exactly_once_by_the_handler(run)
