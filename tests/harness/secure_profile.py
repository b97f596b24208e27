"""The secure profile (issue 16): workers reach Kafka over SASL_SSL as a SCRAM-SHA-512 user
and Redis over TLS (rediss://) as an ACL user held to the service's commands and to keys
under its namespaces; one test CA signs both servers' certificates. What the harness itself
uses (the load's producer, the oracles) stays plaintext: the profile changes the workers'
way in, not what is measured about them.

    access = make_secure_access(folder, keys_under="faults-*")
    env = connection_env(kafka_bootstrap, redis_address, access)  # STREAMPROC_* for a worker
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.harness.redis_acl import service_acl_rules
from tests.harness.sasl_broker import MECHANISM
from tests.harness.tls import ServerTls, make_server_tls, redis_tls_args

Profile = Literal["plaintext", "secure"]
PROFILES: tuple[Profile, ...] = ("plaintext", "secure")
PROFILE_VARIABLE = "STREAMPROC_FAULTS_PROFILE"
KAFKA_USER = "streamproc"
REDIS_USER = "streamproc"


def profile_from(environ: Mapping[str, str]) -> Profile:
    """STREAMPROC_FAULTS_PROFILE: plaintext (unset or empty too) or secure."""
    text = environ.get(PROFILE_VARIABLE, "").strip().lower() or "plaintext"
    for profile in PROFILES:
        if text == profile:
            return profile
    allowed = " or ".join(PROFILES)
    raise ValueError(f"{PROFILE_VARIABLE}={text!r}: expected {allowed}")


@dataclass(frozen=True)
class SecureAccess:
    """The servers' TLS files and the two users the workers log in as; `keys_under` is the
    namespace pattern the Redis user's keys must be under (a glob: "faults-*")."""

    tls: ServerTls
    kafka_password: str
    redis_password: str
    keys_under: str

    @property
    def scram_users(self) -> dict[str, str]:
        """For BrokerConfig.scram_users: made at format time, kept in the broker's data."""
        return {KAFKA_USER: self.kafka_password}

    def redis_args(self) -> list[str]:
        """redis-server's options: TLS (client certificates optional), and the service's user
        as a startup argument, so a restarted server has it again. The password is given as
        its SHA-256 (`#…`): it never shows in the process list."""
        digest = hashlib.sha256(self.redis_password.encode()).hexdigest()
        user = ["--user", REDIS_USER, "on", f"#{digest}", *service_acl_rules(self.keys_under)]
        return [*redis_tls_args(self.tls.ca, self.tls.cert, self.tls.key), *user]

    def redis_url(self, address: str) -> str:
        return f"rediss://{REDIS_USER}:{self.redis_password}@{address}/0"

    def credentials_env(self) -> dict[str, str]:
        """A worker's STREAMPROC_* settings for the users and the CA (not the addresses)."""
        ca = str(self.tls.ca.cert_path)
        return {
            "STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMPROC_KAFKA_SASL_MECHANISM": MECHANISM,
            "STREAMPROC_KAFKA_SASL_USERNAME": KAFKA_USER,
            "STREAMPROC_KAFKA_SASL_PASSWORD": self.kafka_password,
            "STREAMPROC_KAFKA_SSL_CA_LOCATION": ca,
            "STREAMPROC_REDIS_TLS_CA": ca,
        }


def make_secure_access(folder: Path, keys_under: str) -> SecureAccess:
    """A new CA and server certificate in `folder`, and new passwords."""
    return SecureAccess(
        make_server_tls(folder), secrets.token_hex(16), secrets.token_hex(16), keys_under
    )


def connection_env(
    kafka_bootstrap: str, redis_address: str, secure: SecureAccess | None
) -> dict[str, str]:
    """Where a worker finds Kafka and Redis (host:port each), and with `secure` how it logs
    in; without, exactly the two plaintext settings."""
    if secure is None:
        return {
            "STREAMPROC_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "STREAMPROC_REDIS_URL": f"redis://{redis_address}/0",
        }
    return {
        "STREAMPROC_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAMPROC_REDIS_URL": secure.redis_url(redis_address),
        **secure.credentials_env(),
    }
