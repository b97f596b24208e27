"""Certificates for tests: a CA of their own and the certificates it signs, as PEM files.

Each certificate is good for both ends of a connection (server and client authentication)
and names the hosts given: DNS names, or IP addresses such as 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=2)


@dataclass(frozen=True)
class CA:
    """A certificate authority: its certificate on disk (what clients and servers trust) and
    the key it signs with."""

    cert_path: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def issue(self, folder: Path, hosts: Sequence[str]) -> tuple[Path, Path]:
        """A certificate for `hosts` (the first is its common name) and its key, written to
        `folder` as cert.pem and key.pem; their paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = [_general_name(host) for host in hosts]
        builder = (
            _builder(hosts[0], key)
            .issuer_name(self.cert.subject)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        cert = builder.sign(self.key, hashes.SHA256())
        return _write(folder, "cert.pem", cert), _write_key(folder, "key.pem", key)


def make_ca(folder: Path, name: str = "streamproc test CA") -> CA:
    """A new self-signed CA, its certificate written to `folder`/ca.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, key)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return CA(_write(folder, "ca.pem", cert), cert, key)


def _builder(common_name: str, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a clock a little behind
        .not_valid_after(now + VALID_FOR)
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(folder: Path, name: str, cert: x509.Certificate) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(folder: Path, name: str, key: ec.EllipticCurvePrivateKey) -> Path:
    path = folder / name
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def redis_tls_args(ca: CA, cert: Path, key: Path, auth_clients: str = "optional") -> list[str]:
    """redis-server's TLS options: its certificate and key, the CA its clients' certificates
    must chain to, and whether clients must show one (yes, optional or no)."""
    return [
        "--tls-cert-file", str(cert),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca.cert_path),
        "--tls-auth-clients", auth_clients,
    ]  # fmt: skip
