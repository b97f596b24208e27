"""Certificates for TLS tests, made in the test's own folder: a CA, and server certificates it
signs for the names a client dials (127.0.0.1, localhost). PEM files, which Kafka, Redis,
OpenSSL and Python's ssl module all read.

    ca = make_ca(tmp_path)
    cert, key = ca.issue(tmp_path, ["127.0.0.1", "localhost"])
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

_VALID = datetime.timedelta(days=2)  # a test's certificates need not outlive it
_SKEW = datetime.timedelta(minutes=5)  # valid a little before now: clocks differ


@dataclass(frozen=True)
class CA:
    """A certificate authority: `cert_path` is the file clients trust."""

    name: str
    cert_path: Path
    key_path: Path

    def issue(self, folder: Path, hosts: Sequence[str], name: str = "server") -> tuple[Path, Path]:
        """A certificate for `hosts` (IP addresses or DNS names) signed by this CA, for
        servers and clients alike; returns (certificate path, private key path), PEM, the
        key unencrypted (PKCS#8)."""
        ca_cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        ca_key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.key_path}: not the EC key make_ca writes")
        key = ec.generate_private_key(ec.SECP256R1())
        names = [_general_name(host) for host in hosts]
        cert = (
            _builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), key)
            .issuer_name(ca_cert.subject)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return _write(folder, name, cert, key)


@dataclass(frozen=True)
class ServerTls:
    """A new CA and the certificate it signed for a server on this machine (127.0.0.1,
    localhost), with the PEM keystore Kafka reads (the key, then the certificate)."""

    ca: CA
    cert: Path
    key: Path
    keystore: Path


def make_server_tls(folder: Path) -> ServerTls:
    """A CA in `folder`/ca and a server certificate in `folder`/tls, for Kafka and Redis alike."""
    ca = make_ca(folder / "ca")
    cert, key = ca.issue(folder / "tls", ["127.0.0.1", "localhost"])
    keystore = folder / "tls" / "server-keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text())
    return ServerTls(ca, cert, key, keystore)


def make_ca(folder: Path, name: str = "streamproc test CA") -> CA:
    """A new self-signed CA in `folder` (ca.pem, ca.key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, key)
        .issuer_name(subject)
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
    cert_path, key_path = _write(folder, "ca", cert, key)
    return CA(name, cert_path, key_path)


def _builder(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + _VALID)
    )


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def redis_tls_args(ca: CA, cert: Path, key: Path, auth_clients: str = "optional") -> list[str]:
    """redis-server's TLS options: its certificate and key, the CA its clients' certificates
    must chain to, and whether clients must show one (yes, optional or no)."""
    return [
        "--tls-cert-file", str(cert),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca.cert_path),
        "--tls-auth-clients", auth_clients,
    ]  # fmt: skip
