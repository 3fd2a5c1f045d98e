"""Patching a framework does not import asyncio for wrapt's sake, and asyncio still works.

Each case runs in a fresh interpreter: the test process has imported wrapt and asyncio already.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def _run(code: str, *launcher: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TELEMETRY_RUN"))}
    env["OTEL_TRACES_EXPORTER"] = "none"
    done = subprocess.run(
        [*launcher, sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def test_loading_wrapt_leaves_asyncio_out_and_wrapt_works() -> None:
    out = _run(
        """
        import sys
        from telemetry_run.instrumentors._wrapt import load_wrapt
        wrapt = load_wrapt()
        print("asyncio" in sys.modules)

        class Box:
            def get(self):
                return 41
        wrapt.wrap_function_wrapper(Box, "get", lambda wrapped, inst, a, kw: wrapped() + 1)
        print(Box().get())
        print(load_wrapt() is wrapt is sys.modules["wrapt"])
        """
    )
    assert out == ["False", "42", "True"]


def test_the_application_imports_the_real_asyncio_afterwards() -> None:
    out = _run(
        """
        import sys, types
        from telemetry_run.instrumentors._wrapt import load_wrapt
        wrapt = load_wrapt()
        import asyncio, asyncio.events
        print(type(asyncio) is types.ModuleType, asyncio.run(asyncio.sleep(0, "ran")))
        print(sys.modules["asyncio"] is asyncio, asyncio.events.__name__)
        """
    )
    assert out == ["True ran", "True asyncio.events"]


def test_wrapts_own_async_helpers_reach_the_real_asyncio() -> None:
    out = _run(
        """
        import sys
        from telemetry_run.instrumentors._wrapt import load_wrapt
        wrapt = load_wrapt()

        @wrapt.synchronized
        async def one():
            return 1

        print("asyncio" in sys.modules)
        import asyncio
        print(asyncio.run(one()))
        """
    )
    assert out == ["False", "1"]


def test_an_application_that_imported_asyncio_gets_the_usual_import() -> None:
    out = _run(
        """
        import asyncio, sys
        from telemetry_run.instrumentors._wrapt import load_wrapt
        wrapt = load_wrapt()
        print(wrapt.synchronization.asyncio is asyncio)
        """
    )
    assert out == ["True"]


@pytest.mark.parametrize("program", ["import flask", "import requests"])
def test_an_instrumented_framework_import_does_not_import_asyncio(program: str) -> None:
    pytest.importorskip(program.split()[1])
    out = _run(
        f"""
        import sys
        {program}
        print("asyncio" in sys.modules, "wrapt" in sys.modules)
        """,
        sys.executable,
        "-m",
        "telemetry_run",
    )
    assert out == ["False True"]


def test_the_stand_in_used_while_in_place_puts_the_real_asyncio_there() -> None:
    # What another thread importing asyncio during wrapt's import would see.
    out = _run(
        """
        import sys
        from telemetry_run.instrumentors._wrapt import _AsyncioOnFirstUse
        stand_in = sys.modules["asyncio"] = _AsyncioOnFirstUse("asyncio")
        import asyncio
        print(asyncio is stand_in, asyncio.run(asyncio.sleep(0, "ran")))
        import asyncio.events
        print(sys.modules["asyncio"] is not stand_in, asyncio.events.__name__)
        """
    )
    assert out == ["True ran", "True asyncio.events"]
