"""Start-up cost of a Python program: bare, telemetry-run, opentelemetry-instrument, ddtrace-run.

Two programs, each run to completion as a fresh process: ``python -c pass`` and
``python -c 'import flask'`` (the second shows what import hooks cost once a framework loads).
Every run is timed with ``perf_counter`` around ``subprocess.run``; contenders take turns within
each round, the order rotating from round to round, and warm-up runs are discarded. The tables
give the median and p90 in ms and the time each launcher ADDS over the bare median; the ratios
are our added time divided by theirs (the target is at most 0.10x opentelemetry-instrument's).
Last, a ``-X importtime`` breakdown of what ``telemetry-run python -c pass`` imports.

Every contender runs from one temporary venv built at the start of the run (``--install``):
telemetry-run installed from this checkout as a regular, byte-compiled wheel install (what an
application gets from ``pip install telemetry-run``), beside exactly the distributions of the
venv that runs this script (the peers and their instrumentors, at the same versions), also
byte-compiled. An editable install would mislead: its finder, loaded by a ``.pth`` file at
every start of every process of that venv, imports pathlib, re and importlib.util, which a
regular install never does. ``--install editable`` measures the venv running this script as it
is, for comparison. The report says which install was measured.

``--baseline REF`` adds a contender: telemetry-run as of git ref REF, in the same rounds, so a
change's before and after are measured in one run. Both our contenders then run from a copy of
their tree put first on ``PYTHONPATH`` (REF's from ``git archive``, ours from the working tree),
so they find the package the same way.

    python bench/startup.py [--quick] [-v] [--exporter otlp] [--metrics-exporter otlp]
        [--baseline REF] [--install {wheel,editable}]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from _common import DD_NO_AGENT, DD_QUIET, TREE_FOLDERS, package_tree, versions

LABELS = {
    "bare": "bare python",
    "us": "telemetry-run",
    "otel": "opentelemetry-instrument",
    "dd": "ddtrace-run",
}
PROGRAMS = {"pass": "pass", "flask": "import flask"}
RUN_TIMEOUT = 60.0  # seconds per process; a first ddtrace-run after install can take ~20 s
MAX_FAILURES = 3  # timed runs a contender may fail before it is dropped from the rounds
TARGET = 0.10  # our added time over opentelemetry-instrument's, from the issue
TOP_IMPORTS = 15
OTEL_PACKAGES = "opentelemetry-distro opentelemetry-instrumentation"
# Not copied when the checkout is built for the measured venv.
COPY_IGNORE = (".git", ".venv", ".nox", "build", "*.egg-info", "__pycache__", "*_cache")

# Same exporter configuration for the two OpenTelemetry launchers: console, nothing else.
OTEL_ENV = {
    "OTEL_SERVICE_NAME": "bench",
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}
# ddtrace traces for real but never reaches the network (it would warn about OTEL_* settings).
DD_ENV = {**DD_QUIET, **DD_NO_AGENT}

# Run once per contender and program, untimed, after the program itself: proof that the
# launcher is really tracing (an unfinished span, so nothing is exported) and whether a wrapper
# now sits on flask. A contender whose probe fails is reported and not timed.
PROBES = {
    "bare": "ok = not {'telemetry_run', 'opentelemetry', 'ddtrace'} & set(sys.modules)",
    "us": "from telemetry_run import trace\n"
    "ok = trace.get_tracer('bench').start_span('probe').is_recording()",
    "otel": "from opentelemetry import trace\n"
    "ok = trace.get_tracer('bench').start_span('probe').is_recording()",
    "base": "from telemetry_run import trace\n"
    "ok = trace.get_tracer('bench').start_span('probe').is_recording()",
    "dd": "from ddtrace.trace import tracer\n"
    "ok = 'ddtrace.bootstrap.sitecustomize' in sys.modules and tracer.enabled",
}
CHECK = """
import json, sys
{probe}
hooked = None
if 'flask' in sys.modules:
    import flask
    targets = (flask.Flask, flask.Flask.wsgi_app, flask.Flask.__call__)
    hooked = bool(getattr(flask, '_datadog_patch', False)) or any(
        not getattr(t, '__module__', 'flask').startswith('flask')
        or 'Wrapper' in type(t).__name__ or 'Proxy' in type(t).__name__
        for t in targets
    )
print('BENCH-CHECK ' + json.dumps({{'ok': bool(ok), 'flask_hooked': hooked}}), flush=True)
"""
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S.*)$")


@dataclass
class Contender:
    """How to launch one contender, and what happened to it."""

    key: str
    prefix: list[str] | None  # argv before ``python -c PROGRAM``; None: not installed
    env: dict[str, str]
    how: str
    samples: dict[str, list[float]] = field(default_factory=dict)  # program -> seconds
    hooked: dict[str, bool | None] = field(default_factory=dict)
    error: str = ""
    failures: list[str] = field(default_factory=list)
    stderr: set[str] = field(default_factory=set)

    python: str = sys.executable  # the interpreter of the measured venv

    def argv(self, program: str) -> list[str]:
        assert self.prefix is not None
        return [*self.prefix, self.python, "-c", program]


def _base_env() -> dict[str, str]:
    """The caller's environment without tracer settings or anything that changes start-up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DD_"))}
    env = {k: v for k, v in env.items() if not k.startswith("TELEMETRY_RUN_")}
    # PYTHONDONTWRITEBYTECODE (set on some CI machines) would recompile every module of every
    # contender at every start; deployed apps run from cached bytecode, so the warm-up writes it.
    for name in (
        "PYTHONPATH",
        "PYTHONPROFILEIMPORTTIME",
        "PYTHONSTARTUP",
        "PYTHONMALLOC",
        "PYTHONDONTWRITEBYTECODE",
    ):
        env.pop(name, None)
    return env


def _build_venv(into: Path) -> tuple[str, str]:
    """A venv in ``into`` holding this checkout as a regular byte-compiled install beside the
    distributions of the running venv at their versions; returns its python and a description.
    Raises CalledProcessError (with the installer's output) or FileNotFoundError."""
    repo = Path(__file__).resolve().parents[1]
    # Bytecode is written at install time, as pip and uv do for a deployed app.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    python = into / "bin" / "python"
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))

    def run(*command: str) -> str:
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        return done.stdout

    if uv:
        frozen = run(uv, "pip", "freeze", "--exclude-editable", "--python", sys.executable)
        run(uv, "venv", "--quiet", "--python", sys.executable, str(into))
        install = [uv, "pip", "install", "--quiet", "--python", str(python), "--compile-bytecode"]
        tool = "uv pip install --compile-bytecode"
    else:
        frozen = run(sys.executable, "-m", "pip", "freeze", "--exclude-editable")
        run(sys.executable, "-m", "venv", str(into))
        install = [str(python), "-m", "pip", "install", "--quiet", "--compile"]
        tool = "pip install --compile"
    (into.parent / "frozen.txt").write_text(frozen)
    # The dependencies are pinned by the freeze: no resolution, the same versions as here.
    # --no-deps also keeps the installer from replacing a pinned version with another.
    run(*install, "--no-deps", "-r", str(into.parent / "frozen.txt"))
    # Built from a copy: a build in the checkout would leave build/ and *.egg-info there, and a
    # stale build/lib could slip a deleted module into the wheel.
    source = into.parent / "source"
    shutil.copytree(repo, source, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    run(*install, "--no-deps", str(source))
    count = len([ln for ln in frozen.splitlines() if ln and not ln.startswith("#")])
    how = (
        f"a temporary venv ({into}): telemetry-run from {repo} as a regular wheel install"
        f" and {count} pinned distributions from this venv, all byte-compiled ({tool})"
    )
    return str(python), how


def _contenders(python: str = sys.executable) -> dict[str, Contender]:
    """Each launcher from the measured interpreter's own bin folder: another venv's would not
    fit."""
    bindir = Path(python).parent

    def script(name: str) -> str | None:
        path = bindir / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None

    base = _base_env()
    us = script("telemetry-run")
    if us:
        us_prefix, us_how = [us], f"console script {us}"
    else:
        us_prefix = [python, "-m", "telemetry_run"]
        us_how = f"{python} -m telemetry_run (no telemetry-run console script in {bindir})"
    otel, dd = script("opentelemetry-instrument"), script("ddtrace-run")
    contenders = {
        "bare": Contender("bare", [], base, python),
        "us": Contender("us", us_prefix, base | OTEL_ENV, us_how),
        "otel": Contender(
            "otel",
            [otel] if otel else None,
            base | OTEL_ENV,
            otel or f"not installed (pip install {OTEL_PACKAGES})",
        ),
        "dd": Contender("dd", [dd] if dd else None, base | DD_ENV, dd or "not installed"),
    }
    for contender in contenders.values():
        contender.python = python
    return contenders


def _add_baseline(contenders: dict[str, Contender], ref: str, workdir: Path) -> None:
    """Contender ``base``: telemetry-run at git ref ``ref``; ``us`` runs from a copy of the
    working tree, found the same way (first on PYTHONPATH)."""
    repo = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", ref, "distro", *TREE_FOLDERS],
        capture_output=True,
        check=True,
    ).stdout
    (workdir / "ref").mkdir()
    subprocess.run(["tar", "-x", "-C", str(workdir / "ref")], input=archive, check=True)
    us = contenders["us"]
    base_path = package_tree(workdir / "ref", workdir / "base")
    us_path = package_tree(repo, workdir / "us")
    LABELS["base"] = f"telemetry-run at {ref}"[:26]
    base = Contender(
        "base", us.prefix, us.env | {"PYTHONPATH": base_path}, f"{ref}, from {base_path}"
    )
    base.python = us.python
    rest = {key: contenders.pop(key) for key in list(contenders) if key not in ("bare", "us")}
    contenders.update(base=base, **rest)  # shown right after ours
    us.env = us.env | {"PYTHONPATH": us_path}
    us.how += f", from a copy of the working tree in {us_path}"


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


def _run(argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """One process, start to finish; raises TimeoutExpired or OSError."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    return proc, time.perf_counter() - t0


def _check(contender: Contender, program: str, verbose: bool) -> str:
    """Empty if the contender traces (or, bare, does not), else why it is not timed."""
    code = PROGRAMS[program] + "\n" + CHECK.format(probe=PROBES[contender.key])
    try:
        proc, _ = _run(contender.argv(code), contender.env)
    except subprocess.TimeoutExpired:
        return f"check timed out after {RUN_TIMEOUT:.0f} s"
    except OSError as exc:
        return f"cannot start: {exc}"
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH-CHECK ")]
    if proc.returncode or not lines:
        return f"check exit {proc.returncode}: {_last_line(proc.stderr)}"
    result = json.loads(lines[-1].removeprefix("BENCH-CHECK "))
    if verbose:
        print(f"   check [{LABELS[contender.key]}, {program}]: {result}")
    contender.hooked[program] = result["flask_hooked"]
    if not result["ok"]:
        what = "is not tracing" if contender.key != "bare" else "loaded a tracer"
        stderr = proc.stderr.strip()
        return f"{what}" + (f" (stderr: {_last_line(stderr)})" if stderr else "")
    return ""


def _time_once(contender: Contender, program: str) -> float | None:
    try:
        proc, elapsed = _run(contender.argv(PROGRAMS[program]), contender.env)
    except subprocess.TimeoutExpired:
        contender.failures.append(f"timed out after {RUN_TIMEOUT:.0f} s")
        return None
    except OSError as exc:
        contender.failures.append(f"cannot start: {exc}")
        return None
    if proc.returncode:
        contender.failures.append(f"exit {proc.returncode}: {_last_line(proc.stderr)}")
        return None
    if proc.stderr.strip():
        contender.stderr.add(_last_line(proc.stderr))
    return elapsed


def _measure(contenders: dict[str, Contender], rounds: int, warmup: int, verbose: bool) -> None:
    cells = [(p, c) for p in PROGRAMS for c in contenders]
    for rnd in range(-warmup, rounds):
        shift = rnd % len(cells)
        line = []
        for program, key in cells[shift:] + cells[:shift]:
            contender = contenders[key]
            if contender.error:
                continue
            elapsed = _time_once(contender, program)
            if len(contender.failures) >= MAX_FAILURES:
                contender.error = f"dropped after {MAX_FAILURES} failed runs"
            if elapsed is not None and rnd >= 0:
                contender.samples.setdefault(program, []).append(elapsed)
            shown = "FAILED" if elapsed is None else f"{elapsed * 1e3:.0f}"
            line.append(f"{key}/{program} {shown}")
        if verbose:
            tag = f"round {rnd + 1}" if rnd >= 0 else "warm-up"
            print(f"   {tag}: " + "  ".join(line) + " (ms)")


def _stats(samples: list[float]) -> tuple[float, float]:
    """Median and p90, in ms."""
    ms = [s * 1e3 for s in samples]
    p90 = statistics.quantiles(ms, n=10, method="inclusive")[-1] if len(ms) > 1 else ms[0]
    return statistics.median(ms), p90


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "n/a" if ours is None or not theirs or theirs <= 0 else f"{ours / theirs:.2f}x"


def _report(contenders: dict[str, Contender], program: str) -> dict[str, float | None]:
    """Print one program's table; return the added ms per contender (bare: its median)."""
    print(f"\n== python -c {PROGRAMS[program]!r}")
    header = f"   {'contender':<26} {'runs':>4} {'median ms':>10} {'p90 ms':>8} {'added ms':>9}"
    header += f" {'flask hooked':>13}" if program == "flask" else ""
    print(header)
    print("   " + "-" * (len(header) - 3))
    medians: dict[str, float | None] = {}
    for key, contender in contenders.items():
        samples = contender.samples.get(program, [])
        if not samples:
            medians[key] = None
            reason = contender.error or "no successful run"
            print(f"   {LABELS[key]:<26} FAILED ({reason})")
            continue
        median, p90 = _stats(samples)
        medians[key] = median
        bare = medians.get("bare")
        added = "-" if key == "bare" or bare is None else f"{median - bare:+.1f}"
        row = f"   {LABELS[key]:<26} {len(samples):>4} {median:>10.1f} {p90:>8.1f} {added:>9}"
        if program == "flask":
            hooked = contender.hooked.get(program)
            row += f" {'?' if hooked is None else ('yes' if hooked else 'no'):>13}"
        print(row)
    bare = medians["bare"]
    added = {
        k: None if m is None or bare is None else m - bare
        for k, m in medians.items()
        if k != "bare"
    }
    for theirs in ("otel", "dd"):
        verdict = ""
        if theirs == "otel" and added["us"] is not None and added["otel"]:
            met = added["us"] <= TARGET * added["otel"]
            verdict = f"   (target <= {TARGET:.2f}x: {'met' if met else 'NOT met'})"
        print(
            f"   added time, {LABELS['us']} / {LABELS[theirs]}: "
            f"{_ratio(added['us'], added[theirs])}{verdict}"
        )
    if "base" in added and added["us"] is not None and added["base"] is not None:
        print(
            f"   added time, {LABELS['us']} - {LABELS['base']}: "
            f"{added['us'] - added['base']:+.1f} ms"
        )
    return {"bare": bare, **added}


def _parse_importtime(stderr: str) -> list[dict[str, tuple[int, int, int]]]:
    """One dict per process in the output: module -> (self us, cumulative us, depth)."""
    blocks: list[dict[str, tuple[int, int, int]]] = []
    for line in stderr.splitlines():
        if line.startswith("import time: self"):
            blocks.append({})
            continue
        match = IMPORT_LINE.match(line)
        if match and blocks:
            self_us, cum_us, indent, name = match.groups()
            blocks[-1][name] = (int(self_us), int(cum_us), (len(indent) - 1) // 2)
    return blocks


def _importtime(contenders: dict[str, Contender], runs: int) -> None:
    """Median over ``runs`` of ``telemetry-run python -c pass`` with PYTHONPROFILEIMPORTTIME=1."""
    us, bare = contenders["us"], contenders["bare"]
    print(f"\n== -X importtime: {LABELS['us']} python -c pass (median of {runs} runs)")
    child: dict[str, list[tuple[int, int, int]]] = {}
    totals: dict[str, list[int]] = {"launcher": [], "child": [], "bare": []}
    for _ in range(runs):
        for who, contender in (("us", us), ("bare", bare)):
            env = contender.env | {"PYTHONPROFILEIMPORTTIME": "1"}
            try:
                proc, _ = _run(contender.argv("pass"), env)
            except (subprocess.TimeoutExpired, OSError) as exc:
                print(f"   FAILED ({who}: {exc})")
                return
            blocks = _parse_importtime(proc.stderr)
            if not blocks:
                print(f"   FAILED ({who}: no importtime output: {_last_line(proc.stderr)})")
                return
            if who == "bare":
                totals["bare"].append(sum(s for s, _, _ in blocks[-1].values()))
                continue
            # The launcher is a Python process too: its imports come first, then the exec'd child.
            if len(blocks) > 1:
                totals["launcher"].append(sum(s for s, _, _ in blocks[0].values()))
            totals["child"].append(sum(s for s, _, _ in blocks[-1].values()))
            for name, entry in blocks[-1].items():
                child.setdefault(name, []).append(entry)

    def med(values: list[int]) -> float:
        return statistics.median(values) / 1e3 if values else float("nan")

    rows = [
        (med([c for _, c, _ in entries]), med([s for s, _, _ in entries]), entries[0][2], name)
        for name, entries in child.items()
    ]
    rows.sort(reverse=True)
    print(f"   {'cumulative ms':>13} {'self ms':>8} {'depth':>5}  module")
    for cum, self_ms, depth, name in rows[:TOP_IMPORTS]:
        print(f"   {cum:>13.2f} {self_ms:>8.2f} {depth:>5}  {'  ' * depth}{name}")
    ours = {name: cum for cum, _, _, name in rows}
    print(
        f"   all imports in the child: {med(totals['child']):.1f} ms"
        f" (bare python -c pass: {med(totals['bare']):.1f} ms);"
        f" under sitecustomize: {ours.get('sitecustomize', float('nan')):.1f} ms"
    )
    if totals["launcher"]:
        launcher = med(totals["launcher"])
        print(f"   imports in the launcher process before its exec: {launcher:.1f} ms")


def _versions() -> str:
    return versions("telemetry-run", "opentelemetry-instrumentation", "ddtrace", "flask")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 runs per contender, not 30")
    parser.add_argument("--rounds", type=int, help="runs per contender and program")
    parser.add_argument("-v", "--verbose", action="store_true", help="print checks and rounds")
    parser.add_argument(
        "--exporter",
        choices=("console", "otlp"),
        default="console",
        help="the traces exporter both OpenTelemetry launchers build (otlp: gRPC to a loopback "
        "port where nothing listens; the timed programs make no span, so nothing is sent)",
    )
    parser.add_argument(
        "--metrics-exporter",
        choices=("none", "console", "otlp"),
        default="none",
        help="OTEL_METRICS_EXPORTER of both OpenTelemetry launchers (on: theirs builds its "
        "metrics SDK at start-up, ours one second in, for the runtime metrics)",
    )
    parser.add_argument(
        "--install",
        choices=("wheel", "editable"),
        default="wheel",
        help="wheel (default): measure a temporary venv with telemetry-run installed from this "
        "checkout as a regular byte-compiled install beside this venv's other distributions; "
        "editable: measure this venv as it is (its editable finder loads at every start)",
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also time telemetry-run as of this git ref (before/after in the same rounds)",
    )
    args = parser.parse_args()
    if args.exporter == "otlp":
        OTEL_ENV.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",  # discard port: never answered
            OTEL_EXPORTER_OTLP_INSECURE="true",
        )
    OTEL_ENV["OTEL_METRICS_EXPORTER"] = args.metrics_exporter
    rounds = args.rounds or (10 if args.quick else 30)
    warmup = 1 if args.quick else 2
    if rounds < 1:
        parser.error("--rounds must be at least 1")

    started = time.perf_counter()
    print(f"startup: python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {_versions()}")
    instrumentors = metadata.entry_points(group="opentelemetry_instrumentor")
    otel_instrumentors = sorted(e.name for e in instrumentors)
    workdir = Path(tempfile.mkdtemp(prefix="telemetry-run-startup-"))
    try:
        if args.install == "wheel":
            t0 = time.perf_counter()
            try:
                python, how = _build_venv(workdir / "venv")
            except (subprocess.CalledProcessError, OSError) as exc:
                detail = getattr(exc, "stderr", "") or ""
                sys.exit(f"startup: cannot build the measured venv: {exc} {detail}".strip())
            print(f"   measured install: {how}, built in {time.perf_counter() - t0:.0f} s")
        else:
            python = sys.executable
            print(
                f"   measured install: this venv as it is ({Path(sys.executable).parent.parent}),"
                " telemetry-run editable: its finder's imports count in every contender's start"
            )
        contenders = _contenders(python)
        if args.baseline:
            _add_baseline(contenders, args.baseline, workdir)
        _main(args, contenders, rounds, warmup, otel_instrumentors, started)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _main(
    args: argparse.Namespace,
    contenders: dict[str, Contender],
    rounds: int,
    warmup: int,
    otel_instrumentors: list[str],
    started: float,
) -> None:
    for key, contender in contenders.items():
        print(f"   {LABELS[key]}: {contender.how}")
    print(
        "   opentelemetry-instrument loads the instrumentors installed in this venv: "
        + (", ".join(otel_instrumentors) if otel_instrumentors else "none")
    )
    print(f"   {rounds} runs per contender and program; {warmup} warm-up round(s) discarded")
    print(f"   traces exporter of both OpenTelemetry launchers: {OTEL_ENV['OTEL_TRACES_EXPORTER']}")
    print(f"   metrics exporter of both: {OTEL_ENV['OTEL_METRICS_EXPORTER']}")

    for contender in contenders.values():
        if contender.prefix is None:
            contender.error = contender.how
            continue
        for program in PROGRAMS:
            contender.error = contender.error or _check(contender, program, args.verbose)
    _measure(contenders, rounds, warmup, args.verbose)
    for contender in contenders.values():
        for line in sorted(contender.stderr):
            print(f"   note ({LABELS[contender.key]}): stderr said: {line}")
        if contender.failures:
            print(
                f"   note ({LABELS[contender.key]}): {len(contender.failures)} failed runs,"
                f" last: {contender.failures[-1]}"
            )

    added = {program: _report(contenders, program) for program in PROGRAMS}
    _importtime(contenders, 3 if args.quick else 7)

    print(f"\n== summary ({time.perf_counter() - started:.0f} s; +ms = median - bare median)")
    header = f"   {'program':<14} {'bare ms':>8} {'us +ms':>8} {'otel +ms':>9} {'ddtrace +ms':>12}"
    header += f" {'us/otel':>8} {'us/ddtrace':>11}"
    print(header)
    print("   " + "-" * (len(header) - 3))

    def cell(value: float | None, width: int) -> str:
        return f" {'n/a' if value is None else f'{value:.1f}':>{width}}"

    for program, row in added.items():
        print(
            f"   {PROGRAMS[program]:<14}"
            + cell(row["bare"], 8)
            + cell(row["us"], 8)
            + cell(row["otel"], 9)
            + cell(row["dd"], 12)
            + f" {_ratio(row['us'], row['otel']):>8} {_ratio(row['us'], row['dd']):>11}"
        )
    print(f"   us = {LABELS['us']}, otel = {LABELS['otel']}, ddtrace = {LABELS['dd']}")
    if "base" in contenders:
        print(f"\n   before/after ({LABELS['base']} -> this tree), +ms and ratio to otel:")
        for program, row in added.items():
            base, us, otel = row.get("base"), row["us"], row["otel"]
            print(
                f"   {PROGRAMS[program]:<14}"
                + cell(base, 8)
                + " ->"
                + cell(us, 8)
                + f"   {_ratio(base, otel)} -> {_ratio(us, otel)}"
            )


if __name__ == "__main__":
    main()
