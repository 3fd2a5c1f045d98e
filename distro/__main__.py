"""``python -m telemetry_run`` is the same as ``telemetry-run``."""

from telemetry_run.cli import main

if __name__ == "__main__":
    main()
