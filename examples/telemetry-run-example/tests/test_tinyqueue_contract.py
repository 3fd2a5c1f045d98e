"""telemetry-run's instrumentor contract suite, run on the tinyqueue instrumentor.

Each check runs in a fresh interpreter whose ``sys.path`` is this one's plus this folder, so the
exercise module imports there as it does here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from telemetry_run.testing.contract import contract_tests

from telemetry_run_example.plugin import TINYQUEUE

contract_tests(
    globals(),
    spec=TINYQUEUE,
    exercise="tinyqueue_exercise:put_and_get",
    plugin="example",
    sys_path=[str(Path(__file__).parent), *sys.path],
)
