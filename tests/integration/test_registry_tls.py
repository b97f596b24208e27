"""The Confluent-compatible registry client over https: the CA the settings name is the one its
certificate is checked against. The server is Python's own HTTPS server answering the one
registry call the client makes here (a schema by id); what is under test is the TLS check."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streamproc.adapters.avro.registry import ConfluentRegistry, EmbeddedRegistry, make_registry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.config.settings import Settings
from streamproc.errors import InfraError
from tests.harness.tls import CA, make_ca

SCHEMA = {"type": "record", "name": "Ping", "fields": [{"name": "at", "type": "long"}]}


class _SchemaById(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if not self.path.startswith("/schemas/ids/7"):
            self.send_error(404)
            return
        body = json.dumps({"schema": json.dumps(SCHEMA)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - its signature
        """Quiet: the test reads results, not an access log."""


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return make_ca(tmp_path / "ca")


@pytest.fixture
def https_registry(ca: CA, tmp_path: Path) -> Iterator[str]:
    cert, key = ca.issue(tmp_path / "tls", ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SchemaById)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _registry(url: str, **settings: object) -> EmbeddedRegistry | ConfluentRegistry:
    given = Settings(schema_registry_url=url, **settings)  # type: ignore[arg-type]
    return make_registry(
        SchemaCatalog([]),
        given.schema_registry_url,
        given.schema_registry_secret(),
        given.schema_registry_ca(),
    )


def test_the_registrys_ca_from_the_settings_is_trusted(https_registry: str, ca: CA) -> None:
    registry = _registry(https_registry, schema_registry_ca_location=ca.cert_path)
    found = registry.writer_schema(7)
    assert found is not None
    assert found.name == "Ping"


def test_the_kafka_ca_serves_the_registry_too_when_it_has_none_of_its_own(
    https_registry: str, ca: CA
) -> None:
    registry = _registry(
        https_registry, kafka_security_protocol="SSL", kafka_ssl_ca_location=ca.cert_path
    )
    assert registry.writer_schema(7) is not None


def test_a_registry_certificate_from_an_untrusted_ca_is_refused(
    https_registry: str, tmp_path: Path
) -> None:
    other = make_ca(tmp_path / "other", "another CA")
    registry = _registry(https_registry, schema_registry_ca_location=other.cert_path)
    with pytest.raises(InfraError, match="CERTIFICATE_VERIFY_FAILED"):
        registry.writer_schema(7)
