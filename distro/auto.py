"""``import telemetry_run.auto`` as a program's first import: the launcher's bootstrap, in process.

For where ``telemetry-run`` cannot wrap the command: a uWSGI ini file, a Jupyter kernel, an
embedded interpreter. Importing it twice, or under the launcher, bootstraps once.
"""

from telemetry_run.bootstrap import run_once

run_once()
