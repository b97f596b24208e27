"""Adapter: Confluent wire format (magic 0, 4-byte schema id, schemaless Avro) with fastavro."""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import fastavro
from fastavro import schemaless_reader, schemaless_writer

from streamproc.adapters.avro.schemas import SchemaCatalog, SchemaVersion
from streamproc.errors import DecodeError

MAGIC_BYTE = 0
_HEADER = struct.Struct(">BI")
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # an Avro int is 32 bits
_DETAIL_CHARS = 300  # of a reader's error, in a DecodeError's message
_UNREADABLE = object()  # what a body read to when fastavro raised


@dataclass(frozen=True, slots=True)
class _Reading:
    """How records of one writer schema are read: the reader schema (None: as written) and the
    int fields whose range the decoder checks itself."""

    reader: Any
    int_fields: tuple[str, ...]


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
        self._ids: dict[tuple[str, str, int], tuple[int, Any]] = {}
        self._versions: dict[str, int] = {}  # how many versions each schema has
        self._writers: dict[int, WriterSchema] = {}
        self._readings: dict[int, _Reading] = {}

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """Frame `record` with the catalog version of `schema_name` whose field names it fits
        (the newest of them; catalog.writer_for): a producer still on v1 writes v1, one on v2
        writes v2, to the same topic. A schema with one version needs no choice."""
        versions = self._versions.get(schema_name)
        if versions is None:
            versions = self._versions[schema_name] = len(self._catalog.versions(schema_name))
        version = self._catalog.writer_for(schema_name, record.keys()) if versions > 1 else None
        key = (topic, schema_name, version.version if version else 0)
        cached = self._ids.get(key)
        if cached is None:
            schema = version or self._catalog.latest(schema_name)
            cached = (self._registry.id_for(topic, schema), schema.parsed)
            self._ids[key] = cached
        schema_id, parsed = cached
        out = io.BytesIO()
        out.write(_HEADER.pack(MAGIC_BYTE, schema_id))
        schemaless_writer(out, parsed, record)
        return out.getvalue()

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]:
        """Decode a framed value under its writer's schema (by the id in its header),
        resolved to the catalog's latest version of that schema: records of every version
        come out alike, under the newest version's field names (a renamed field by its alias).

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

    def _reading(self, writer: WriterSchema) -> _Reading:
        """The catalog's reader of the writer's schema (None to read as written), and the int
        fields of the schema the record comes out in.

        One reader per schema, whatever version wrote the record (SchemaCatalog.reader): the
        newest version, with the fields newer ones removed kept at their defaults. A renamed
        field comes out under its new name (Avro matches it by the reader's alias), a new one
        at its default for an older writer. The code after the decoder reads the newest
        names only (the pipeline's FieldNames), and never asks which version wrote a record."""
        reading = self._readings.get(writer.schema_id)
        if reading is None:
            reader = None
            if writer.name in self._catalog.names():
                reader = self._catalog.reader(writer.name)
                if fastavro.schema.to_parsing_canonical_form(reader) == writer.canonical:
                    reader = None
            reading = _Reading(reader, _int_fields(reader or writer.parsed))
            self._readings[writer.schema_id] = reading
        return reading

    def _read_body(self, data: bytes, writer: WriterSchema) -> dict[str, Any]:
        reading = self._reading(writer)
        body = io.BytesIO(data)
        body.seek(_HEADER.size)
        record: object = _UNREADABLE
        with contextlib.suppress(Exception):  # whatever fastavro raises is the bytes' verdict
            record = schemaless_reader(body, writer.parsed, reading.reader)
        if record is _UNREADABLE:
            # Unchained: a reader's error may hold the whole value (a UnicodeDecodeError's
            # object), which would then live as long as the rejection.
            raise _explain(data, writer, reading)
        trailing = len(data) - body.tell()
        if trailing:
            raise DecodeError(
                "schema_mismatch",
                f"{trailing} bytes left after a whole {writer.name}: written with another schema",
            )
        if not isinstance(record, dict):
            raise DecodeError("schema_mismatch", f"{writer.name} is not a record schema")
        _check_ints(record, reading.int_fields, writer.name)
        return record


class _BodyEnds(Exception):
    """The strict re-read ran past the end of the body."""


class _CheckedBody(io.BytesIO):
    """A body that refuses a negative length and a read past its end. fastavro's fast path
    reads a negative length as "the rest", and a varint cut short as an IndexError, so only
    this slower re-read of a failed body says whether it was cut or is malformed."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._size = len(data)
        self.seek(_HEADER.size)

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            raise ValueError(f"a negative length ({size}) at byte {self.tell()}")
        left = self._size - self.tell()
        if size > left:
            raise _BodyEnds(f"at byte {self.tell()}: {size:,} wanted, {left} left")
        return super().read(size)


def _explain(data: bytes, writer: WriterSchema, reading: _Reading) -> DecodeError:
    """Why a body failed to read: cut short (truncated), or not this schema at all."""
    detail = "it reads strictly, but not fast"  # the two reads disagree: never seen
    try:
        schemaless_reader(_CheckedBody(data), writer.parsed, reading.reader)
    except _BodyEnds as ends:
        return DecodeError("truncated", f"the Avro body ends early: {ends}")
    except Exception as error:
        # Its str, not its repr: a UnicodeDecodeError's repr quotes the whole value.
        detail = f"{type(error).__name__}: {error}"[:_DETAIL_CHARS]
    return DecodeError("schema_mismatch", f"the body does not match {writer.name}: {detail}")


def _int_fields(schema: Any) -> tuple[str, ...]:
    """The fields of a record schema that are, or may be, an Avro int (nested ones not)."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return ()
    return tuple(field["name"] for field in schema["fields"] if _is_int(field["type"]))


def _is_int(schema: Any) -> bool:
    if isinstance(schema, list):
        return any(_is_int(branch) for branch in schema)
    if isinstance(schema, dict):
        return schema.get("type") == "int"
    return bool(schema == "int")


def _check_ints(record: dict[str, Any], int_fields: tuple[str, ...], name: str) -> None:
    """An int's varint of any length reads without complaint in fastavro; one past 32 bits is
    no Avro int (and the clean record it would reach could not be written)."""
    for field in int_fields:
        value = record.get(field)
        if type(value) is int and not _INT_MIN <= value <= _INT_MAX:
            raise DecodeError(
                "schema_mismatch", f"{field} is {value}, past an Avro int's 32 bits in {name}"
            )
