"""A forked child starts its own metric streams: the parent's counts are the parent's.

The fork happens in a fresh interpreter (no other thread there: Python 3.12 warns about
forking a multi-threaded process, and this test process has threads)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, os
from telemetry_run.sdk.metrics import InMemoryMetricReader, MeterProvider

def values(reader):
    return {m.name: m.data.data_points[0].value for m in reader.collect().metrics()}

reader = InMemoryMetricReader()
provider = MeterProvider([reader])
counter = provider.get_meter("m").create_counter("c")
counter.add(5, {"k": 1})
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        before = values(reader)
        counter.add(1, {"k": 1})
        os.write(write_end, json.dumps([before, values(reader)]).encode())
    finally:
        os._exit(0)
os.close(write_end)
with os.fdopen(read_end) as pipe:
    child = json.loads(pipe.read())
os.waitpid(pid, 0)
print(json.dumps({"child": child, "parent": values(reader)}))
"""


def test_a_forked_child_reports_only_what_it_recorded() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout)
    before, after = result["child"]
    assert before == {}  # nothing inherited
    assert after == {"c": 1}
    assert result["parent"] == {"c": 5}  # the parent's stream is untouched
