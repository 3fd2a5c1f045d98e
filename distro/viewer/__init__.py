"""``telemetry-run --view``: a local OTLP receiver and a web page showing the last traces.

Loaded only when the launcher is given ``--view``: none of it is on any process's start-up path.
``store`` keeps the traces (bounded), ``decode`` turns OTLP protobuf into the store's records,
``receiver`` listens for OTLP (gRPC and HTTP), ``web`` serves the page and its JSON API, and
``cli`` wires them to the launcher's options and the traced command.
"""
