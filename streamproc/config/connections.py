"""Config: how a client reaches a server: TLS files, and URLs with their password hidden."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

HIDDEN = "***"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The CA a server's certificate must chain to (None: the system's trusted CAs), and the
    client's own certificate and key when the server asks for one (the key may be in the
    certificate's file)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def redact_url(url: str) -> str:
    """`url` with its password replaced by ***, for logs and error messages, whether it is in
    the user part or a `password=` query parameter; the user stays, so a reader can tell
    which account was used."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:{HIDDEN}@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in query):
        hidden = [(name, HIDDEN if name == "password" else value) for name, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    if not parts.netloc:  # unix:///path: urlunsplit would drop the empty host's slashes
        return f"{parts.scheme}://{urlunsplit(parts._replace(scheme=''))}"
    return urlunsplit(parts)


def system_trusts_cas() -> bool:
    """Whether OpenSSL's default CA file or folder (SSL_CERT_FILE, SSL_CERT_DIR, or the system's)
    exists, so a server's certificate can be checked without a CA of our own."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile is not None:
        return True
    return paths.capath is not None and any(Path(paths.capath).iterdir())
