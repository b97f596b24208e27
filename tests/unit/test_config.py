"""Settings: defaults, validation, and the CLI's exit code 2 naming the variable."""

from __future__ import annotations

import pytest

from streamproc.cli import parser as cli
from streamproc.config.settings import load_settings
from streamproc.errors import ConfigError


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("STREAMPROC_KAFKA_BOOTSTRAP", "STREAMPROC_REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)
    settings = load_settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.schema_registry_url is None


def test_values_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPROC_KAFKA_BOOTSTRAP", "a:1, b:2")
    monkeypatch.setenv("STREAMPROC_BATCH_SIZE", "250")
    settings = load_settings()
    assert settings.kafka_bootstrap == "a:1,b:2"
    assert settings.batch_size == 250


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("STREAMPROC_BATCH_SIZE", "lots", "valid integer"),
        ("STREAMPROC_BATCH_SIZE", "0", "greater than or equal to 1"),
        ("STREAMPROC_KAFKA_BOOTSTRAP", "kafka", "expected host:port"),
        ("STREAMPROC_REDIS_URL", "localhost:6379", "redis://"),
        ("STREAMPROC_SCHEMA_REGISTRY_URL", "ftp://x", "http:// or https://"),
        ("STREAMPROC_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_rule(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert f"{variable}={value!r}" in str(caught.value)
    assert expected in str(caught.value)


def test_a_worker_that_would_do_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPROC_INFERENCE", "false")
    assert load_settings().trainer  # a trainer-only process
    monkeypatch.setenv("STREAMPROC_TRAINER", "false")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "STREAMPROC_INFERENCE and STREAMPROC_TRAINER are both false" in str(caught.value)
    assert "set one of them to true" in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.batch_size = 1  # type: ignore[misc]  # the assignment mypy refuses is the test


def test_cli_exits_2_with_the_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMPROC_WEB_PORT", "70000")
    assert cli.main(["schemas", "check"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "STREAMPROC_WEB_PORT='70000'" in err
    assert "port of /metrics" in err
