"""The test suite keeps its own rules (CONTRIBUTING): no assertion on a measured duration, which
flakes on a loaded machine and proves nothing on an idle one, and no skip that does not say what
is missing, which would let a green run hide a test that never ran.

The rules are read from the source with ``ast``: a duration is the difference of two clock
readings (``time.time()``, ``time.monotonic()``, ``time.perf_counter()`` and their ``_ns``
forms), a variable holding one, or the part of a helper's return value that is one (``result,
took = timed_export(...)``); it may not be compared with a number inside an ``assert`` or in an
``if`` that fails the test. A polling loop bounded by the clock is not an assertion and is allowed.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

_CLOCKS = frozenset(
    {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "perf_counter_ns"}
)
_SKIPS = frozenset({"skip", "skipif"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _is_clock_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call) or node.args:
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr in _CLOCKS and isinstance(func.value, ast.Name) and func.value.id == "time"
    return isinstance(func, ast.Name) and func.id in _CLOCKS - {"time"}


def _is_number(node: ast.AST) -> bool:
    """A number written in the source (``30``, ``-1``, ``2 * 0.5``)."""
    return all(
        isinstance(n, ast.Constant | ast.BinOp | ast.UnaryOp | ast.operator | ast.unaryop)
        for n in ast.walk(node)
    ) and _has_number(node)


def _has_number(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Constant) and type(n.value) in (int, float) for n in ast.walk(node)
    )


class _Scope:
    """The clock readings and durations one function (or module body) holds, by name."""

    def __init__(
        self, returns_duration: dict[str, frozenset[int | None]], series: frozenset[str]
    ) -> None:
        self.readings: set[str] = set()
        self.series = series  # lists clock readings are appended to (``sent[1] - sent[0]``)
        self.durations: set[str] = set()
        self.returns_duration = returns_duration

    def is_reading(self, node: ast.AST) -> bool:
        if _is_clock_call(node):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.readings
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            return node.value.id in self.series
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.is_reading(node.left) or self.is_reading(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            return self.is_reading(node.left) and _is_number(node.right)  # `now - 30`
        return False

    def is_duration(self, node: ast.AST) -> bool:
        """Whether ``node`` contains a duration: a difference with a clock reading on either
        side, or a name holding one."""
        for n in ast.walk(node):
            if (
                isinstance(n, ast.BinOp)
                and isinstance(n.op, ast.Sub)
                and (
                    self.is_reading(n.right)
                    or (self.is_reading(n.left) and not _is_number(n.right))
                )
            ):
                return True
            if isinstance(n, ast.Name) and n.id in self.durations:
                return True
        return False

    def _called(self, value: ast.AST) -> frozenset[int | None]:
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            return self.returns_duration.get(value.func.id, frozenset())
        return frozenset()

    def assign(self, targets: list[ast.expr], value: ast.AST) -> None:
        for target in targets:
            if isinstance(target, ast.Name):
                if _is_clock_call(value) or (
                    isinstance(value, ast.BinOp) and self.is_reading(value)
                ):
                    self.readings.add(target.id)
                elif self.is_duration(value) or None in self._called(value):
                    self.durations.add(target.id)
            elif isinstance(target, ast.Tuple):
                positions = self._called(value)
                items = value.elts if isinstance(value, ast.Tuple) else None
                for index, element in enumerate(target.elts):
                    if not isinstance(element, ast.Name):
                        continue
                    if index in positions or (
                        items is not None and index < len(items) and self.is_duration(items[index])
                    ):
                        self.durations.add(element.id)


def _series(tree: ast.AST) -> frozenset[str]:
    """Names of the lists a clock reading is appended to, anywhere in a module."""
    return frozenset(
        node.func.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "append"
        and isinstance(node.func.value, ast.Name)
        and node.args
        and _is_clock_call(node.args[0])
    )


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _own_statements(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """The nodes of a body in source order, without descending into nested functions."""
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue  # scanned as a scope of its own
        stack: list[ast.AST] = [statement]
        while stack:
            node = stack.pop()
            yield node
            children = [
                c
                for c in ast.iter_child_nodes(node)
                if not isinstance(c, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            ]
            stack.extend(reversed(children))


def _scan_scope(body: list[ast.stmt], scope: _Scope) -> Iterator[ast.AST]:
    """Record the scope's assignments in order and yield its nodes."""
    for node in _own_statements(body):
        if isinstance(node, ast.Assign):
            scope.assign(node.targets, node.value)
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            scope.assign([node.target], node.value)
        yield node


def _duration_positions(
    function: ast.FunctionDef | ast.AsyncFunctionDef,
    known: dict[str, frozenset[int | None]],
) -> frozenset[int | None]:
    """Which parts of what ``function`` returns are durations (``None``: the whole value)."""
    scope = _Scope(known, frozenset())
    positions: set[int | None] = set()
    for node in _scan_scope(function.body, scope):
        if isinstance(node, ast.Return) and node.value is not None:
            if isinstance(node.value, ast.Tuple):
                positions.update(
                    i for i, item in enumerate(node.value.elts) if scope.is_duration(item)
                )
            elif scope.is_duration(node.value):
                positions.add(None)
    return frozenset(positions)


def duration_helpers(trees: list[ast.Module]) -> dict[str, frozenset[int | None]]:
    """Every function of the suite that hands back a duration, and aliases of it
    (``_export = timed_export``), by name."""
    helpers: dict[str, frozenset[int | None]] = {}
    for _ in range(3):  # a helper may call another one
        for tree in trees:
            for function in _functions(tree):
                positions = _duration_positions(function, helpers)
                if positions:
                    helpers[function.name] = positions
            for statement in tree.body:
                if (
                    isinstance(statement, ast.Assign)
                    and isinstance(statement.value, ast.Name)
                    and statement.value.id in helpers
                ):
                    for target in statement.targets:
                        if isinstance(target, ast.Name):
                            helpers[target.id] = helpers[statement.value.id]
    return helpers


def _fails(statements: list[ast.stmt]) -> bool:
    for node in ast.walk(ast.Module(body=statements, type_ignores=[])):
        if isinstance(node, ast.Raise):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "fail"
        ):
            return True
    return False


def _timed_comparisons(test: ast.AST, scope: _Scope) -> Iterator[ast.Compare]:
    for node in ast.walk(test):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        timed = [o for o in operands if scope.is_duration(o)]
        if timed and any(_has_number(o) for o in operands if o not in timed):
            yield node
        elif timed and any(_has_number(o) for o in timed if not isinstance(o, ast.Name)):
            # `time.monotonic() - start < 1.0 + slack` folded on one side
            yield node


def wall_clock_assertions(
    tree: ast.Module, path: str, helpers: dict[str, frozenset[int | None]]
) -> list[Finding]:
    findings = []
    bodies: list[list[ast.stmt]] = [tree.body, *(f.body for f in _functions(tree))]
    series = _series(tree)
    for body in bodies:
        scope = _Scope(helpers, series)
        for node in _scan_scope(body, scope):
            tests: list[ast.AST] = []
            if isinstance(node, ast.Assert) or (isinstance(node, ast.If) and _fails(node.body)):
                tests.append(node.test)
            elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                tests.append(node.value)  # `good = took < 2`, asserted later
            for test in tests:
                for compare in _timed_comparisons(test, scope):
                    findings.append(
                        Finding(path, compare.lineno, "a measured duration compared with a number")
                    )
    return findings


def _reason(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg in ("reason", "msg"):
            return keyword.value
    name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
    position = 0 if name == "skip" else 1  # skipif(condition, reason)
    return call.args[position] if len(call.args) > position else None


def _says_what(reason: ast.expr | None) -> bool:
    """A reason is a sentence (two words at least: "needs os.fork", "gunicorn is not installed")."""
    if isinstance(reason, ast.Constant) and isinstance(reason.value, str):
        return len(reason.value.split()) >= 2
    if isinstance(reason, ast.JoinedStr):
        text = "".join(v.value if isinstance(v, ast.Constant) else "x " for v in reason.values)
        return len(text.split()) >= 2
    return False


def bare_skips(tree: ast.Module, path: str) -> list[Finding]:
    findings = []
    # `pytest.skip.Exception` names the exception, it skips nothing
    owners = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    for node in ast.walk(tree):
        if id(node) in owners:
            continue
        target = node.func if isinstance(node, ast.Call) else node
        if not (isinstance(target, ast.Attribute) and target.attr in _SKIPS):
            continue
        owner = target.value
        if not (
            (isinstance(owner, ast.Name) and owner.id == "pytest")
            or (isinstance(owner, ast.Attribute) and owner.attr == "mark")
        ):
            continue
        call = node if isinstance(node, ast.Call) else None
        if call is not None and call.func is target and _says_what(_reason(call)):
            continue
        if call is None and _is_called(tree, target):
            continue  # the Attribute node of a call, judged with the call
        findings.append(
            Finding(
                path, node.lineno, f"pytest.{target.attr} without a reason naming what is missing"
            )
        )
    return findings


def _is_called(tree: ast.Module, attribute: ast.Attribute) -> bool:
    return any(isinstance(n, ast.Call) and n.func is attribute for n in ast.walk(tree))


def check(sources: dict[str, str]) -> list[Finding]:
    trees = {path: ast.parse(text, path) for path, text in sources.items()}
    helpers = duration_helpers(list(trees.values()))
    findings = []
    for path, tree in trees.items():
        findings += wall_clock_assertions(tree, path, helpers)
        findings += bare_skips(tree, path)
    return sorted(findings, key=lambda f: (f.path, f.line))


def embedded_scripts(path: str, text: str) -> dict[str, str]:
    """The Python programs a test file holds as strings and runs in a subprocess (a string of
    several lines that parses and imports something), named ``path:line``."""
    scripts = {}
    for node in ast.walk(ast.parse(text, path)):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if "\n" not in node.value:
            continue
        source = textwrap.dedent(node.value)
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        if any(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(tree)):
            scripts[f"{path}:{node.lineno} (a script)"] = source
    return scripts


def _suite() -> dict[str, str]:
    sources = {
        str(path.relative_to(TESTS.parent)): path.read_text()
        for path in sorted(TESTS.rglob("*.py"))
        if "__pycache__" not in path.parts
    }
    this = str(Path(__file__).resolve().relative_to(TESTS.parent))
    for path, text in list(sources.items()):
        if path != this:  # its own examples break the rules on purpose
            sources.update(embedded_scripts(path, text))
    return sources


def test_no_test_asserts_a_wall_clock_duration_or_skips_without_a_reason() -> None:
    findings = check(_suite())
    assert not findings, "\n".join(map(str, findings))


# -- the check finds what it must, and only that ---------------------------------------------


def test_the_check_reads_the_scripts_tests_run_in_a_subprocess() -> None:
    test_file = textwrap.dedent(
        '''
        SCRIPT = """
        import time
        started = time.monotonic()
        work()
        good = time.monotonic() - started < 2
        """
        '''
    )
    scripts = embedded_scripts("t.py", test_file)
    assert list(scripts) == ["t.py:2 (a script)"]
    assert [str(f) for f in check(scripts)] == [
        "t.py:2 (a script):5: a measured duration compared with a number"
    ]


def _findings(code: str, helper: str = "") -> list[str]:
    sources = {"t.py": textwrap.dedent(code), "helpers.py": textwrap.dedent(helper)}
    return [f.what for f in check(sources)]


@pytest.mark.parametrize(
    "code",
    [
        "import time\ndef test():\n    start = time.monotonic()\n    work()\n"
        "    assert time.monotonic() - start < 1.0\n",
        "import time\ndef test():\n    t0 = time.perf_counter()\n    work()\n"
        "    took = time.perf_counter() - t0\n    assert took < 0.05, took\n",
        "from time import monotonic\ndef test():\n    s = monotonic()\n"
        "    elapsed = monotonic() - s\n    assert 0.9 <= elapsed < 1.5\n",
        "import time\ndef test():\n    ended = time.time()\n"
        "    took = ended - float(out)\n    assert took < LIMIT + 0.5\n",
        "import time\ndef test():\n    s = time.monotonic()\n    took = time.monotonic() - s\n"
        "    if took > 2:\n        pytest.fail('slow')\n",
        "def test():\n    result, took = timed(x)\n    assert result and took < 1.0\n",
        "import time\nsent = []\ndef send():\n    sent.append(time.monotonic())\n"
        "def test():\n    run(send)\n    assert 0.3 <= sent[1] - sent[0] < 1.5\n",
        "import time\ndef test():\n    s = time.monotonic()\n    good = time.monotonic() - s < 2\n"
        "    assert good\n",
        "_export = timed\ndef test():\n    result, took = _export(x)\n    assert took < 0.5\n",
    ],
)
def test_the_check_finds_a_duration_compared_with_a_number(code: str) -> None:
    helper = (
        "import time\ndef timed(x):\n    s = time.monotonic()\n    r = x()\n"
        "    return r, time.monotonic() - s\n"
    )
    assert _findings(code, helper) == ["a measured duration compared with a number"]


@pytest.mark.parametrize(
    "code",
    [
        # a polling loop bounded by the clock is not an assertion
        "import time\ndef test():\n    deadline = time.monotonic() + 5\n"
        "    while time.monotonic() < deadline:\n        pass\n",
        "import time\ndef test():\n    s = time.monotonic()\n"
        "    while time.monotonic() - s < 5:\n        poll()\n",
        # the deadline passed down, asserted against the clock readings around the call
        "import time\ndef test():\n    before = time.monotonic()\n    call(deadline=before + 5)\n"
        "    assert before + 5 == seen.deadline\n",
        "def test():\n    result, _ = timed(x)\n    assert result.attempts == 3\n",
        # a clock reading moved by a constant is a point in time, not a duration
        "import time\ndef test():\n    now = time.time()\n"
        "    assert parse(now - 30, now=now) == 0.0\n",
    ],
)
def test_the_check_leaves_behaviour_assertions_and_bounded_loops_alone(code: str) -> None:
    helper = (
        "import time\ndef timed(x):\n    s = time.monotonic()\n    r = x()\n"
        "    return r, time.monotonic() - s\n"
    )
    assert _findings(code, helper) == []


@pytest.mark.parametrize(
    "code",
    [
        "import pytest\ndef test():\n    pytest.skip()\n",
        "import pytest\ndef test():\n    pytest.skip('no')\n",
        "import pytest\n@pytest.mark.skipif(X)\ndef test():\n    pass\n",
        "import pytest\n@pytest.mark.skip\ndef test():\n    pass\n",
        "import pytest\n@pytest.mark.skipif(X, reason='')\ndef test():\n    pass\n",
    ],
)
def test_the_check_finds_a_skip_without_a_reason(code: str) -> None:
    assert len(_findings(code)) == 1
    assert "without a reason naming what is missing" in _findings(code)[0]


@pytest.mark.parametrize(
    "code",
    [
        "import pytest\ndef test():\n    pytest.skip('gunicorn is not installed')\n",
        "import pytest\ndef test():\n    pytest.skip(f'{name} is not installed')\n",
        "import pytest\n@pytest.mark.skipif(X, reason='needs os.fork')\ndef test():\n    pass\n",
        "import pytest\nwith pytest.raises(pytest.skip.Exception):\n    pass\n",
        "import pytest\npytest.importorskip('grpc')\n",
    ],
)
def test_the_check_accepts_a_skip_that_names_what_is_missing(code: str) -> None:
    assert _findings(code) == []
