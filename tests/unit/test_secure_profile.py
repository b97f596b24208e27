"""The fault harness's secure profile: the switch, and the settings a worker gets from it,
read back as the worker reads them (a misnamed variable would be ignored, not refused)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from streamproc.config.settings import load_settings
from tests.harness.secure_profile import (
    PROFILE_VARIABLE,
    SecureAccess,
    connection_env,
    make_secure_access,
    profile_from,
)

KAFKA, REDIS = "127.0.0.1:40001", "127.0.0.1:40002"


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory) -> SecureAccess:
    return make_secure_access(tmp_path_factory.mktemp("secure"), "faults-*")


@pytest.mark.parametrize(
    ("given", "profile"),
    [(None, "plaintext"), ("", "plaintext"), ("plaintext", "plaintext"), (" Secure ", "secure")],
)
def test_the_profile_is_plaintext_unless_secure_is_asked_for(
    given: str | None, profile: str
) -> None:
    environ = {} if given is None else {PROFILE_VARIABLE: given}
    assert profile_from(environ) == profile


def test_an_unknown_profile_is_refused_naming_the_variable_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"STREAMPROC_FAULTS_PROFILE='tls': .*plaintext or secure"):
        profile_from({PROFILE_VARIABLE: "tls"})


def test_a_plaintext_worker_gets_the_two_addresses_and_nothing_else() -> None:
    assert connection_env(KAFKA, REDIS, None) == {
        "STREAMPROC_KAFKA_BOOTSTRAP": KAFKA,
        "STREAMPROC_REDIS_URL": f"redis://{REDIS}/0",
    }


def test_a_secure_worker_logs_in_to_kafka_over_sasl_ssl_and_to_redis_over_tls(
    access: SecureAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in connection_env(KAFKA, REDIS, access).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    kafka = settings.kafka_connection().properties()
    assert kafka["bootstrap.servers"] == KAFKA
    assert kafka["security.protocol"] == "SASL_SSL"
    assert kafka["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (kafka["sasl.username"], kafka["sasl.password"]) == ("streamproc", access.kafka_password)
    assert access.scram_users == {"streamproc": access.kafka_password}  # the broker's user
    assert kafka["ssl.ca.location"] == str(access.tls.ca.cert_path)
    assert settings.redis_url == f"rediss://streamproc:{access.redis_password}@{REDIS}/0"
    tls = settings.redis_tls()
    assert tls is not None and tls.ca == access.tls.ca.cert_path


def test_redis_knows_the_user_from_its_arguments_by_the_password_s_hash(
    access: SecureAccess,
) -> None:
    args = access.redis_args()
    user = args[args.index("--user") :]
    digest = hashlib.sha256(access.redis_password.encode()).hexdigest()
    assert user[:4] == ["--user", "streamproc", "on", f"#{digest}"]
    assert "~faults-*:*" in user and "-@all" in user  # the service's rules, over the pattern
    assert access.redis_password not in " ".join(args)
    assert Path(args[args.index("--tls-cert-file") + 1]) == access.tls.cert
