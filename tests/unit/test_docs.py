"""What docs/ quotes exists: links, launcher options, variables, the exit line's reasons.

The pages are prose; these checks catch the drift that makes prose wrong without anyone noticing
(an option renamed, a variable removed, a page moved).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from telemetry_run.sdk.diagnostics import DROP_REASONS
from tools import config_reference

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))


def _launcher_help(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "telemetry_run", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_docs_has_the_pages_the_readme_links() -> None:
    names = {page.name for page in PAGES}
    assert {"configuration.md", "collector.md", "operations.md", "plugins.md"} <= names
    readme = (ROOT / "README.md").read_text()
    for name in ("configuration.md", "collector.md", "operations.md", "plugins.md"):
        assert f"](docs/{name})" in readme, f"README.md does not link docs/{name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name} links {target}, which is not there"


def test_every_launcher_option_quoted_is_one_the_launcher_has() -> None:
    known = set(re.findall(r"--[a-z][a-z-]*", _launcher_help() + _launcher_help("--view")))
    for page in PAGES:
        for option in re.findall(r"telemetry-run((?: --[a-z][a-z-]*)+)", page.read_text()):
            for word in option.split():
                assert word in known, f"{page.name} quotes telemetry-run {word}"


def test_every_variable_named_is_one_telemetry_run_reads() -> None:
    registered = {v.name for v in config_reference._registry()}
    for page in PAGES:
        for name in re.findall(
            r"\b(?:OTEL|TELEMETRY_RUN)_[A-Z0-9_]*[A-Z0-9]\b(?![<*_])", page.read_text()
        ):
            assert name in registered, f"{page.name} names {name}, which nothing reads"


def test_the_playbook_explains_every_reason_the_exit_line_gives() -> None:
    playbook = (DOCS / "operations.md").read_text()
    for reason in DROP_REASONS:
        assert f"| `{reason}` |" in playbook


def test_the_playbook_quotes_what_the_doctor_says_of_a_dead_endpoint() -> None:
    playbook = (DOCS / "operations.md").read_text()
    quoted = re.search(r"Exporters:\n(.*?)\n\.\.\.\nVerdict", playbook, re.DOTALL)
    assert quoted, "operations.md no longer quotes the doctor's report"
    with socket.socket() as reserved:  # bound, never listening: connections to it are refused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://localhost:{port}",
        }
        done = subprocess.run(
            [sys.executable, "-m", "telemetry_run", "--doctor"],
            capture_output=True,
            text=True,
            timeout=60,
            env=environ,
            check=False,
        )
    assert done.returncode == 1
    report = done.stdout.replace(str(port), "4317").replace(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "default"
    )
    for line in quoted[1].splitlines():
        assert line in report.splitlines(), f"the doctor no longer prints: {line}"
    assert "Verdict: telemetry would NOT arrive:" in report
