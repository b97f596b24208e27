"""Config: how every Kafka client of streamproc reaches the brokers: the bootstrap list and the
security properties (TLS, SASL) librdkafka is given, as one frozen value passed down."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
EndpointCheck = Literal["https", "none"]


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """The brokers and how to talk to them. PLAINTEXT (the local stack) needs only the
    bootstrap list; SSL adds a CA (and a client certificate for mutual TLS); SASL_SSL adds
    a user and a password over TLS. The password is a SecretStr: it shows in no repr, str or
    message, only in the properties handed to librdkafka."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = None  # unset: librdkafka's default CA store
    ssl_certificate_location: Path | None = None  # mutual TLS: this client's certificate
    ssl_key_location: Path | None = None  # and its private key
    ssl_endpoint_identification: EndpointCheck = "https"  # the broker's name in its certificate

    @property
    def tls(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    def properties(self) -> dict[str, str]:
        """Librdkafka's configuration properties for this connection."""
        properties = {
            "bootstrap.servers": self.bootstrap,
            "security.protocol": self.security_protocol,
        }
        if self.tls:
            properties["ssl.endpoint.identification.algorithm"] = self.ssl_endpoint_identification
            files = {
                "ssl.ca.location": self.ssl_ca_location,
                "ssl.certificate.location": self.ssl_certificate_location,
                "ssl.key.location": self.ssl_key_location,
            }
            properties.update({key: str(path) for key, path in files.items() if path is not None})
        if self.security_protocol == "SASL_SSL":
            password = self.sasl_password.get_secret_value() if self.sasl_password else ""
            properties["sasl.mechanism"] = self.sasl_mechanism
            properties["sasl.username"] = self.sasl_username or ""
            properties["sasl.password"] = password
        return properties

    def __str__(self) -> str:
        """For messages: where, and how, never the password."""
        if self.security_protocol == "SASL_SSL":
            how = f"SASL_SSL, {self.sasl_mechanism} as {self.sasl_username}"
        else:
            how = self.security_protocol
        return f"{self.bootstrap} ({how})"
