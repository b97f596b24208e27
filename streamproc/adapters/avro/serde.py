"""Adapter: Confluent wire format (magic 0, 4-byte schema id, schemaless Avro) with fastavro."""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError

from streamproc.adapters.avro.schemas import SchemaCatalog, SchemaVersion
from streamproc.errors import DecodeError

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """The schema a record was written with, as the registry returned it, parsed."""

    schema_id: int
    name: str
    parsed: Any
    canonical: str


class SchemaRegistry(Protocol):
    """Where schema ids come from: the embedded catalog or a Confluent-compatible registry."""

    def id_for(self, topic: str, schema: SchemaVersion) -> int:
        """The id under which `schema` is known for values of `topic` (registering it if new)."""
        ...

    def writer_schema(self, schema_id: int) -> WriterSchema | None:
        """The schema behind an id, or None when the registry does not know the id."""
        ...


class AvroSerde:
    """Encodes and decodes Confluent-framed Avro values; ids and parsed schemas are cached."""

    def __init__(self, catalog: SchemaCatalog, registry: SchemaRegistry) -> None:
        self._catalog = catalog
        self._registry = registry
        self._ids: dict[tuple[str, str], tuple[int, Any]] = {}
        self._writers: dict[int, WriterSchema] = {}
        self._readers: dict[int, Any] = {}

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """Frame `record` with the latest catalog version of `schema_name`."""
        cached = self._ids.get((topic, schema_name))
        if cached is None:
            schema = self._catalog.latest(schema_name)
            cached = (self._registry.id_for(topic, schema), schema.parsed)
            self._ids[(topic, schema_name)] = cached
        schema_id, parsed = cached
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        schemaless_writer(out, parsed, record)
        return out.getvalue()

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]:
        """Decode a framed value, resolved to the catalog's latest version of its schema.

        Raises DecodeError with reason not_wire_format, unknown_schema_id, truncated or
        schema_mismatch.
        """
        if data is None or len(data) < _HEADER.size:
            size = "no value" if data is None else f"{len(data)} bytes"
            raise DecodeError("not_wire_format", f"{size}: shorter than the 5-byte header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise DecodeError("not_wire_format", f"magic byte is {magic}, expected 0")
        writer = self._writer(schema_id)
        if expected_name is not None and writer.name != expected_name:
            raise DecodeError(
                "schema_mismatch",
                f"schema id {schema_id} is {writer.name}, this topic carries {expected_name}",
            )
        return self._read_body(data, writer)

    def _writer(self, schema_id: int) -> WriterSchema:
        writer = self._writers.get(schema_id)
        if writer is None:
            writer = self._registry.writer_schema(schema_id)
            if writer is None:
                raise DecodeError("unknown_schema_id", f"schema id {schema_id} is not registered")
            self._writers[schema_id] = writer
        return writer

    def _reader(self, writer: WriterSchema) -> Any:
        """The newest catalog version of the writer's schema, or None to read as written."""
        if writer.schema_id not in self._readers:
            reader = None
            if writer.name in self._catalog.names():
                latest = self._catalog.latest(writer.name)
                reader = None if latest.canonical == writer.canonical else latest.parsed
            self._readers[writer.schema_id] = reader
        return self._readers[writer.schema_id]

    def _read_body(self, data: bytes, writer: WriterSchema) -> dict[str, Any]:
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        try:
            record = schemaless_reader(body, writer.parsed, self._reader(writer))
        except (EOFError, StopIteration) as exc:
            raise DecodeError("truncated", f"the Avro body ends early ({exc!r})") from exc
        except (SchemaResolutionError, ValueError, IndexError, UnicodeDecodeError) as exc:
            raise DecodeError(
                "schema_mismatch", f"the body does not match {writer.name}: {exc}"
            ) from exc
        trailing = len(data) - body.tell()
        if trailing:
            raise DecodeError(
                "schema_mismatch",
                f"{trailing} bytes left after a whole {writer.name}: written with another schema",
            )
        if not isinstance(record, dict):
            raise DecodeError("schema_mismatch", f"{writer.name} is not a record schema")
        return record
