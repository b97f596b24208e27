"""Adapter: the Avro schema catalog of schemas/*.avsc, parsed once, with compatibility checks.

Versions of one record schema live side by side (shop.OrderSubmitted.v1.avsc, .v2.avsc): a
record is always read as the newest version (serde), and written as the version its field
names fit (writer_for), so producers on an older version keep publishing to the same topic.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterator, Mapping
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
    fields: frozenset[str] = frozenset()  # a record's field names
    required: frozenset[str] = frozenset()  # the fields without a default

    @property
    def fingerprint_id(self) -> int:
        """A stable positive 31-bit id derived from the canonical form (embedded registry)."""
        digest = hashlib.sha256(self.canonical.encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1

    def fits(self, keys: Collection[str]) -> bool:
        """Whether a record with these keys is one of this version: every key a field, and
        every field without a default among the keys."""
        return self.fields.issuperset(keys) and self.required.issubset(keys)

    def misfit(self, keys: Collection[str]) -> int:
        """How far a record with these keys is from this version's fields: the keys it has
        no field for, and its fields without a default that the record lacks (0: it fits)."""
        return len(self.required.difference(keys)) + sum(key not in self.fields for key in keys)


# What each kind of incompatibility avro's checker reports means, for `field`.
_WHAT = {
    "reader_field_missing_default_value": "{field} has no default, and v{writer} records lack it",
    "type_mismatch": "{field} changed its type ({details})",
}
# What to do about each kind of incompatibility avro's checker reports, for `field`.
_ADVICE = {
    "reader_field_missing_default_value": (
        'give {field} a default (an optional field: type ["null", ...] with "default": null)'
    ),
    "type_mismatch": (
        "keep {field}'s type as the older version wrote it, or one Avro promotes it to (int to "
        "long, float or double; long to float or double; float to double; string and bytes "
        "either way); a value of another type is a new field, with a default"
    ),
    "name_mismatch": "keep the record's full name, or list the old one in its aliases",
    "missing_enum_symbols": "keep every enum symbol older versions wrote, or give the enum a "
    "default symbol",
    "fixed_size_mismatch": "keep {field}'s fixed size",
}


@dataclass(frozen=True, slots=True)
class CompatibilityProblem:
    """A newer schema version cannot read data written with an older one."""

    name: str
    reader_version: int
    writer_version: int
    details: str
    field: str | None = None  # the reader's field at fault, dotted when nested
    kind: str = ""  # avro's SchemaIncompatibilityType value
    path: Path | None = None  # the reader version's file

    def __str__(self) -> str:
        where = f" ({self.path})" if self.path else ""
        field = self.field or "a field"
        what = _WHAT.get(self.kind, "{details}").format(
            field=field, writer=self.writer_version, details=self.details
        )
        advice = _ADVICE.get(self.kind, "make it read what the older version wrote")
        return (
            f"{self.name} v{self.reader_version}{where} cannot read records written with "
            f"v{self.writer_version}: {what} [{self.kind or 'incompatible'}]. To fix: "
            f"{advice.format(field=field)}; or publish the change as a new record type on a "
            "new topic (a new subject), since this one cannot hold both."
        )


class SchemaCatalog:
    """Every schema version in one folder, by full name and version."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_name: dict[str, dict[int, SchemaVersion]] = {}
        for schema in versions:
            self._by_name.setdefault(schema.name, {})[schema.version] = schema
        self._readers: dict[str, Any] = {}
        self._newest_first = {
            name: tuple(by_version[v] for v in sorted(by_version, reverse=True))
            for name, by_version in self._by_name.items()
        }

    @classmethod
    def load(cls, folder: Path) -> SchemaCatalog:
        """Parse every *.avsc file in `folder`; a bad file raises ConfigError naming it."""
        if not folder.is_dir():
            raise ConfigError(
                f"{folder}: the schema folder does not exist; set STREAMPROC_SCHEMAS_DIR"
            )
        versions = [load_schema_file(path) for path in sorted(folder.glob("*.avsc"))]
        if not versions:
            raise ConfigError(f"{folder}: no *.avsc files; add one per event type and version")
        return cls(versions)

    def __iter__(self) -> Iterator[SchemaVersion]:
        for name in sorted(self._by_name):
            yield from self.versions(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def latest(self, name: str) -> SchemaVersion:
        versions = self._versions_of(name)
        return versions[max(versions)]

    def versions(self, name: str) -> list[SchemaVersion]:
        """Every version of `name`, the oldest first."""
        versions = self._versions_of(name)
        return [versions[v] for v in sorted(versions)]

    def reader(self, name: str) -> Any:
        """The schema every record of `name` is read into (fastavro-parsed): the newest
        version, with each field a newer version removed kept at its default. So a record
        is read as its writer wrote it: a replay of v1 records reads what the live run read
        before v2 existed (a removed field's value included), and a v2 record reads the
        removed field at its default, as if its producer had left it out."""
        if name not in self._readers:
            self._readers[name] = _reader_of(self.versions(name))
        return self._readers[name]

    def writer_for(self, name: str, keys: Collection[str]) -> SchemaVersion:
        """The version a record with these keys is written with: the newest whose field names
        it fits (no key without a field, no field without a default missing), else the closest
        (a record with a problem is then told of it against the version it was meant for)."""
        versions = self._newest_first.get(name) or tuple(self._versions_of(name).values())
        if len(versions) == 1:
            return versions[0]
        for version in versions:  # the usual case, a record of one version, at set speed
            if version.fits(keys):
                return version
        return min(versions, key=lambda version: version.misfit(keys))

    def check_compatibility(self) -> list[CompatibilityProblem]:
        """Backward, transitively: each version must read data of every earlier version."""
        problems = []
        for name in self.names():
            ordered = self.versions(name)
            for index, reader in enumerate(ordered):
                problems += _check_reader(reader, ordered[:index])
        return problems

    def check_candidate(self, candidate: SchemaVersion) -> list[CompatibilityProblem]:
        """Whether `candidate`, added to this catalog, could read every earlier version of its
        schema (a candidate for a new schema has none to read). ConfigError when a different
        schema has its version already: a version, once published, never changes."""
        known = self._by_name.get(candidate.name, {})
        present = known.get(candidate.version)
        if present is not None and present.canonical != candidate.canonical:
            raise ConfigError(
                f"{candidate.path}: {candidate.name} v{candidate.version} exists already "
                f"({present.path}) and differs; name the candidate v{max(known) + 1}"
            )
        return _check_reader(candidate, [known[v] for v in sorted(known) if v < candidate.version])

    def _versions_of(self, name: str) -> dict[int, SchemaVersion]:
        if name not in self._by_name:
            raise ConfigError(f"unknown schema {name!r}; known: {', '.join(self.names())}")
        return self._by_name[name]


def _check_reader(
    reader: SchemaVersion, writers: list[SchemaVersion]
) -> list[CompatibilityProblem]:
    """`reader` against each of `writers`: a problem for each it cannot read."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    reader_schema = avro.schema.parse(json.dumps(reader.definition))
    problems = []
    for writer in writers:
        writer_schema = avro.schema.parse(json.dumps(writer.definition))
        result = checker.get_compatibility(reader_schema, writer_schema)
        if result.compatibility is SchemaCompatibilityType.compatible:
            continue
        kinds = sorted(k.value for k in result.incompatibilities)
        fields = {_field_at(reader.definition, where) for where in result.locations}
        problems.append(
            CompatibilityProblem(
                reader.name,
                reader.version,
                writer.version,
                ", ".join(sorted(str(m) for m in result.messages)),
                ", ".join(sorted(f for f in fields if f)) or None,
                ", ".join(kinds),
                reader.path,
            )
        )
    return problems


def _field_at(definition: Mapping[str, Any], location: str) -> str | None:
    """The dotted field name behind one of avro's locations (`/fields/9/type`), or None."""
    node: Any = definition
    names: list[str] = []
    in_fields = False
    for step in filter(None, location.split("/")):
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
            if in_fields and isinstance(node, dict):
                names.append(str(node.get("name")))
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return None
        in_fields = step == "fields"
    return ".".join(names) or None


def _reader_of(versions: list[SchemaVersion]) -> Any:
    """The newest of `versions`, plus the fields older ones had that it dropped (not renamed:
    a field matched by an alias is there), those with a default only."""
    newest = versions[-1]
    fields = newest.definition.get("fields") if isinstance(newest.definition, dict) else None
    if not fields or len(versions) == 1:
        return newest.parsed
    known = {f["name"] for f in fields} | {a for f in fields for a in f.get("aliases", ())}
    dropped: dict[str, Any] = {}
    for older in reversed(versions[:-1]):
        for field in older.definition.get("fields", ()):
            if field["name"] not in known and field["name"] not in dropped and "default" in field:
                dropped[field["name"]] = field
    if not dropped:
        return newest.parsed
    return fastavro.schema.parse_schema(
        {**newest.definition, "fields": [*fields, *dropped.values()]}
    )


def load_schema_file(path: Path) -> SchemaVersion:
    """One *.avsc file, named <namespace>.<Name>.v<N>.avsc; ConfigError naming what is wrong."""
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
    fields = definition.get("fields", []) if isinstance(definition, dict) else []
    return SchemaVersion(
        name,
        int(match["version"]),
        path,
        definition,
        parsed,
        canonical,
        frozenset(field["name"] for field in fields),
        frozenset(field["name"] for field in fields if "default" not in field),
    )
