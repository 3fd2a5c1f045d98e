"""Every environment variable we read, in one registry, and the frozen Config built from it.

Nothing else in the project reads the process environment and nothing writes to it: components take
their settings from ``Config``. An invalid value gets exactly one warning naming the variable
and the value (masked when the variable is secret), then the documented default. Plugins add
their own variables through the ``telemetry_run_variables`` hook before the Config is built.

What the environment says is printed only through ``telemetry_run.sdk._printable``: secrets masked,
URL credentials hidden, control characters escaped (in ``repr``, ``--list`` and every warning).
A value with control characters (ESC, CR, LF, DEL, C1, bidi overrides) is invalid whatever the
variable: no setting needs one, and they are how a value forges log lines or terminal output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from telemetry_run._env import (
    InvalidValue,
    parse_bool,
    parse_duration_ms,
    parse_enum,
    parse_int,
    parse_key_values,
    parse_list,
    parse_positive_ms,
    parse_str,
)
from telemetry_run.sdk._log import CRITICAL, DEBUG, ERROR, INFO, WARNING, logger
from telemetry_run.sdk._printable import escape, mask, quote
from telemetry_run.sdk._record import FrozenRecord

__all__ = ["BUILTIN_VARIABLES", "Config", "Variable", "mask"]


class Variable(FrozenRecord):
    """One environment variable: how to parse it, its default, and one line of documentation.

    ``shown_default`` is how the README and ``--list`` print the default when the parsed value
    would read poorly (``math.inf``, a computed name). ``secret`` values are never printed.
    ``when_invalid`` is for a variable whose default would be the wrong answer to an invalid
    value (an endpoint: the default one would receive data and headers meant elsewhere): it
    says what happens instead, the complaint is an error and the component reads the name in
    ``Config.invalid``; without it an invalid value warns and the default is used.
    """

    __match_args__ = (
        "name",
        "parse",
        "default",
        "doc",
        "secret",
        "shown_default",
        "when_invalid",
    )
    __slots__ = __match_args__

    name: str
    parse: Callable[[str], Any]
    default: Any
    doc: str
    secret: bool
    shown_default: str | None
    when_invalid: str | None

    def __init__(
        self,
        name: str,
        parse: Callable[[str], Any],
        default: Any,
        doc: str,
        secret: bool = False,
        shown_default: str | None = None,
        when_invalid: str | None = None,
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "name", name)
        setattr_(self, "parse", parse)
        setattr_(self, "default", default)
        setattr_(self, "doc", doc)
        setattr_(self, "secret", secret)
        setattr_(self, "shown_default", shown_default)
        setattr_(self, "when_invalid", when_invalid)

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None or self.default == ():
            return "(unset)"
        if isinstance(self.default, tuple):
            return ",".join(self.default)
        if isinstance(self.default, bool):
            return str(self.default).lower()
        return str(self.default)

    def shown(self, text: str) -> str:
        """``text``, a value of this variable, as a warning quotes it: masked when secret,
        otherwise without URL credentials and with control characters escaped."""
        return mask(text) if self.secret else quote(_hide_userinfo(text))


def _hide_userinfo(text: str) -> str:
    """``scheme://u:pw@host/?token=t`` shown as ``scheme://REDACTED:REDACTED@host/?token=REDACTED``:
    endpoints are not secret, credentials written into them are."""
    from telemetry_run.sdk._redaction import scrub_url  # the one URL scrub, query keys too

    return scrub_url(text)


_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "none")
LOGS_EXPORTERS: Final = ("otlp", "console", "none")


def _parse_logs_exporters(raw: str) -> tuple[str, ...]:
    """``otlp``, ``console`` or ``none``, or a comma-separated list of the first two."""
    names = tuple(name.lower() for name in parse_list(raw))
    unknown = [name for name in names if name not in LOGS_EXPORTERS]
    if unknown or not names:
        raise InvalidValue(f"is not one of {', '.join(LOGS_EXPORTERS)} (or a list of them)")
    return names


BUILTIN_VARIABLES: Final[tuple[Variable, ...]] = (
    Variable(
        "OTEL_SDK_DISABLED", parse_bool, False, "true turns every telemetry call into a no-op"
    ),
    Variable(
        "OTEL_SERVICE_NAME",
        parse_str,
        None,
        "service.name of the resource; wins over OTEL_RESOURCE_ATTRIBUTES",
        shown_default="unknown_service:<python executable>",
    ),
    Variable(
        "OTEL_RESOURCE_ATTRIBUTES",
        parse_key_values,
        (),
        "resource attributes as k=v,k2=v2 (percent-encoded)",
    ),
    Variable(
        "OTEL_TRACES_EXPORTER",
        parse_list,
        ("otlp",),
        "span exporters by name: otlp, console, none, or a plugin's name",
    ),
    Variable(
        "OTEL_LOGS_EXPORTER",
        _parse_logs_exporters,
        None,
        "logging records exported: otlp, console or none (otlp when unset and "
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true)",
        shown_default="none",
    ),
    Variable(
        "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED",
        parse_bool,
        False,
        "true exports logging records over OTLP when OTEL_LOGS_EXPORTER is unset "
        "(opentelemetry-instrument's switch)",
    ),
    Variable(
        "OTEL_PROPAGATORS",
        parse_list,
        ("tracecontext", "baggage"),
        "propagators by name: tracecontext, baggage, none, or a plugin's name",
    ),
    Variable(
        "OTEL_TRACES_SAMPLER",
        lambda raw: raw.strip().lower(),
        "parentbased_always_on",
        "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, "
        "parentbased_traceidratio, or a plugin's name",
    ),
    Variable(
        "OTEL_TRACES_SAMPLER_ARG",
        parse_str,
        None,
        "the sampler's argument (the ratio for *traceidratio, 1.0 when unset)",
    ),
    Variable(
        "OTEL_BSP_SCHEDULE_DELAY",
        parse_duration_ms,
        5.0,
        "ms between two exports of the batch span processor",
        shown_default="5000",
    ),
    Variable(
        "OTEL_BSP_EXPORT_TIMEOUT",
        parse_duration_ms,
        30.0,
        "ms one export may take; 0 means no limit",
        shown_default="30000",
    ),
    Variable(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        parse_int(1),
        2048,
        "spans waiting for export; a full queue drops and counts new spans",
    ),
    Variable(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        parse_int(1),
        512,
        "spans per export; at most OTEL_BSP_MAX_QUEUE_SIZE",
    ),
    Variable(
        "OTEL_METRICS_EXPORTER",
        parse_list,
        ("otlp",),
        "metric exporters by name: otlp, prometheus (pulled), console, none; a process running "
        "past one export "
        "interval (at most 10 s) exports its runtime metrics (off by name: runtime_metrics)",
    ),
    Variable(
        "OTEL_METRIC_EXPORT_INTERVAL",
        parse_positive_ms,
        60.0,
        "ms between the starts of two metric exports",
        shown_default="60000",
    ),
    Variable(
        "OTEL_METRIC_EXPORT_TIMEOUT",
        parse_positive_ms,
        30.0,
        "ms one metric export may take, callbacks included",
        shown_default="30000",
    ),
    Variable(
        "OTEL_EXPORTER_PROMETHEUS_HOST",
        parse_str,
        "localhost",
        "the address the Prometheus exporter (OTEL_METRICS_EXPORTER=prometheus) listens on",
    ),
    Variable(
        "OTEL_EXPORTER_PROMETHEUS_PORT",
        parse_int(1, 65535),
        9464,
        "the port the Prometheus exporter listens on; when taken (another worker), the next "
        "free one of the following 63",
    ),
    Variable(
        "OTEL_METRICS_EXEMPLAR_FILTER",
        parse_enum("trace_based", "always_on", "always_off"),
        "trace_based",
        "which measurements may become exemplars: trace_based (inside a sampled span), "
        "always_on, always_off",
    ),
    Variable(
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        parse_enum("cumulative", "delta", "lowmemory"),
        "cumulative",
        "cumulative, delta (counters and histograms) or lowmemory (synchronous counters and "
        "histograms) for the metric exporter",
    ),
    Variable(
        "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
        parse_enum("explicit_bucket_histogram", "base2_exponential_bucket_histogram"),
        "explicit_bucket_histogram",
        "what a histogram aggregates into unless a view says: explicit_bucket_histogram or "
        "base2_exponential_bucket_histogram",
    ),
    Variable(
        "OTEL_BLRP_SCHEDULE_DELAY",
        parse_duration_ms,
        1.0,
        "ms between two exports of the batch log record processor",
        shown_default="1000",
    ),
    Variable(
        "OTEL_BLRP_EXPORT_TIMEOUT",
        parse_duration_ms,
        30.0,
        "ms one log export may take; 0 means no limit",
        shown_default="30000",
    ),
    Variable(
        "OTEL_BLRP_MAX_QUEUE_SIZE",
        parse_int(1),
        2048,
        "log records waiting for export; a full queue drops and counts new records",
    ),
    Variable(
        "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE",
        parse_int(1),
        512,
        "log records per export; at most OTEL_BLRP_MAX_QUEUE_SIZE",
    ),
    Variable(
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        parse_int(0),
        None,
        "longest string attribute value (longer ones are truncated)",
        shown_default="no limit",
    ),
    Variable("OTEL_ATTRIBUTE_COUNT_LIMIT", parse_int(0), 128, "attributes per span, event, link"),
    Variable(
        "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        parse_int(0),
        None,
        "as OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, for spans (wins over it)",
        shown_default="no limit",
    ),
    Variable(
        "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
        parse_int(0),
        None,
        "attributes per span (wins over OTEL_ATTRIBUTE_COUNT_LIMIT)",
        shown_default="128",
    ),
    Variable(
        "OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        parse_int(0),
        None,
        "as OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT, for log records (wins over it)",
        shown_default="no limit",
    ),
    Variable(
        "OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT",
        parse_int(0),
        None,
        "attributes per log record (wins over OTEL_ATTRIBUTE_COUNT_LIMIT)",
        shown_default="128",
    ),
    Variable("OTEL_SPAN_EVENT_COUNT_LIMIT", parse_int(0), 128, "events per span"),
    Variable("OTEL_SPAN_LINK_COUNT_LIMIT", parse_int(0), 128, "links per span"),
    Variable(
        "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
        parse_int(0),
        None,
        "attributes per event",
        shown_default="128",
    ),
    Variable(
        "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
        parse_int(0),
        None,
        "attributes per link",
        shown_default="128",
    ),
    Variable(
        "OTEL_LOG_LEVEL",
        parse_enum(*_LOG_LEVELS),
        "info",
        "level of telemetry-run's own log lines (debug, info, warn, error, none)",
    ),
    Variable(
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
        parse_list,
        (),
        "instrumentors not to load, by name (* for all)",
    ),
    Variable(
        "TELEMETRY_RUN_CONSOLE_FORMAT",
        parse_enum("waterfall", "spans", "json"),
        "waterfall",
        "what OTEL_TRACES_EXPORTER=console prints: waterfall (a tree per trace), spans (a line "
        "per span) or json (an OTLP/JSON object per span)",
    ),
    Variable(
        "NO_COLOR",
        parse_str,
        None,
        "any value turns the console waterfall's colours off (no-color.org); "
        "they are on only on a terminal",
    ),
    Variable(
        "TELEMETRY_RUN_SHUTDOWN_TIMEOUT",
        parse_int(1),
        5000,
        "ms the exit flush may take in all; a dead collector never holds the process longer",
    ),
    Variable(
        "TELEMETRY_RUN_DEBUG",
        parse_bool,
        False,
        "true logs telemetry-run's own decisions (debug level) to stderr",
    ),
    Variable(
        "TELEMETRY_RUN_STRICT",
        parse_bool,
        False,
        "true makes internal errors raise instead of being contained (for CI of plugins)",
    ),
)


class Config(FrozenRecord):
    """The parsed settings: ``config["OTEL_BSP_MAX_QUEUE_SIZE"]`` or the typed properties.

    ``explicit`` holds the names the environment set (validly); ``invalid`` those it set to a
    value that cannot be used; ``warnings`` the messages (errors included) emitted while
    parsing, for ``--list`` and tests. ``repr`` and ``str`` show what ``--list`` shows.
    """

    __match_args__ = ("values", "variables", "explicit", "raw", "warnings", "invalid")
    __slots__ = __match_args__

    values: Mapping[str, Any]
    variables: Mapping[str, Variable]
    explicit: frozenset[str]
    raw: Mapping[str, str]
    warnings: tuple[str, ...]
    invalid: frozenset[str]

    def __init__(
        self,
        values: Mapping[str, Any],
        variables: Mapping[str, Variable],
        explicit: frozenset[str] = frozenset(),
        raw: Mapping[str, str] | None = None,
        warnings: tuple[str, ...] = (),
        invalid: frozenset[str] = frozenset(),
    ) -> None:
        setattr_ = object.__setattr__
        setattr_(self, "values", values)
        setattr_(self, "variables", variables)
        setattr_(self, "explicit", explicit)
        setattr_(self, "raw", {} if raw is None else raw)
        setattr_(self, "warnings", warnings)
        setattr_(self, "invalid", invalid)

    def __repr__(self) -> str:
        # Never the parsed values or the raw text: headers and keys are in there.
        shown = ", ".join(f"{name}={value}" for name, value, explicit in self.shown() if explicit)
        return f"Config({shown})"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        extra: Iterable[Variable] = (),
        *,
        warn: Callable[[str], None] | None = None,
        error: Callable[[str], None] | None = None,
    ) -> Config:
        """Parse every registered variable once; bad values warn once and use the default.

        An invalid value of a variable with ``when_invalid`` goes to ``error`` (to ``warn``
        when only that is given, to the logger's error level when neither is).
        """
        variables: dict[str, Variable] = {v.name: v for v in BUILTIN_VARIABLES}
        for variable in extra:
            variables.setdefault(variable.name, variable)
        emit = warn if warn is not None else logger.warning
        if error is None:
            error = warn if warn is not None else logger.error
        values: dict[str, Any] = {}
        raw_seen: dict[str, str] = {}
        explicit: set[str] = set()
        invalid: set[str] = set()
        warnings: list[str] = []

        def complain(message: str) -> None:
            warnings.append(message)
            emit(message)

        for name, variable in variables.items():
            text = environ.get(name, "").strip()
            if not text:  # empty equals unset (specification)
                values[name] = variable.default
                continue
            raw_seen[name] = text
            try:
                if _has_controls(text):
                    raise InvalidValue("contains control characters")
                values[name] = variable.parse(text)
                explicit.add(name)
            except InvalidValue as exc:
                invalid.add(name)
                values[name] = variable.default
                if variable.when_invalid is None:
                    default = variable.default_text()
                    complain(f"{name}={variable.shown(text)} {exc}; using the default ({default})")
                else:
                    message = f"{name}={variable.shown(text)} {exc}; {variable.when_invalid}"
                    warnings.append(message)
                    error(message)
        _check_relations(values, explicit, complain)
        return cls(
            values,
            variables,
            frozenset(explicit),
            raw_seen,
            tuple(warnings),
            frozenset(invalid),
        )

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def is_set(self, name: str) -> bool:
        return name in self.explicit

    def shown(self) -> list[tuple[str, str, bool]]:
        """(name, value as shown, set by the environment) for every variable; secrets masked."""
        rows = []
        for name, variable in sorted(self.variables.items()):
            if name in self.explicit:
                text = self.raw[name]
                shown = mask(text) if variable.secret else escape(_hide_userinfo(text), None)
                rows.append((name, shown, True))
            else:
                rows.append((name, variable.default_text(), False))
        return rows

    # -- typed views of the core variables ------------------------------------------------

    @property
    def sdk_disabled(self) -> bool:
        return bool(self.values["OTEL_SDK_DISABLED"])

    @property
    def debug(self) -> bool:
        return bool(self.values["TELEMETRY_RUN_DEBUG"])

    @property
    def strict(self) -> bool:
        return bool(self.values["TELEMETRY_RUN_STRICT"])

    @property
    def shutdown_timeout(self) -> float:
        """Seconds the whole exit may take."""
        return float(self.values["TELEMETRY_RUN_SHUTDOWN_TIMEOUT"]) / 1000.0

    @property
    def traces_exporters(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.values["OTEL_TRACES_EXPORTER"]
        return () if "none" in names else names

    @property
    def logs_exporters(self) -> tuple[str, ...]:
        """The log exporters; OpenTelemetry's switch stands for ``otlp`` when the variable is
        unset (a user of opentelemetry-instrument keeps the behaviour they set up)."""
        names: tuple[str, ...] | None = self.values["OTEL_LOGS_EXPORTER"]
        if names is None:
            enabled = self.values["OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"]
            return ("otlp",) if enabled else ()
        return () if "none" in names else names

    @property
    def propagators(self) -> tuple[str, ...]:
        names: tuple[str, ...] = self.values["OTEL_PROPAGATORS"]
        return () if "none" in names else names

    @property
    def disabled_instrumentations(self) -> frozenset[str]:
        return frozenset(self.values["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"])

    def attribute_count(self, specific: str) -> int:
        value = self.values.get(specific)
        return int(value if value is not None else self.values["OTEL_ATTRIBUTE_COUNT_LIMIT"])

    def attribute_length(
        self, specific: str = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"
    ) -> int | None:
        value = self.values[specific]
        if value is None:
            value = self.values["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"]
        return None if value is None else int(value)

    @property
    def log_level(self) -> int:
        """The level for our logger: TELEMETRY_RUN_DEBUG wins, then OTEL_LOG_LEVEL."""
        if self.debug:
            return DEBUG
        level = str(self.values["OTEL_LOG_LEVEL"])
        return {
            "trace": DEBUG,
            "debug": DEBUG,
            "info": INFO,
            "warn": WARNING,
            "warning": WARNING,
            "error": ERROR,
            "fatal": CRITICAL,
            "none": CRITICAL + 10,
        }[level]


def _has_controls(text: str) -> bool:
    """C0 (tab aside), DEL, C1, bidi embeddings, overrides and isolates, line separators."""
    if text.isprintable():
        return False
    return any(
        (c < " " and c != "\t")
        or "\x7f" <= c <= "\x9f"
        or "\u202a" <= c <= "\u202e"
        or "\u2066" <= c <= "\u2069"
        or c in "\u2028\u2029"
        for c in text
    )


def _check_relations(
    values: dict[str, Any], explicit: set[str], complain: Callable[[str], None]
) -> None:
    """Rules that involve two variables (the specification's batch <= queue)."""
    for prefix in ("OTEL_BSP_", "OTEL_BLRP_"):
        queue = values[f"{prefix}MAX_QUEUE_SIZE"]
        batch = values[f"{prefix}MAX_EXPORT_BATCH_SIZE"]
        if batch > queue:
            complain(
                f"{prefix}MAX_EXPORT_BATCH_SIZE={batch} is larger than "
                f"{prefix}MAX_QUEUE_SIZE={queue}; using {queue}"
            )
            values[f"{prefix}MAX_EXPORT_BATCH_SIZE"] = queue
