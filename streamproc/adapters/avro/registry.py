"""Adapter: schema registries, embedded (ids from the schema itself) or Confluent-compatible."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

import fastavro.schema
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streamproc.adapters.avro.schemas import SchemaCatalog, SchemaVersion
from streamproc.adapters.avro.serde import WriterSchema
from streamproc.errors import ConfigError, InfraError


@dataclass(frozen=True, slots=True)
class RegistryVerdict:
    """A registry's answer on whether a schema may join a subject: `compatible` is None when
    the subject holds no version yet (nothing to be compatible with); `messages` say why not."""

    subject: str
    compatible: bool | None
    messages: tuple[str, ...] = ()


class EmbeddedRegistry:
    """Ids derived from each schema's canonical form: stable across restarts and machines.

    No server and no shared state are needed; a producer anywhere computes the same id.
    """

    def __init__(self, catalog: SchemaCatalog) -> None:
        self._by_id: dict[int, WriterSchema] = {}
        for schema in catalog:
            schema_id = schema.fingerprint_id
            clash = self._by_id.get(schema_id)
            if clash is not None and clash.canonical != schema.canonical:
                raise ConfigError(
                    f"{schema.path}: its derived schema id {schema_id} clashes with "
                    f"{clash.name}; use a schema registry (STREAMPROC_SCHEMA_REGISTRY_URL)"
                )
            self._by_id[schema_id] = WriterSchema(
                schema_id, schema.name, schema.parsed, schema.canonical
            )

    def id_for(self, topic: str, schema: SchemaVersion) -> int:
        return schema.fingerprint_id

    def writer_schema(self, schema_id: int) -> WriterSchema | None:
        return self._by_id.get(schema_id)


class ConfluentRegistry:
    """A Confluent-compatible registry through confluent-kafka's SchemaRegistryClient.

    Values are registered under the topic name strategy (`<topic>-value`), as
    confluent-kafka's AvroSerializer does by default, so both sides agree on subjects.
    """

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client

    @classmethod
    def from_url(cls, url: str, config: dict[str, Any] | None = None) -> ConfluentRegistry:
        # new_client returns the in-memory mock for mock:// URLs, a REST client otherwise.
        return cls(SchemaRegistryClient.new_client({"url": url, **(config or {})}))

    def id_for(self, topic: str, schema: SchemaVersion) -> int:
        try:
            schema_id: int = self._client.register_schema(
                f"{topic}-value", Schema(json.dumps(schema.definition), "AVRO")
            )
        except SchemaRegistryError as exc:
            raise InfraError(f"schema registry refused {schema.name} for {topic}: {exc}") from exc
        except Exception as exc:  # the REST client raises its HTTP library's errors as they come
            raise InfraError(f"schema registry unreachable: {exc!r}") from exc
        return schema_id

    def compatibility(self, subject: str, definition: Any) -> RegistryVerdict:
        """The registry's verdict on `definition` (an Avro schema as JSON) against the latest
        version under `subject`, by the subject's own compatibility level (POST
        /compatibility/subjects/{subject}/versions/latest?verbose=true)."""
        body = Schema(json.dumps(definition), "AVRO").to_dict()
        path = f"compatibility/subjects/{quote(subject, safe='')}/versions/latest?verbose=true"
        try:
            # The REST client, not test_compatibility(): that returns is_compatible alone and
            # drops the messages a verbose answer gives, which say what to fix.
            answer = self._client._rest_client.post(path, body=body)
        except SchemaRegistryError as exc:
            if exc.http_status_code == HTTPStatus.NOT_FOUND:  # no such subject or version yet
                return RegistryVerdict(subject, None, (str(exc.error_message),))
            raise InfraError(f"schema registry compatibility check failed: {exc}") from exc
        except Exception as exc:
            raise InfraError(f"schema registry unreachable: {exc!r}") from exc
        if not isinstance(answer, dict) or "is_compatible" not in answer:
            raise InfraError(f"schema registry answered a compatibility check with {answer!r}")
        messages = answer.get("messages") or []
        return RegistryVerdict(
            subject, bool(answer["is_compatible"]), tuple(str(m) for m in messages)
        )

    def writer_schema(self, schema_id: int) -> WriterSchema | None:
        try:
            found = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == HTTPStatus.NOT_FOUND:
                return None
            raise InfraError(f"schema registry lookup of id {schema_id} failed: {exc}") from exc
        except Exception as exc:
            raise InfraError(f"schema registry unreachable: {exc!r}") from exc
        parsed: Any = fastavro.schema.parse_schema(json.loads(found.schema_str or "null"))
        name = parsed.get("name", "") if isinstance(parsed, dict) else str(parsed)
        return WriterSchema(
            schema_id, name, parsed, fastavro.schema.to_parsing_canonical_form(parsed)
        )


def make_registry(
    catalog: SchemaCatalog,
    url: str | None,
    basic_auth: str | None = None,
    ca_location: Path | None = None,
) -> EmbeddedRegistry | ConfluentRegistry:
    """A Confluent-compatible registry when a URL is given, else the embedded one. An https
    registry's certificate is checked against `ca_location` (unset: the client's default
    CA bundle)."""
    if url:
        extra: dict[str, Any] = {"basic.auth.user.info": basic_auth} if basic_auth else {}
        if ca_location is not None and url.startswith("https://"):
            extra["ssl.ca.location"] = str(ca_location)
        return ConfluentRegistry.from_url(url, extra)
    return EmbeddedRegistry(catalog)
