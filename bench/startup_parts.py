"""Does each hand-written stand-in for a library pay for itself at start-up?

Every instrumented process runs the bootstrap, so a few pieces of libraries were written by hand
to keep their imports out of it. Each row times one such piece against the library, doing the
same work the start-up does with it (import + use), in a fresh process:

- ``dists``: the entry points of the ``telemetry_run`` group and four versions, read by
  ``telemetry_run._dists`` vs ``importlib.metadata``;
- ``records``: the record classes a start-up defines (the same names and fields, read from a
  real bootstrap), on ``telemetry_run.sdk._record`` vs ``@dataclass(frozen=True, slots=True)``;
- ``logging``: our logger configured and asked for a dropped debug line, with the configuration
  kept until ``logging`` is imported (``telemetry_run.sdk._log``), vs ``logging`` configured the
  same way (level, prefixed stderr handler, no propagation);
- ``versions``: the installed targets' versions against their supported ranges, by
  ``telemetry_run.instrumentation``'s release comparison vs ``packaging.specifiers``;
- ``endpoint``: the default OTLP endpoint checked, by ``telemetry_run._otlp``'s plain-URL path
  vs ``urllib.parse`` (which brings ``ipaddress``);
- ``import-hooks``: post-import hooks on the instrumented targets, by
  ``telemetry_run._import_hooks`` vs ``wrapt``'s.

Each child first imports, untimed, every module a default bootstrap imports (the prelude, read
from a real one), so a row shows what the library ADDS to our start-up, not what it costs
alone; then it times its row's work with ``perf_counter`` and prints it. Children run as a
regular install would: ``python -S`` with our package copied from the working tree and the
venv's site-packages on ``sys.path`` (``site`` itself is in the prelude), so an editable
install's finder (``pathlib``, ``urllib.parse``, ``re``...) hides no cost. Variants take turns
within each round, the order rotating; the first round is a warm-up (it also writes the
bytecode). The verdict keeps a stand-in when the library's median is higher by more than
``--threshold`` ms (default 1) and it was slower in at least 80 % of the rounds.

    python bench/startup_parts.py [--rounds N] [--quick] [-v] [--app flask]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import site
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import package_tree, versions

RUN_TIMEOUT = 60.0
TARGETS = ("flask", "django", "requests", "grpcio")  # distributions whose versions are checked
RANGES = {"flask": ">=2.2,<4", "django": ">=4.2,<6", "requests": ">=2.28,<3", "grpcio": ">=1.66"}
MODULES = ("flask", "django", "requests", "grpc")

# What a child does before its timed part: the start-up's own modules, then the row's setup.
CHILD = """
import sys
sys.path[:0] = {path!r}
import importlib, json, time
for name in json.loads({prelude!r}):
    try:
        importlib.import_module(name)
    except Exception:
        pass
{setup}
t0 = time.perf_counter()
{timed}
t1 = time.perf_counter()
print("PARTS " + json.dumps({{"seconds": t1 - t0, "check": check}}))
"""

PRELUDE_PROBE = """
import sys
sys.path[:0] = {path!r}
import site, json
from telemetry_run.bootstrap import run_once
state = run_once()
assert state is not None and state.provider is not None
{app}
from telemetry_run.sdk._record import Record
def walk(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from walk(sub)
records = [
    [c.__name__, list(c.__match_args__), c.__setattr__ is not object.__setattr__]
    for c in walk(Record) if c.__match_args__
]
print(json.dumps({"modules": sorted(sys.modules), "records": records}))
"""


@dataclass
class Variant:
    """One side of a row: its untimed setup and timed code (which sets ``check``)."""

    setup: str
    timed: str
    samples: list[float] = field(default_factory=list)
    checks: set[str] = field(default_factory=set)
    error: str = ""


@dataclass
class Row:
    name: str
    library: str  # the modules whose import the stand-in avoids (must not be in the prelude)
    stand_in: Variant
    lib: Variant


def _records_module(records: list[list[object]], dataclasses: bool) -> str:
    """A module defining the start-up's record classes, on our base or as dataclasses."""
    lines = ["from __future__ import annotations", ""]
    if dataclasses:
        lines += ["from dataclasses import dataclass", ""]
    else:
        lines += ["from telemetry_run.sdk._record import FrozenRecord, Record", ""]
    for name, fields, frozen in records:
        assert isinstance(fields, list)
        assert isinstance(name, str)
        if dataclasses:
            lines.append(f"@dataclass(frozen={frozen}, slots=True)")
            lines.append(f"class {name}:")
            lines += [f"    {f}: object" for f in fields]
        else:
            base = "FrozenRecord" if frozen else "Record"
            lines.append(f"class {name}({base}):")
            lines.append(f"    __match_args__ = {tuple(fields)!r}")
            lines.append("    __slots__ = __match_args__")
            lines += [f"    {f}: object" for f in fields]
            args = ", ".join(f"{f}: object" for f in fields)
            lines.append(f"    def __init__(self, {args}) -> None:")
            assign = "object.__setattr__(self, {f!r}, {f})" if frozen else "self.{f} = {f}"
            lines += ["        " + assign.format(f=f) for f in fields]
        lines.append("")
    return "\n".join(lines) + "\n"


def _rows() -> list[Row]:
    targets = repr(TARGETS)
    ranges = repr(RANGES)
    hooks_use = "\n".join(
        [
            "seen = []",
            f"for name in {MODULES!r}:",
            "    register(seen.append, name)",
            "check = 'registered'",
        ]
    )
    return [
        Row(
            "dists",
            "importlib.metadata",
            Variant(
                "",
                "from telemetry_run._dists import entry_points, version\n"
                "eps = sorted(ep.name for ep in entry_points('telemetry_run'))\n"
                f"check = json.dumps([eps, [version(n) for n in {targets}]])",
            ),
            Variant(
                "",
                "from importlib import metadata\n"
                "eps = sorted(ep.name for ep in metadata.entry_points(group='telemetry_run'))\n"
                "def version(n):\n"
                "    try:\n"
                "        return metadata.version(n)\n"
                "    except metadata.PackageNotFoundError:\n"
                "        return None\n"
                f"check = json.dumps([eps, [version(n) for n in {targets}]])",
            ),
        ),
        Row(
            "records",
            "dataclasses",
            Variant("", "import _parts_records_ours\ncheck = 'ok'"),
            Variant("", "import _parts_records_dataclasses\ncheck = 'ok'"),
        ),
        Row(
            "logging",
            "logging",
            Variant(
                "from telemetry_run._import_hooks import register_post_import_hook",
                "from telemetry_run.sdk import _log\n"
                "if _log.configure(_log.WARNING, sys.stderr):\n"
                "    register_post_import_hook(lambda m: _log.apply_pending(), 'logging')\n"
                "_log.logger.debug('dropped %s', 1)\n"
                "check = str(_log.logger.isEnabledFor(_log.DEBUG))",
            ),
            Variant(
                "",
                "import logging\n"
                "real = logging.getLogger('telemetry_run')\n"
                "real.setLevel(logging.WARNING)\n"
                "handler = logging.StreamHandler(sys.stderr)\n"
                "handler.setFormatter(logging.Formatter('telemetry-run: %(message)s'))\n"
                "real.addHandler(handler)\n"
                "real.propagate = False\n"
                "real.debug('dropped %s', 1)\n"
                "check = str(real.isEnabledFor(logging.DEBUG))",
            ),
        ),
        Row(
            "versions",
            "packaging",
            Variant(
                "import telemetry_run.instrumentation as inst\n"
                "from telemetry_run._dists import version",
                f"found = {{n: version(n) for n in {targets}}}\n"
                "check = json.dumps([inst._release_range_contains(r, found[n])"
                f" for n, r in {ranges}.items()])",
            ),
            Variant(
                "import telemetry_run.instrumentation\nfrom telemetry_run._dists import version",
                "from packaging.specifiers import SpecifierSet\n"
                f"found = {{n: version(n) for n in {targets}}}\n"
                "check = json.dumps([SpecifierSet(r).contains(found[n], prereleases=True)"
                f" for n, r in {ranges}.items()])",
            ),
        ),
        Row(
            "endpoint",
            "urllib.parse",
            Variant(
                "from telemetry_run._otlp import parse_endpoint",
                "check = parse_endpoint('http://localhost:4318/v1/traces')",
            ),
            Variant(
                "",
                "import urllib.parse\n"
                "parts = urllib.parse.urlsplit('http://localhost:4318/v1/traces')\n"
                "assert parts.hostname and parts.port\n"
                "check = parts.geturl()",
            ),
        ),
        Row(
            "import-hooks",
            "wrapt",
            Variant(
                "",
                "from telemetry_run._import_hooks import register_post_import_hook"
                " as register\n" + hooks_use,
            ),
            Variant("", "from wrapt import register_post_import_hook as register\n" + hooks_use),
        ),
    ]


def _run_child(code: str) -> tuple[float, str]:
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        env=_env(),
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PARTS ")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"exit {proc.returncode}: {tail}")
    result = json.loads(lines[-1].removeprefix("PARTS "))
    return float(result["seconds"]), str(result["check"])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_RUN_"))}
    for name in ("PYTHONPATH", "PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def _prelude(app: str | None, path: list[str]) -> tuple[list[str], list[list[object]]]:
    """The modules a default bootstrap (then ``import app``) imports, ours aside, and the record
    classes the bootstrap defines."""
    probe = PRELUDE_PROBE.replace("{app}", f"import {app}" if app else "")
    probe = probe.replace("{path!r}", repr(path))
    proc = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=True,
        env=_env(),
    )
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    modules = [
        m for m in found["modules"] if not m.startswith(("telemetry_run", "__main__", "_parts_"))
    ]
    return modules, found["records"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 rounds, not 25")
    parser.add_argument("--rounds", type=int, help="timed rounds")
    parser.add_argument("--threshold", type=float, default=1.0, help="ms a stand-in must save")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each round")
    parser.add_argument(
        "--app",
        metavar="MODULE",
        help="add what `import MODULE` imports to the prelude (flask: an app that imports "
        "logging and dataclasses itself gains nothing from their stand-ins)",
    )
    args = parser.parse_args()
    rounds = args.rounds or (8 if args.quick else 25)

    started = time.perf_counter()
    print(
        f"startup_parts: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{versions('telemetry-run', 'pluggy', 'packaging', 'wrapt')}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="telemetry-run-parts-"))
    try:
        _main(args, rounds, started, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _main(args: argparse.Namespace, rounds: int, started: float, workdir: Path) -> None:
    generated = workdir / "generated"
    generated.mkdir()
    tree = package_tree(Path(__file__).resolve().parents[1], workdir / "tree")
    path = [str(generated), tree, *site.getsitepackages()]
    prelude, records = _prelude(args.app, path)
    then = f" then `import {args.app}`" if args.app else ""
    print(
        f"   prelude: the {len(prelude)} modules a default bootstrap{then} imports (ours aside);"
        f" {len(records)} record classes"
    )
    print(f"   {rounds} rounds after 1 warm-up; each cell is one fresh process")
    rows = _rows()
    Path(generated, "_parts_records_ours.py").write_text(_records_module(records, False))
    Path(generated, "_parts_records_dataclasses.py").write_text(_records_module(records, True))
    cells: list[tuple[Row, str, Variant]] = []
    for row in rows:
        if row.library in prelude:
            print(f"   note: {row.library} is imported by the start-up anyway ({row.name})")
        cells += [(row, "stand-in", row.stand_in), (row, "library", row.lib)]
    for rnd in range(-1, rounds):
        shift = rnd % len(cells)
        line = []
        for row, side, variant in cells[shift:] + cells[:shift]:
            if variant.error:
                continue
            code = CHILD.format(
                path=path,
                prelude=json.dumps(prelude),
                setup=variant.setup,
                timed=variant.timed,
            )
            try:
                seconds, check = _run_child(code)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                variant.error = str(exc)
                continue
            variant.checks.add(check)
            if rnd >= 0:
                variant.samples.append(seconds)
            line.append(f"{row.name}/{side} {seconds * 1e3:.2f}")
        if args.verbose:
            print(f"   {'warm-up' if rnd < 0 else f'round {rnd + 1}'}: " + "  ".join(line))

    print(f"\n== import + use, added to a start-up (ms; median of {rounds} fresh processes)")
    header = (
        f"   {'row':<13} {'library':<19} {'stand-in':>9} {'library':>9} {'saved':>7}"
        f" {'lib slower':>11}  verdict"
    )
    print(header)
    print("   " + "-" * (len(header) - 3))
    for row in rows:
        ours, theirs = row.stand_in, row.lib
        if ours.error or theirs.error:
            print(f"   {row.name:<13} FAILED ({ours.error or theirs.error})")
            continue
        if ours.checks != theirs.checks or len(ours.checks) != 1:
            print(f"   {row.name:<13} MISMATCH: {sorted(ours.checks)} vs {sorted(theirs.checks)}")
            continue
        ms_ours = statistics.median(ours.samples) * 1e3
        ms_theirs = statistics.median(theirs.samples) * 1e3
        slower = sum(t > o for o, t in zip(ours.samples, theirs.samples, strict=True)) / rounds
        pays = ms_theirs - ms_ours > args.threshold and slower >= 0.8
        print(
            f"   {row.name:<13} {row.library:<19} {ms_ours:>9.2f} {ms_theirs:>9.2f}"
            f" {ms_theirs - ms_ours:>+7.2f} {slower:>10.0%}  "
            + ("keep the stand-in" if pays else "use the library")
        )
    print(f"   ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
