"""Run every benchmark here and write their output, dated, to ``bench/RESULTS.md``.

The figures quoted about performance come from that file, and that file comes from one run of
this script: nothing in it is typed by hand. Each benchmark runs in its own process, one after
the other, with its output kept verbatim; the header says when, on what machine, at which
commit, with what command, and the load average before and after each benchmark, because on a
shared machine that is what moves the figures (compare the ratios within one benchmark's run,
not figures across runs).

    python bench/results.py                   # every benchmark, full size (30 to 60 minutes)
    python bench/results.py --quick           # each with its own --quick (about 10 minutes)
    python bench/results.py --only header_parse,startup
    python bench/results.py --out /tmp/r.md   # anywhere else
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The benchmarks, in the order they run: cheap and in-process first, the long soak last.
BENCHMARKS = (
    "header_parse",
    "span_start_end",
    "sampled_out",
    "api_bridge",
    "metrics_record",
    "context_propagation",
    "otlp_export",
    "logs_export",
    "startup",
    "flask_request",
    "asgi_request",
    "http_clients",
    "redis_get",
    "db_execute",
    "exit_collector_down",
    "reliability_peers",
)
TIMEOUT = 3600.0  # one benchmark; a hang shows as a timeout in the file, the rest still run


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def run_one(name: str, quick: bool) -> tuple[str, str, float]:
    """The benchmark's command line, its output (stdout then stderr) and how long it took."""
    command = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    shown = f"python bench/{name}.py" + (" --quick" if quick else "")
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=TIMEOUT, cwd=HERE.parent
        )
        output = done.stdout + (f"\n[stderr]\n{done.stderr}" if done.stderr.strip() else "")
        if done.returncode:
            output += f"\n[exit code {done.returncode}]"
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout if isinstance(exc.stdout, str) else ""
        output = partial + f"\n[stopped after {TIMEOUT:.0f} s]"
    return shown, output.rstrip() + "\n", time.monotonic() - started


def render(sections: list[tuple[str, str, str, float, str, str]], argv: list[str]) -> str:
    """The whole file: the header, then one section per benchmark."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        "Written by `python bench/results.py"
        + "".join(f" {arg}" for arg in argv)
        + "`; do not edit by hand (bench/README.md says how to read each table).",
        "",
        f"- run: {now}, commit `{_git_commit()}`",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}",
        "",
    ]
    for name, shown, output, seconds, before, after in sections:
        lines += [
            f"## {name}",
            "",
            f"`{shown}`: {seconds:.0f} s; before: {before}; after: {after}",
            "",
            "```",
            output.rstrip(),
            "```",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to each benchmark")
    parser.add_argument("--only", help=f"a subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write")
    args = parser.parse_args()
    names = list(BENCHMARKS)
    if args.only:
        names = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = set(names) - set(BENCHMARKS)
        if unknown:
            parser.error(f"--only takes names from {','.join(BENCHMARKS)}")
    sections = []
    for name in names:
        before = _load()
        print(f"results: {name} ...", flush=True)
        shown, output, seconds = run_one(name, args.quick)
        sections.append((name, shown, output, seconds, before, _load()))
        # Written after each benchmark, so an interrupted run keeps what it measured.
        args.out.write_text(render(sections, sys.argv[1:]))
    print(f"results: wrote {args.out}")


if __name__ == "__main__":
    main()
