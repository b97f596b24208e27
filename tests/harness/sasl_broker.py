"""A test broker with a SASL_SSL listener (SCRAM-SHA-512 over TLS, its certificate signed by a
CA made in the test's folder) beside its PLAINTEXT one, which the controller, the broker itself
and a test's own administration keep using. No authorizer: a SCRAM user may do anything.

    broker = SaslSslBroker(tmp_path, users={"streamproc": "a password"}).start()
    kafka = broker.connection("streamproc", "a password")  # a KafkaConnection over SASL_SSL
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from streamproc.config.kafka import KafkaConnection
from tests.harness.processes import READY_TIMEOUT_S, BrokerConfig, KafkaBroker, free_port
from tests.harness.tls import CA, ServerTls, make_server_tls

MECHANISM: Final = "SCRAM-SHA-512"


class SaslSslBroker(KafkaBroker):
    """A KafkaBroker that also serves SASL_SSL on `sasl_port`, for `users` (name -> password,
    made at format time). `reauth_ms` is how long a client's authentication holds before the
    broker has it authenticate again (connections.max.reauth.ms), so a user deleted at run
    time is shut out within it (0: never). `tls` is the CA and the certificate it serves
    (new ones in `folder` unless given: a test may share them with its Redis)."""

    def __init__(
        self,
        folder: Path,
        users: Mapping[str, str],
        reauth_ms: int = 5_000,
        tls: ServerTls | None = None,
    ) -> None:
        super().__init__(folder, BrokerConfig(scram_users=dict(users)))
        self.sasl_port = free_port()
        self.tls = tls or make_server_tls(folder)
        self.ca = self.tls.ca
        self.config.overrides = self._listeners() | {
            **sasl_ssl_properties("SASL_SSL", self.tls.keystore),
            "connections.max.reauth.ms": str(reauth_ms),
        }

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> SaslSslBroker:
        super().start(timeout_s)
        return self

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def connection(self, user: str, password: str, ca: CA | None = None) -> KafkaConnection:
        """How a client reaches the SASL_SSL listener as `user`, trusting `ca` (this broker's
        own CA unless another is given)."""
        return KafkaConnection(
            self.sasl_bootstrap,
            security_protocol="SASL_SSL",
            sasl_mechanism=MECHANISM,
            sasl_username=user,
            sasl_password=SecretStr(password),
            ssl_ca_location=(ca or self.ca).cert_path,
        )

    def _listeners(self) -> dict[str, str]:
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port},"
            f"SASL_SSL://127.0.0.1:{self.sasl_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"SASL_SSL://127.0.0.1:{self.sasl_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
            "SASL_SSL:SASL_SSL",
        }


def sasl_ssl_properties(listener: str, keystore: Path) -> dict[str, str]:
    """The broker properties that make `listener` (a listener name mapped to SASL_SSL) take
    SCRAM-SHA-512 logins over TLS, with `keystore` (PEM: key, then certificate chain)."""
    prefix = f"listener.name.{listener.lower()}"
    return {
        "sasl.enabled.mechanisms": MECHANISM,
        f"{prefix}.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{prefix}.ssl.keystore.type": "PEM",
        f"{prefix}.ssl.keystore.location": str(keystore),
    }
