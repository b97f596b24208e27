"""Redis' TLS settings and its password: each bad combination is refused naming the variables,
and neither the settings' errors nor the worker's start-up line show the password."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError, NoScriptError, ResponseError  # noqa: A004

from streamproc.adapters.redis.client import redis_failure
from streamproc.config.connections import TlsFiles, redact_url
from streamproc.config.settings import load_settings
from streamproc.errors import ConfigError, Unavailable
from streamproc.worker.wiring import connections_summary

SECRET = uuid.uuid4().hex  # a password no message may show
TLS_VARIABLES = ("STREAMPROC_REDIS_TLS_CA", "STREAMPROC_REDIS_TLS_CERT", "STREAMPROC_REDIS_TLS_KEY")


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A file that exists: the settings check only that, TLS reads it when connecting."""
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


@pytest.fixture(autouse=True)
def _no_tls_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in (*TLS_VARIABLES, "STREAMPROC_REDIS_URL"):
        monkeypatch.delenv(variable, raising=False)


def refused(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(f"STREAMPROC_{name.upper()}", value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


def test_a_rediss_url_with_a_ca_and_a_client_certificate_gives_the_tls_files(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    monkeypatch.setenv("STREAMPROC_REDIS_URL", f"rediss://svc:{SECRET}@redis:6380/0")
    monkeypatch.setenv("STREAMPROC_REDIS_TLS_CA", str(pem))
    monkeypatch.setenv("STREAMPROC_REDIS_TLS_CERT", str(pem))
    monkeypatch.setenv("STREAMPROC_REDIS_TLS_KEY", "")  # empty is unset: the key is in the cert
    assert load_settings().redis_tls() == TlsFiles(pem, pem, None)


def test_a_plaintext_url_has_no_tls_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")
    assert load_settings().redis_tls() is None


def test_a_ca_file_that_does_not_exist_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    message = refused(monkeypatch, redis_url="rediss://h:6380/0", redis_tls_ca=str(missing))
    assert f"STREAMPROC_REDIS_TLS_CA='{missing}': no such file" in message


def test_tls_files_with_a_plaintext_url_are_refused(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    message = refused(monkeypatch, redis_url="redis://h:6379/0", redis_tls_ca=str(pem))
    assert "STREAMPROC_REDIS_TLS_* are set but STREAMPROC_REDIS_URL is not a rediss://" in message


def test_a_key_without_its_certificate_is_refused(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    message = refused(monkeypatch, redis_url="rediss://h:6380/0", redis_tls_key=str(pem))
    assert "STREAMPROC_REDIS_TLS_KEY is set without STREAMPROC_REDIS_TLS_CERT" in message


def test_tls_options_in_the_url_point_at_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "rediss://h:6380/0?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem"
    message = refused(monkeypatch, redis_url=url)
    assert "TLS options in its query (ssl_ca_certs, ssl_cert_reqs)" in message
    assert "set STREAMPROC_REDIS_TLS_CA" in message


def test_rediss_without_a_ca_on_a_system_that_trusts_none_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    message = refused(monkeypatch, redis_url="rediss://h:6380/0")
    assert "STREAMPROC_REDIS_TLS_CA is unset and this system has no trusted CAs" in message
    (tmp_path / "empty" / "ca.pem").write_text("")  # now the system trusts a CA
    assert load_settings().redis_tls() == TlsFiles()


def test_a_refused_url_is_shown_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(monkeypatch, redis_url=f"http://svc:{SECRET}@redis:6379/0")
    assert "STREAMPROC_REDIS_URL='http://svc:***@redis:6379/0'" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"rediss://svc:{SECRET}@redis:6380/0", "rediss://svc:***@redis:6380/0"),
        (f"redis://:{SECRET}@redis:6379", "redis://:***@redis:6379"),
        (f"redis://redis:6379/0?password={SECRET}&db=1", "redis://redis:6379/0?password=***&db=1"),
        (f"unix:///run/redis.sock?password={SECRET}", "unix:///run/redis.sock?password=***"),
        ("redis://svc@redis:6379/0", "redis://svc@redis:6379/0"),
    ],
)
def test_redact_url_hides_the_password_wherever_it_is(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_workers_start_up_line_names_redis_and_its_tls_without_the_password(
    monkeypatch: pytest.MonkeyPatch, pem: Path
) -> None:
    monkeypatch.setenv("STREAMPROC_REDIS_URL", f"rediss://svc:{SECRET}@redis:6380/0")
    monkeypatch.setenv("STREAMPROC_REDIS_TLS_CA", str(pem))
    monkeypatch.setenv("STREAMPROC_REDIS_NAMESPACE", "shop")
    line = connections_summary(load_settings())
    assert f"Redis at rediss://svc:***@redis:6380/0 (TLS, CA {pem}), keys under shop:" in line
    assert SECRET not in line


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError(
            "Error while reading from 127.0.0.1:6380 : (104, 'Connection reset by peer')"
        ),
        ConnectionError("Connection closed by server."),
    ],
)
def test_a_reset_connection_points_at_the_url_scheme_and_at_a_missing_client_certificate(
    error: ConnectionError,
) -> None:
    """A TLS 1.3 server that wants a client certificate can close before its alert is read:
    the client sees only a reset, so the message names both likely causes, and it is worth
    retrying (a restarting server resets connections too)."""
    failure = redis_failure("Redis feature read failed", error)
    assert isinstance(failure, Unavailable)
    assert "the URL must be rediss://" in str(failure)
    assert "set STREAMPROC_REDIS_TLS_CERT and _KEY" in str(failure)


@pytest.mark.parametrize(
    "error",
    [
        NoScriptError("No matching script. Please use EVAL."),
        # what a pipeline raises for its EVALSHA
        ResponseError(
            "Command # 1 (EVALSHA 107b 3 k) of pipeline caused error: "
            "('No matching script. Please use EVAL.',)"
        ),
    ],
)
def test_scripts_flushed_between_loading_and_calling_are_tried_again(error: Exception) -> None:
    """make faults, case 10 (SCRIPT FLUSH ×10 under load): the flush can land between
    redis-py's SCRIPT LOAD and its EVALSHA; the batch is tried again, never the worker's end."""
    assert isinstance(error, ResponseError)
    failure = redis_failure("Redis state marker check failed", error)
    assert isinstance(failure, Unavailable)
    assert "flushed" in str(failure)


def test_a_script_error_is_not_tried_again() -> None:
    failure = redis_failure("Redis dedupe call failed", ResponseError("ERR user_script:3: bad"))
    assert not isinstance(failure, Unavailable)
