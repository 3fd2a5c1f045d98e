# telemetry-run's sitecustomize: the launcher puts this folder first on PYTHONPATH.
# The logic lives in telemetry_run.bootstrap; this file calls it once, then runs the user's own
# sitecustomize if one exists further down sys.path, so putting us first takes nothing away.
# An interpreter that cannot import telemetry_run (another Python or venv started by the app)
# runs untouched and silent; TELEMETRY_RUN_DEBUG=true makes it say so in one line.


def _bootstrap() -> None:
    try:
        from telemetry_run.bootstrap import run_once
    except ImportError as exc:
        import os
        import sys

        # Our config registry is not importable here, so this is the one direct read.
        if os.environ.get("TELEMETRY_RUN_DEBUG", "").strip().lower() == "true":
            print(
                f"telemetry-run: {sys.executable} cannot import telemetry_run ({exc}); "
                "this process runs uninstrumented",
                file=sys.stderr,
            )
        return
    run_once()


def _chain_user_sitecustomize() -> None:
    import importlib.machinery
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    import importlib.util  # only when there is one to chain: not on every start-up

    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)  # its errors surface as Python reports them without us


_bootstrap()
_chain_user_sitecustomize()
