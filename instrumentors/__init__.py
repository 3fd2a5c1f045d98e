"""Instrumentors for frameworks and clients; nothing is imported here.

Writing one: declare an ``InstrumentorSpec`` in a plugin's ``telemetry_run_instrumentors`` hook
(built-ins: ``plugin.py``) whose ``load`` names a ``base.Instrumentor`` subclass. Its
``_instrument`` imports the target and patches with ``self.patcher.wrap(...)``; each wrapper
starts with ``if not self.enabled(): return wrapped(*args, **kwargs)`` and runs our own code
under ``guard(...)``, calling the application's function outside it. Run the contract suite
(``telemetry_run.testing.contract``) on the spec.
"""
