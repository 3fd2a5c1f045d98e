"""``telemetry-run --view`` as users run it: a Flask app under the launcher sends its traces to
the viewer, and headless Chromium renders the page (the list, the waterfall, span details).

Chromium runs with ``--dump-dom``: it loads the page, runs its script (which fetches the JSON
API and builds the DOM), and prints the DOM as rendered, which the test parses. No DevTools
client is needed for that. The binary is Debian's ``chromium`` (``.ci/run`` installs it): the
browser test skips where it is missing, and fails instead in CI (``CI=true``).
"""

from __future__ import annotations

import contextlib
import html.parser
import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from telemetry_run.testing.otlp import free_port
from tests.integration.apps import served
from tests.integration.conftest import LAUNCHER, PYTHON, clean_env, launch

XSS = '<img src=x onerror="document.title=1">'

FLASK_APP = f"""
import sys

import flask
from telemetry_run import trace

app = flask.Flask(__name__)
tracer = trace.get_tracer("shop")


@app.route("/checkout")
def checkout():
    with tracer.start_as_current_span("price") as span:
        span.set_attribute("note", {XSS!r})
        with tracer.start_as_current_span("tax"):
            return "ok"


@app.route("/health")
def health():
    return "ok"


@app.route("/boom")
def boom():
    raise ValueError("card declined")


app.run(host="127.0.0.1", port=int(sys.argv[1]))
"""

WAIT_TIMEOUT = 30.0
REMOTE_TRACE = "0af7651916cd43dd8448eb211c80319c"  # a caller's trace, continued by the app
REMOTE_PARENT = "b7ad6b7169203331"


# -- reading the rendered page ----------------------------------------------------------------

_VOID = frozenset({"meta", "link", "input", "br", "img", "hr", "source", "wbr"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def find_all(self, match: Callable[[Node], bool]) -> list[Node]:
        found = [self] if match(self) else []
        for child in self.children:
            if isinstance(child, Node):
                found += child.find_all(match)
        return found

    def by_class(self, name: str) -> list[Node]:
        return self.find_all(lambda node: name in node.classes())

    def by_id(self, name: str) -> Node:
        (node,) = self.find_all(lambda node: node.attrs.get("id") == name)
        return node


class _TreeBuilder(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self._open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self._open[-1].children.append(node)
        if tag not in _VOID:
            self._open.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, 0, -1):
            if self._open[depth].tag == tag:
                del self._open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._open[-1].children.append(data)


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail("CI must run the viewer's browser test: no chromium binary on PATH")
    pytest.skip("the chromium binary is not on PATH (apt-get install chromium)")


def rendered(chromium: str, url: str, profile: Path) -> Node:
    """The page's DOM once its script has rendered, as headless Chromium prints it."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",  # as root (CI containers) Chromium refuses to start sandboxed
            "--disable-gpu",
            "--disable-dev-shm-usage",  # containers' small /dev/shm crashes its renderer
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",  # virtual time: the fetches complete, no real wait
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    builder = _TreeBuilder()
    builder.feed(result.stdout)
    (body,) = builder.root.find_all(lambda node: node.tag == "body")
    assert body.attrs.get("data-state") == "ready", result.stdout  # the script ran to the end
    return body


# -- the viewer under the launcher ------------------------------------------------------------


@dataclass
class ViewerPorts:
    web: int = field(default_factory=free_port)
    grpc: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)

    def options(self) -> list[str]:
        return [
            "--view",
            f"--view-port={self.web}",
            f"--view-grpc-port={self.grpc}",
            f"--view-http-port={self.http}",
        ]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web}{path}"

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(self.url(path), timeout=10) as response:
            return json.load(response)


def wait_for_traces(ports: ViewerPorts, ready: Callable[[list[dict[str, Any]]], bool]) -> Any:
    """The trace list once ``ready`` says it is complete (the app exports every 100 ms)."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    traces: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            traces = ports.api("/api/traces")["traces"]
            if ready(traces):
                return traces
        time.sleep(0.2)
    pytest.fail(f"the viewer did not get the traces within {WAIT_TIMEOUT} s: {traces}")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[ViewerPorts, dict[str, str]]]:
    """``telemetry-run --view -- python app.py PORT``; yields the ports and the trace ids (by
    root span name) of a checkout (3 spans), a failed request (1 span) and a health check
    continuing a caller's trace (1 span, its parent in the caller)."""
    pytest.importorskip("flask")
    (tmp_path / "app.py").write_text(textwrap.dedent(FLASK_APP))
    ports = ViewerPorts()
    app_port = free_port()
    env = clean_env(OTEL_SERVICE_NAME="shop", OTEL_BSP_SCHEDULE_DELAY="100")
    command = [*ports.options(), "--", PYTHON, "app.py", str(app_port)]
    with served(command, port=app_port, env=env, cwd=tmp_path):
        with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/checkout", timeout=10) as r:
            assert r.read() == b"ok"
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(f"http://127.0.0.1:{app_port}/boom", timeout=10)
        assert failed.value.code == 500
        failed.value.close()
        traceparent = f"00-{REMOTE_TRACE}-{REMOTE_PARENT}-01"
        health = urllib.request.Request(
            f"http://127.0.0.1:{app_port}/health", headers={"traceparent": traceparent}
        )
        with urllib.request.urlopen(health, timeout=10) as r:
            assert r.read() == b"ok"

        traces = wait_for_traces(
            ports, lambda traces: sorted(t["span_count"] for t in traces) == [1, 1, 3]
        )
        ids = {t["root_name"]: t["trace_id"] for t in traces}
        yield ports, ids


def test_the_page_lists_the_apps_traces_with_errors_marked(
    shop: tuple[ViewerPorts, dict[str, str]], tmp_path: Path
) -> None:
    chromium = chromium_binary()
    ports, ids = shop
    page = rendered(chromium, ports.url("/"), tmp_path / "profile")
    rows = {row.attrs["data-trace-id"]: row for row in page.by_class("trace")}
    assert set(rows) == set(ids.values())
    checkout, boom = rows[ids["GET /checkout"]], rows[ids["GET /boom"]]
    assert checkout.by_class("span-count")[0].text() == "3"
    assert checkout.by_class("service")[0].text() == "shop"
    assert "error" not in checkout.classes() and checkout.by_class("errors")[0].text() == ""
    assert boom.by_class("span-count")[0].text() == "1"
    assert "error" in boom.classes() and boom.by_class("errors")[0].text() == "1 error"

    only_errors = rendered(chromium, ports.url("/?errors=1"), tmp_path / "profile")
    assert [row.attrs["data-trace-id"] for row in only_errors.by_class("trace")] == [
        ids["GET /boom"]
    ]
    other_service = rendered(chromium, ports.url("/?service=billing"), tmp_path / "profile")
    assert other_service.by_class("trace") == []


def test_the_waterfall_shows_the_spans_nested_and_their_details_as_text(
    shop: tuple[ViewerPorts, dict[str, str]], tmp_path: Path
) -> None:
    chromium = chromium_binary()
    ports, ids = shop
    trace = ports.api(f"/api/traces/{ids['GET /checkout']}")
    price = next(span for span in trace["spans"] if span["name"] == "price")
    url = ports.url(f"/?trace={ids['GET /checkout']}&span={price['span_id']}")
    page = rendered(chromium, url, tmp_path / "profile")

    rows = page.by_class("span-row")
    names = [row.by_class("name")[0].text() for row in rows]
    assert names == ["GET /checkout", "price", "tax"]
    assert [row.attrs["data-depth"] for row in rows] == ["0", "1", "2"]
    ids_in_order = [row.attrs["data-span-id"] for row in rows]
    assert [row.attrs["data-parent-span-id"] for row in rows] == ["", *ids_in_order[:2]]
    assert not any("error" in row.classes() for row in rows)
    assert len(page.by_class("span-bar")) == 3

    details = page.by_id("span-details")
    assert details.attrs["data-span-id"] == price["span_id"]
    assert XSS in details.text()  # the attribute value, shown as text...
    assert page.find_all(lambda node: node.tag == "img") == []  # ...never parsed as markup
    assert "service.name" in details.text() and "shop" in details.text()  # the resource


def test_an_error_is_marked_in_the_waterfall_with_its_exception(
    shop: tuple[ViewerPorts, dict[str, str]], tmp_path: Path
) -> None:
    chromium = chromium_binary()
    ports, ids = shop
    page = rendered(chromium, ports.url(f"/?trace={ids['GET /boom']}"), tmp_path / "profile")
    (row,) = page.by_class("span-row")
    assert "error" in row.classes() and row.attrs["data-status"] == "error"
    assert "error" in row.by_class("error-mark")[0].text()
    details = page.by_id("span-details")
    (exception,) = details.by_class("exception")
    assert "ValueError" in exception.text() and "card declined" in exception.text()
    assert "Traceback" in exception.text()  # the stack trace, in its own block


def test_a_span_whose_parent_is_in_another_process_is_shown_under_a_remote_marker(
    shop: tuple[ViewerPorts, dict[str, str]], tmp_path: Path
) -> None:
    chromium = chromium_binary()
    ports, ids = shop
    assert ids["GET /health"] == REMOTE_TRACE
    page = rendered(chromium, ports.url(f"/?trace={REMOTE_TRACE}"), tmp_path / "profile")
    (row,) = page.by_class("span-row")
    assert row.attrs["data-depth"] == "0"
    assert row.attrs["data-parent-span-id"] == REMOTE_PARENT
    assert row.by_class("remote")[0].text() == "↳ remote parent"
    assert "not in this trace" in page.by_id("span-details").text()


# -- the lifecycle (no browser) ---------------------------------------------------------------

SCRIPT = """
import sys
import time

from telemetry_run import trace

with trace.get_tracer("script").start_as_current_span("batch job"):
    pass
if sys.argv[1:] == ["killed"]:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1:] == ["wait"]:
    try:
        time.sleep(60)  # bounded: the test stops it long before
    except KeyboardInterrupt:
        print("the app got Ctrl-C", flush=True)
sys.exit(3)
"""


@contextlib.contextmanager
def viewing_job(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], ViewerPorts]]:
    """``telemetry-run --view -- python job.py ARGS`` in its own process group (a terminal's
    foreground job: Ctrl-C reaches the viewer and the app), killed at the end if still there."""
    (tmp_path / "job.py").write_text(SCRIPT)
    ports = ViewerPorts()
    with subprocess.Popen(
        [*LAUNCHER, *ports.options(), "--", PYTHON, "job.py", *args],
        cwd=tmp_path,
        env=clean_env(OTEL_SERVICE_NAME="job"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            yield proc, ports
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def read_until(proc: subprocess.Popen[str], text: str) -> str:
    """What the viewer printed up to the line holding ``text`` (bounded by the test timeout)."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if text in line:
            return "".join(lines)
    pytest.fail(f"the viewer ended without printing {text!r}:\n{''.join(lines)}")


def test_the_viewer_keeps_serving_after_the_command_exits_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    with viewing_job(tmp_path) as (proc, ports):
        output = read_until(proc, "the command exited")
        assert f"trace viewer at http://127.0.0.1:{ports.web}/" in output
        assert f"gRPC 127.0.0.1:{ports.grpc}" in output
        assert re.search(r"the command exited with code 3; .* until Ctrl-C", output), output
        # The script's exit flush reached the viewer before it exited, and the viewer stays.
        (trace,) = ports.api("/api/traces")["traces"]
        assert (trace["root_name"], trace["service"]) == ("batch job", "job")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 3  # the command's exit code


def test_ctrl_c_stops_the_app_first_and_the_viewer_at_the_second(tmp_path: Path) -> None:
    with viewing_job(tmp_path, "wait") as (proc, ports):
        read_until(proc, "trace viewer at")
        wait_for_traces(ports, lambda traces: len(traces) == 1)  # the app is running
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        output = read_until(proc, "the command exited")
        assert "the app got Ctrl-C" in output and "with code 3" in output
        assert ports.api("/api/traces")["traces"][0]["root_name"] == "batch job"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 3


def test_ctrl_c_pressed_again_while_the_viewer_stops_keeps_the_commands_exit_code(
    tmp_path: Path,
) -> None:
    with viewing_job(tmp_path) as (proc, _):
        read_until(proc, "the command exited")
        for _ in range(3):  # impatient presses: the later ones land while the servers stop
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.05)
        assert proc.wait(30) == 3
        assert proc.stdout is not None
        assert "Traceback" not in proc.stdout.read()


def test_a_command_killed_by_a_signal_exits_as_a_shell_reports_it(tmp_path: Path) -> None:
    with viewing_job(tmp_path, "killed") as (proc, _):
        output = read_until(proc, "the command exited")
        assert "with code 137" in output  # 128 + SIGKILL
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 137


def test_view_without_a_dash_is_still_a_program_name(tmp_path: Path) -> None:
    """``telemetry-run view`` runs a program named view (vim's), never the viewer."""
    program = tmp_path / "view"
    program.write_text("#!/bin/sh\necho the view program ran\n")
    program.chmod(0o755)
    env = clean_env(PATH=f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    result = launch(["view"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the view program ran\n"
