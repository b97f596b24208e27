"""Adapter: the Avro schema catalog of schemas/*.avsc, parsed once, with compatibility checks."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
import fastavro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from streamproc.errors import ConfigError

# schemas/<namespace>.<Name>.v<version>.avsc, e.g. schemas/shop.OrderSubmitted.v1.avsc
_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z_][\w.]*)\.v(?P<version>[1-9]\d*)\.avsc$")


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of one record schema: its source, its parsed forms and its fingerprint."""

    name: str
    version: int
    path: Path
    definition: Mapping[str, Any]
    parsed: Any  # fastavro's parsed schema, ready for schemaless_reader/writer
    canonical: str  # Avro's Parsing Canonical Form: what identifies a schema across machines

    @property
    def fingerprint_id(self) -> int:
        """A stable positive 31-bit id derived from the canonical form (embedded registry)."""
        digest = hashlib.sha256(self.canonical.encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1


@dataclass(frozen=True, slots=True)
class CompatibilityProblem:
    """A newer schema version cannot read data written with an older one."""

    name: str
    reader_version: int
    writer_version: int
    details: str

    def __str__(self) -> str:
        return (
            f"{self.name} v{self.reader_version} cannot read v{self.writer_version}: "
            f"{self.details}. Give new fields a default, keep old fields' types, "
            "or start a new subject (a new topic version)."
        )


class SchemaCatalog:
    """Every schema version in one folder, by full name and version."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        for schema in versions:
            self._by_name.setdefault(schema.name, {})[schema.version] = schema

    @classmethod
    def load(cls, folder: Path) -> SchemaCatalog:
        """Parse every *.avsc file in `folder`; a bad file raises ConfigError naming it."""
        if not folder.is_dir():
            raise ConfigError(
                f"{folder}: the schema folder does not exist; set STREAMPROC_SCHEMAS_DIR"
            )
        versions = [_load_file(path) for path in sorted(folder.glob("*.avsc"))]
        if not versions:
            raise ConfigError(f"{folder}: no *.avsc files; add one per event type and version")
        return cls(versions)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for name in sorted(self._by_name):
            yield from (self._by_name[name][v] for v in sorted(self._by_name[name]))

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def latest(self, name: str) -> SchemaVersion:
        versions = self._versions_of(name)
        return versions[max(versions)]

    def check_compatibility(self) -> list[CompatibilityProblem]:
        """Backward, transitively: each version must read data of every earlier version."""
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        problems = []
        for name in self.names():
            ordered = [self._by_name[name][v] for v in sorted(self._by_name[name])]
            for index, reader in enumerate(ordered):
                reader_schema = avro.schema.parse(json.dumps(reader.definition))
                for writer in ordered[:index]:
                    writer_schema = avro.schema.parse(json.dumps(writer.definition))
                    result = checker.get_compatibility(reader_schema, writer_schema)
                    if result.compatibility is not SchemaCompatibilityType.compatible:
                        kinds = ", ".join(sorted(k.value for k in result.incompatibilities))
                        where = ", ".join(sorted(result.locations))
                        what = ", ".join(sorted(str(m) for m in result.messages))
                        details = f"{kinds} at {where} ({what})"
                        problems.append(
                            CompatibilityProblem(name, reader.version, writer.version, details)
                        )
        return problems

    def _versions_of(self, name: str) -> dict[int, SchemaVersion]:
        if name not in self._by_name:
            raise ConfigError(f"unknown schema {name!r}; known: {', '.join(self.names())}")
        return self._by_name[name]


def _load_file(path: Path) -> SchemaVersion:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise ConfigError(
            f"{path}: name the file <namespace>.<Name>.v<N>.avsc, e.g. shop.OrderSubmitted.v1.avsc"
        )
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from exc
    try:
        parsed = fastavro.schema.parse_schema(definition)
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
    except (fastavro.schema.SchemaParseException, fastavro.schema.UnknownType, KeyError) as exc:
        raise ConfigError(f"{path}: not a valid Avro schema: {exc}") from exc
    name = parsed["name"] if isinstance(parsed, dict) else None
    if name != match["name"]:
        raise ConfigError(
            f"{path}: the file name says {match['name']!r} but the schema's full name is "
            f"{name!r}; make them agree"
        )
    return SchemaVersion(name, int(match["version"]), path, definition, parsed, canonical)
