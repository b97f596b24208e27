"""The Kafka security settings: what reaches librdkafka, and the mistakes refused at start with
the variable to fix (never a silent plaintext connection, never the password in a message)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.config.settings import load_settings
from streamproc.errors import ConfigError

PASSWORD = "s3cret-Pa55word"  # noqa: S105 - a test value, searched for in messages


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")  # read by librdkafka, not by the settings
    return path


@pytest.fixture
def sasl_ssl(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> pytest.MonkeyPatch:
    monkeypatch.setenv("STREAMPROC_KAFKA_BOOTSTRAP", "kafka-1:9093")
    monkeypatch.setenv("STREAMPROC_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMPROC_KAFKA_SASL_USERNAME", "streamproc")
    monkeypatch.setenv("STREAMPROC_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("STREAMPROC_KAFKA_SSL_CA_LOCATION", str(ca_file))
    return monkeypatch


def _refusal(monkeypatch: pytest.MonkeyPatch) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert PASSWORD not in message
    return message


def test_the_default_is_plaintext_with_nothing_but_the_brokers() -> None:
    kafka = load_settings().kafka_connection()
    assert kafka.properties() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "PLAINTEXT",
    }


def test_sasl_ssl_hands_librdkafka_the_user_the_password_and_the_ca(
    sasl_ssl: pytest.MonkeyPatch, ca_file: Path
) -> None:
    kafka = load_settings().kafka_connection()
    assert kafka.properties() == {
        "bootstrap.servers": "kafka-1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "streamproc",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(ca_file),
        "ssl.endpoint.identification.algorithm": "https",
    }
    assert str(kafka) == "kafka-1:9093 (SASL_SSL, SCRAM-SHA-512 as streamproc)"
    assert PASSWORD not in repr(kafka)
    assert PASSWORD not in repr(load_settings())


def test_ssl_with_a_client_certificate(
    monkeypatch: pytest.MonkeyPatch, ca_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "client.pem").write_text("cert")
    (tmp_path / "client.key").write_text("key")
    monkeypatch.setenv("STREAMPROC_KAFKA_SECURITY_PROTOCOL", "ssl")  # any case
    monkeypatch.setenv("STREAMPROC_KAFKA_SSL_CA_LOCATION", str(ca_file))
    monkeypatch.setenv("STREAMPROC_KAFKA_SSL_CERTIFICATE_LOCATION", str(tmp_path / "client.pem"))
    monkeypatch.setenv("STREAMPROC_KAFKA_SSL_KEY_LOCATION", str(tmp_path / "client.key"))
    monkeypatch.setenv("STREAMPROC_KAFKA_SSL_ENDPOINT_IDENTIFICATION", "none")
    properties = load_settings().kafka_connection().properties()
    assert properties["security.protocol"] == "SSL"
    assert properties["ssl.certificate.location"] == str(tmp_path / "client.pem")
    assert properties["ssl.key.location"] == str(tmp_path / "client.key")
    assert properties["ssl.endpoint.identification.algorithm"] == "none"
    assert not any(key.startswith("sasl.") for key in properties)


def test_sasl_plaintext_is_refused_for_sending_credentials_in_cleartext(
    sasl_ssl: pytest.MonkeyPatch,
) -> None:
    sasl_ssl.setenv("STREAMPROC_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    message = _refusal(sasl_ssl)
    assert "STREAMPROC_KAFKA_SECURITY_PROTOCOL='SASL_PLAINTEXT'" in message
    assert "cleartext: use SASL_SSL" in message


@pytest.mark.parametrize("missing", ["PASSWORD", "USERNAME"])
def test_sasl_ssl_without_a_credential_names_the_variable_to_set(
    sasl_ssl: pytest.MonkeyPatch, missing: str
) -> None:
    sasl_ssl.delenv(f"STREAMPROC_KAFKA_SASL_{missing}")
    message = _refusal(sasl_ssl)
    assert f"STREAMPROC_KAFKA_SASL_{missing} is unset" in message
    assert "STREAMPROC_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs" in message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_credentials_without_sasl_are_refused_not_dropped(
    sasl_ssl: pytest.MonkeyPatch, protocol: str
) -> None:
    """A forgotten protocol would otherwise connect without them, silently."""
    sasl_ssl.setenv("STREAMPROC_KAFKA_SECURITY_PROTOCOL", protocol)
    message = _refusal(sasl_ssl)
    for name in ("USERNAME", "PASSWORD"):
        assert f"STREAMPROC_KAFKA_SASL_{name} is set but" in message
    assert "set the protocol to SASL_SSL" in message


def test_tls_files_without_tls_are_refused(monkeypatch: pytest.MonkeyPatch, ca_file: Path) -> None:
    monkeypatch.setenv("STREAMPROC_KAFKA_SSL_CA_LOCATION", str(ca_file))
    message = _refusal(monkeypatch)
    assert "STREAMPROC_KAFKA_SSL_CA_LOCATION is set but" in message
    assert "=PLAINTEXT does not use TLS" in message


def test_a_missing_tls_file_and_a_certificate_without_its_key_are_refused(
    sasl_ssl: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sasl_ssl.setenv("STREAMPROC_KAFKA_SSL_CA_LOCATION", str(tmp_path / "absent.pem"))
    sasl_ssl.setenv("STREAMPROC_KAFKA_SSL_CERTIFICATE_LOCATION", str(tmp_path / "absent.pem"))
    message = _refusal(sasl_ssl)
    assert f"STREAMPROC_KAFKA_SSL_CA_LOCATION={tmp_path / 'absent.pem'}: no such file" in message
    assert "STREAMPROC_KAFKA_SSL_KEY_LOCATION go together" in message


def test_a_bad_mechanism_names_the_variable_and_hides_no_secret(
    sasl_ssl: pytest.MonkeyPatch,
) -> None:
    sasl_ssl.setenv("STREAMPROC_KAFKA_SASL_MECHANISM", "GSSAPI")
    message = _refusal(sasl_ssl)
    assert "STREAMPROC_KAFKA_SASL_MECHANISM='GSSAPI'" in message
    assert "'SCRAM-SHA-512'" in message
