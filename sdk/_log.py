"""Our logger, ``logging.getLogger("telemetry_run")``, without importing ``logging`` at start-up.

Importing ``logging`` costs an instrumented process about 3 ms at every start (with
``traceback``, ``string`` and their regular expressions; ``bench/startup_parts.py``, row
``logging``, and nothing in an application that imports it anyway), and with the default
settings our start-up logs nothing. So modules log through ``logger`` here, a stand-in that
hands every record it cannot drop to the real logger (which it imports then), and the bootstrap's
configuration of the real logger (level, the prefixed stderr handler, no propagation) waits for
``logging``'s import: done at once when ``logging`` is already imported, otherwise by the
distro's post-import hook (``apply_pending``) the moment anything imports it (the application,
a plugin, or our first record worth printing). Nobody can see the real logger before it is
configured, and until then a record below the configured level is dropped here, as the real
logger would drop it. The handler writes each message with its control characters escaped
(``_printable.escape``): a value from outside that a call site quoted raw still cannot forge a
line or drive the terminal.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import logging

__all__ = [
    "CRITICAL",
    "DEBUG",
    "ERROR",
    "INFO",
    "NAME",
    "WARNING",
    "Logger",
    "apply_pending",
    "configure",
    "logger",
]

NAME = "telemetry_run"
# logging's level numbers (fixed by its documentation), so choosing one imports nothing.
DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
CRITICAL = 50

# The configuration the bootstrap asked for while ``logging`` is not imported yet: the level and
# the stream of the handler (the stderr of the start-up, as if the handler were made then).
_pending: tuple[int, TextIO] | None = None


class Logger:
    """The part of ``logging.Logger`` we use, resolving the real logger on first need."""

    __slots__ = ("_real", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: logging.Logger | None = None

    @property
    def real(self) -> logging.Logger:
        """The ``logging.Logger`` itself (imports ``logging``, which applies the configuration)."""
        real = self._real
        if real is None:
            import logging

            apply_pending()  # in case logging was imported around the import hook
            real = self._real = logging.getLogger(self.name)
        return real

    def isEnabledFor(self, level: int) -> bool:  # logging's name
        pending = _pending
        if pending is not None and "logging" not in sys.modules:
            return level >= pending[0]  # what the configured logger will answer
        return self.real.isEnabledFor(level)

    # Each method calls the real one directly, one frame below its caller: stacklevel + 1 makes
    # the record's file, line and function the caller's, as with the real logger.

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(DEBUG):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.real.debug(msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(INFO):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.real.info(msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(WARNING):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.real.warning(msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(ERROR):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.real.error(msg, *args, **kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(ERROR):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.real.exception(msg, *args, **kwargs)

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(CRITICAL):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.real.critical(msg, *args, **kwargs)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.real.log(level, msg, *args, **kwargs)

    def __getattr__(self, attribute: str) -> Any:
        # Anything else (handlers, setLevel, getChild...) is the real logger's.
        if attribute.startswith("__") or attribute == "_real":
            raise AttributeError(attribute)  # copy and pickle probe before __init__ ran
        return getattr(self.real, attribute)

    def __repr__(self) -> str:
        return f"<telemetry_run logger {self.name!r}>"


#: ``logging.getLogger("telemetry_run")``, resolved on first need.
logger = Logger(NAME)


def configure(level: int, stream: TextIO) -> bool:
    """Our lines go to ``stream``, prefixed ``telemetry-run:``, at ``level`` and above, and not to
    the application's handlers; applied now if ``logging`` is imported, else kept for
    ``apply_pending``. True when it is kept and nothing was before: the caller then arranges for
    ``apply_pending`` to run when ``logging`` is imported (the distro's post-import hook)."""
    global _pending
    if "logging" in sys.modules:
        _apply(level, stream)
        return False
    first = _pending is None
    _pending = (level, stream)
    return first


def apply_pending() -> None:
    """Apply the configuration ``configure`` kept (once ``logging`` is imported)."""
    global _pending
    pending = _pending
    if pending is not None:
        _pending = None
        _apply(*pending)


def _apply(level: int, stream: TextIO) -> None:
    import logging

    real = logging.getLogger(NAME)
    real.setLevel(level)
    if not real.handlers:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(_escaping_formatter("telemetry-run: %(message)s"))
        real.addHandler(handler)
        real.propagate = False  # the app's root handlers do not print our lines twice


def _escaping_formatter(fmt: str) -> logging.Formatter:
    """A formatter that writes the message escaped, on one line; a traceback (ours, from
    ``logger.exception``) keeps its lines."""
    import logging

    from telemetry_run.sdk._printable import escape

    class EscapingFormatter(logging.Formatter):
        def formatMessage(self, record: logging.LogRecord) -> str:  # logging's name
            record.message = escape(record.message, None)
            return super().formatMessage(record)

        def formatException(self, ei: Any) -> str:  # logging's name
            # A traceback's lines stay lines; what an exception's text carries (a header
            # value, a server's answer) cannot add ESC, CR or other controls to them.
            text = super().formatException(ei)
            return "\n".join(escape(line, None) for line in text.split("\n"))

    return EscapingFormatter(fmt)
