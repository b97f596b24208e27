"""A stand-in for a Confluent-compatible schema registry, in this process, over HTTP on
127.0.0.1: the calls our client makes (register under a subject, a schema by id, the
compatibility check of a candidate against a subject's latest version), with the registry's
default rule, BACKWARD (a new version must read the latest one's records), judged by the avro
library's checker. No real registry runs on this machine (docs/schema-evolution.md says why);
this one tests the client's side of the protocol: requests, answers, errors."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

_REGISTER = re.compile(r"^/subjects/(?P<subject>[^/]+)/versions$")
_BY_ID = re.compile(r"^/schemas/ids/(?P<id>\d+)$")
_COMPATIBILITY = re.compile(r"^/compatibility/subjects/(?P<subject>[^/]+)/versions/latest$")
_SUBJECT_NOT_FOUND = 40401  # the registry's own error codes
_SCHEMA_NOT_FOUND = 40403
_INCOMPATIBLE = 409


class RegistryState:
    """Schemas by id (one id per distinct schema text) and each subject's versions, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}

    def problems(self, subject: str, candidate: str) -> list[str]:
        """Why `candidate` cannot read the subject's latest version (BACKWARD); [] if it can."""
        latest = self.schemas[self.subjects[subject][-1]]
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        result = checker.get_compatibility(avro.schema.parse(candidate), avro.schema.parse(latest))
        if result.compatibility is SchemaCompatibilityType.compatible:
            return []
        kinds = ", ".join(sorted(k.value for k in result.incompatibilities))
        return [f"{kinds}: {', '.join(sorted(map(str, result.messages)))}"]

    def register(self, subject: str, schema: str) -> tuple[int, list[str]]:
        """The schema's id, registered under `subject` unless the subject refuses it."""
        with self.lock:
            known = next((i for i, text in self.schemas.items() if text == schema), None)
            versions = self.subjects.setdefault(subject, [])
            if known is not None and known in versions:
                return known, []
            if versions:
                problems = self.problems(subject, schema)
                if problems:
                    return 0, problems
            schema_id = known if known is not None else len(self.schemas) + 1
            self.schemas[schema_id] = schema
            versions.append(schema_id)
            return schema_id, []


class _Handler(BaseHTTPRequestHandler):
    state: RegistryState  # set on the subclass each server makes

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        path = urlsplit(self.path).path
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or "{}")
        if match := _REGISTER.match(path):
            subject = unquote(match["subject"])
            schema_id, problems = self.state.register(subject, body["schema"])
            if problems:
                message = f"Schema being registered is incompatible: {'; '.join(problems)}"
                self._answer(HTTPStatus.CONFLICT, {"error_code": _INCOMPATIBLE, "message": message})
            else:
                self._answer(HTTPStatus.OK, {"id": schema_id})
        elif match := _COMPATIBILITY.match(path):
            subject = unquote(match["subject"])
            if not self.state.subjects.get(subject):
                message = f"Subject '{subject}' not found."
                error = {"error_code": _SUBJECT_NOT_FOUND, "message": message}
                self._answer(HTTPStatus.NOT_FOUND, error)
                return
            problems = self.state.problems(subject, body["schema"])
            answer: dict[str, Any] = {"is_compatible": not problems}
            if "verbose=true" in self.path:
                answer["messages"] = problems
            self._answer(HTTPStatus.OK, answer)
        else:
            self._answer(HTTPStatus.NOT_FOUND, {"error_code": 404, "message": "no such path"})

    def do_GET(self) -> None:  # noqa: N802
        match = _BY_ID.match(urlsplit(self.path).path)
        text = self.state.schemas.get(int(match["id"])) if match else None
        if text is None:
            error = {"error_code": _SCHEMA_NOT_FOUND, "message": "Schema not found"}
            self._answer(HTTPStatus.NOT_FOUND, error)
        else:
            self._answer(HTTPStatus.OK, {"schema": text})

    def _answer(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - its signature
        """Quiet: the tests read results, not an access log."""


@contextmanager
def registry_server() -> Iterator[tuple[str, RegistryState]]:
    """A registry on a free port of 127.0.0.1: its URL and its state, for as long as the block."""
    state = RegistryState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
