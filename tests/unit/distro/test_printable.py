"""What the environment or a peer says is printed masked and escaped: repr, --list, warnings."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from telemetry_run.config import Config, Variable
from telemetry_run.listing import render
from telemetry_run.plugins import Plugins
from telemetry_run.sdk import Diagnostics, _log
from telemetry_run.sdk._printable import LIMIT, escape, mask, quote

SECRET = "s3cr3t-token"
HOSTILE = "\x1b[31mX\nfake line\r\x07\u202eevil\x85end"

#: What must never reach a terminal or a log file from a value.
RAW_CONTROLS = ("\x1b", "\n", "\r", "\x07", "\u202e", "\x85")


def _clean(text: str) -> bool:
    return not any(c in text for c in RAW_CONTROLS)


def test_escape_writes_every_non_printable_as_its_escape() -> None:
    assert escape("plain text: ok/€") == "plain text: ok/€"
    assert escape(HOSTILE) == "\\x1b[31mX\\nfake line\\r\\x07\\u202eevil\\x85end"
    assert escape("x" * (LIMIT + 50)) == "x" * LIMIT + "..."
    assert escape("x" * (LIMIT + 50), None) == "x" * (LIMIT + 50)
    assert quote(HOSTILE) == repr(HOSTILE) and _clean(quote(HOSTILE))
    assert quote("y" * (LIMIT + 1)) == repr("y" * LIMIT) + "..."
    assert mask(SECRET) == f"<{len(SECRET)} characters, hidden>"


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins.load()


@pytest.mark.parametrize(
    "name",
    ["OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER_ARG", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_LOG_LEVEL"],
)
def test_a_value_with_control_characters_warns_once_escaped_and_the_default_is_used(
    name: str,
) -> None:
    warnings: list[str] = []
    config = Config.from_env({name: HOSTILE}, warn=warnings.append)
    (message,) = warnings
    assert message.startswith(f"{name}={quote(HOSTILE)} contains control characters; ")
    assert _clean(message)
    assert config[name] == config.variables[name].default
    assert name in config.invalid and not config.is_set(name)


def test_a_tab_or_non_ascii_text_is_not_a_control_character() -> None:
    warnings: list[str] = []
    config = Config.from_env({"OTEL_SERVICE_NAME": "caf\u00e9\tnoir"}, warn=warnings.append)
    assert warnings == [] and config["OTEL_SERVICE_NAME"] == "caf\u00e9\tnoir"


def test_repr_and_str_of_the_config_hide_headers_keys_and_credentials(plugins: Plugins) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{SECRET}",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-api-key={SECRET}",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": f"/keys/{SECRET}.pem",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{SECRET}@collector:4317",
        "OTEL_SERVICE_NAME": "checkout",
    }
    config = Config.from_env(env, plugins.variables())
    for text in (repr(config), str(config), repr(config.variables)):
        assert SECRET not in text
    assert "OTEL_SERVICE_NAME=checkout" in repr(config)
    assert "OTEL_EXPORTER_OTLP_HEADERS=<" in repr(config)
    assert "collector:4317" in repr(config)


def test_an_invalid_secret_or_url_is_masked_in_its_warning(plugins: Plugins) -> None:
    warnings: list[str] = []
    Config.from_env(
        {
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET},broken",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://user:{SECRET}@collector:port",
        },
        plugins.variables(),
        warn=warnings.append,
    )
    assert len(warnings) == 2
    assert all(SECRET not in message for message in warnings)
    assert any(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='http://REDACTED:REDACTED@" in m for m in warnings
    )


def test_list_masks_secrets_and_escapes_what_the_environment_says() -> None:
    out = render(
        {
            "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://user:{SECRET}@collector:4317",
            "OTEL_SERVICE_NAME": HOSTILE,
            "OTEL_PROPAGATORS": "tracecontext,\x1b]0;pwned\x07",
        }
    )
    assert SECRET not in out
    assert _clean(out.replace("\n", ""))  # the report's own lines aside
    assert all(line.isprintable() for line in out.splitlines())
    assert "OTEL_SERVICE_NAME=" in out  # the warning, escaped
    assert "https://REDACTED:REDACTED@collector:4317" in out


@pytest.fixture
def our_handler() -> Iterator[io.StringIO]:
    """Our logger's real handler (the one the bootstrap installs), writing to a buffer."""
    real = logging.getLogger(_log.NAME)
    saved = (real.handlers[:], real.level, real.propagate)
    real.handlers.clear()
    stream = io.StringIO()
    _log._apply(logging.INFO, stream)
    try:
        yield stream
    finally:
        real.handlers[:] = saved[0]
        real.setLevel(saved[1])
        real.propagate = saved[2]


def test_our_log_handler_escapes_every_message(our_handler: io.StringIO) -> None:
    _log.logger.warning("a peer said %s and %r", HOSTILE, HOSTILE)
    (line,) = our_handler.getvalue().splitlines()
    assert line.startswith("telemetry-run: a peer said \\x1b[31mX\\nfake line")
    assert _clean(line)


def test_a_diagnostics_argument_is_escaped_and_cut(our_handler: io.StringIO) -> None:
    diagnostics = Diagnostics(log=logging.getLogger(_log.NAME))
    diagnostics.warn("k", "the receiver said: %s", HOSTILE + "z" * 5000)
    (line,) = our_handler.getvalue().splitlines()
    assert _clean(line) and line.endswith("...")
    assert len(line) < 1100


def test_a_hostile_service_name_under_the_launcher_is_one_escaped_warning() -> None:
    from tests.integration.conftest import LAUNCHER, clean_env

    env = clean_env(OTEL_SERVICE_NAME=HOSTILE, OTEL_TRACES_EXPORTER="console")
    result = subprocess.run(
        [*LAUNCHER, sys.executable, "-c", "print('app ran')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("app ran")
    lines = result.stderr.splitlines()
    (warning,) = [line for line in lines if "OTEL_SERVICE_NAME" in line]
    assert warning.startswith("telemetry-run: OTEL_SERVICE_NAME='\\x1b[31mX\\nfake line")
    assert _clean(result.stderr.replace("\n", ""))
    assert len([line for line in lines if "fake line" in line]) == 1


def test_a_plugin_variable_can_say_what_an_invalid_value_means() -> None:
    variable = Variable(
        "EXAMPLE_URL", lambda raw: raw, None, "doc", when_invalid="the feature is off"
    )
    warnings: list[str] = []
    errors: list[str] = []
    config = Config.from_env(
        {"EXAMPLE_URL": "a\x1bb"}, [variable], warn=warnings.append, error=errors.append
    )
    assert warnings == []
    assert errors == ["EXAMPLE_URL='a\\x1bb' contains control characters; the feature is off"]
    assert config.warnings == tuple(errors) and config.invalid == {"EXAMPLE_URL"}


def test_a_traceback_keeps_its_lines_but_not_the_controls_of_the_exception_text(
    our_handler: io.StringIO,
) -> None:
    try:
        raise ValueError(f"bad header {HOSTILE}")
    except ValueError:
        _log.logger.warning("a propagator raised", exc_info=True)
    text = our_handler.getvalue()
    assert text.splitlines()[1] == "Traceback (most recent call last):"
    assert "ValueError: bad header \\x1b[31mX" in text
    assert not any(c in text for c in RAW_CONTROLS if c != "\n")


def test_the_sampler_ratio_warning_quotes_the_value(caplog: pytest.LogCaptureFixture) -> None:
    from telemetry_run.sdk.trace.sampling import parse_ratio

    with caplog.at_level(logging.WARNING, logger=_log.NAME):
        assert parse_ratio("9" * 500) == 1.0
    (record,) = caplog.records
    assert record.getMessage().startswith("OTEL_TRACES_SAMPLER_ARG='999")
    assert len(record.getMessage()) < LIMIT + 100


def test_the_launcher_escapes_a_command_name() -> None:
    from tests.integration.conftest import launch

    result = launch(["no-such-\x1b[2Jcommand\nforged"])
    assert result.returncode != 0
    assert result.stderr == "telemetry-run: no-such-\\x1b[2Jcommand\\nforged: command not found\n"
