"""Adapter: a record checked against its Avro schema before it is encoded, every problem with
the field's path, what the schema expects there and what the record holds.

fastavro's writer stops at the first problem, in its own words, and writes some wrong values
without a word: True into an int, 2**40 into an int (which no reader of ours takes back), and a
field the schema does not have is dropped.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_SHOWN_CHARS = 40  # of a value, in a problem's text
# What fastavro's writer converts for a logical type, besides the type underneath.
_LOGICAL: dict[str, tuple[type, ...]] = {
    "timestamp-millis": (datetime.datetime,),
    "timestamp-micros": (datetime.datetime,),
    "local-timestamp-millis": (datetime.datetime,),
    "local-timestamp-micros": (datetime.datetime,),
    "date": (datetime.date,),
    "time-millis": (datetime.time,),
    "time-micros": (datetime.time,),
    "decimal": (decimal.Decimal,),
    "uuid": (uuid.UUID,),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One field of a record that its schema does not allow."""

    path: str  # e.g. items, lines[2].sku, attributes['colour']
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.got}"


def problems(record: object, parsed: Any) -> list[Problem]:
    """What keeps `record` from being written with `parsed` (a record schema as fastavro's
    parse_schema returns it); empty when it is fine."""
    return _Check(parsed.get("__named_schemas", {})).value(record, parsed, "")


def _integer(bits: int) -> Callable[[object], bool]:
    limit = 2 ** (bits - 1)
    # a bool is a Python int, never an Avro one
    return lambda value: type(value) is int and -limit <= value < limit


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_PRIMITIVES: dict[str, Callable[[object], bool]] = {
    "null": lambda value: value is None,
    "boolean": lambda value: isinstance(value, bool),
    "int": _integer(32),
    "long": _integer(64),
    "float": _number,
    "double": _number,
    "string": lambda value: isinstance(value, str),
    "bytes": lambda value: isinstance(value, bytes | bytearray),
}
_RANGES = {"int": "a 32-bit integer", "long": "a 64-bit integer"}


class _Check:
    """The walk of one schema, with the named types it defines (fastavro's parsed form names a
    type in full where it is used again)."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self._named = named
        self._complex: dict[str, Callable[[object, Mapping[str, Any], str], list[Problem]]] = {
            "record": self._record,
            "error": self._record,
            "enum": self._enum,
            "array": self._array,
            "map": self._map,
            "fixed": self._fixed,
        }

    def value(self, value: object, schema: Any, path: str) -> list[Problem]:
        schema = self._resolved(schema)
        if isinstance(schema, list):
            return self._union(value, schema, path)
        if isinstance(schema, str):
            return self._primitive(value, schema, path)
        if isinstance(value, _LOGICAL.get(schema.get("logicalType", ""), ())):
            return []
        check = self._complex.get(schema["type"])
        if check is None:  # a primitive written as {"type": "long", ...}
            return self.value(value, schema["type"], path)
        return check(value, schema, path)

    def _resolved(self, schema: Any) -> Any:
        return self._named.get(schema, schema) if isinstance(schema, str) else schema

    def _primitive(self, value: object, kind: str, path: str) -> list[Problem]:
        if _PRIMITIVES[kind](value):
            return []
        if kind in _RANGES and type(value) is int:
            return [Problem(path, f"{kind} ({_RANGES[kind]})", f"{value}, out of its range")]
        return [Problem(path, kind, _shown(value))]

    def _record(self, value: object, schema: Mapping[str, Any], path: str) -> list[Problem]:
        name = schema["name"]
        if not isinstance(value, Mapping):
            return [Problem(path or name, f"a record ({name})", _shown(value))]
        found = []
        fields = {field["name"]: field for field in schema["fields"]}
        for field_name, field in fields.items():
            where = f"{path}.{field_name}" if path else field_name
            if field_name in value:
                found += self.value(value[field_name], field["type"], where)
            elif "default" not in field:
                missing = "nothing (the field is missing and has no default)"
                found.append(Problem(where, _described(field["type"]), missing))
        for extra in sorted(value.keys() - fields.keys(), key=str):
            where = f"{path}.{extra}" if path else str(extra)
            expected = f"no such field (not in {name})"
            found.append(Problem(where, expected, _shown(value[extra])))
        return found

    def _union(self, value: object, branches: list[Any], path: str) -> list[Problem]:
        found = [self.value(value, branch, path) for branch in branches]
        if any(not branch for branch in found):
            return []
        # A mapping against one record branch, say, is told what is wrong inside it.
        alike = [
            branch_problems
            for branch_problems, branch in zip(found, branches, strict=True)
            if _alike(value, self._resolved(branch))
        ]
        if len(alike) == 1:
            return alike[0]
        return [Problem(path, _described(branches), _shown(value))]

    def _enum(self, value: object, schema: Mapping[str, Any], path: str) -> list[Problem]:
        symbols = schema["symbols"]
        if isinstance(value, str) and value in symbols:
            return []
        return [Problem(path, f"one of {', '.join(symbols)} ({schema['name']})", _shown(value))]

    def _array(self, value: object, schema: Mapping[str, Any], path: str) -> list[Problem]:
        if not isinstance(value, list | tuple):
            return [Problem(path, _described(schema), _shown(value))]
        found = []
        for index, item in enumerate(value):
            found += self.value(item, schema["items"], f"{path}[{index}]")
        return found

    def _map(self, value: object, schema: Mapping[str, Any], path: str) -> list[Problem]:
        if not isinstance(value, Mapping):
            return [Problem(path, _described(schema), _shown(value))]
        found = []
        for key, item in value.items():
            where = f"{path}[{key!r}]"
            if not isinstance(key, str):
                found.append(Problem(where, "a string key", _shown(key)))
            found += self.value(item, schema["values"], where)
        return found

    def _fixed(self, value: object, schema: Mapping[str, Any], path: str) -> list[Problem]:
        size = schema["size"]
        if isinstance(value, bytes | bytearray) and len(value) == size:
            return []
        return [Problem(path, f"{size} bytes ({schema['name']})", _shown(value))]


def _alike(value: object, schema: Any) -> bool:
    """Whether `schema` is the kind a container `value` is meant for: a record or a map for a
    mapping, an array for a list."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(value, Mapping):
        return kind in ("record", "error", "map")
    return isinstance(value, list | tuple) and kind == "array"


def _described(schema: Any) -> str:
    if isinstance(schema, list):
        return " or ".join(_described(branch) for branch in schema)
    if not isinstance(schema, dict):
        return str(schema)
    if schema["type"] == "array":
        return f"an array of {_described(schema['items'])}"
    if schema["type"] == "map":
        return f"a map of {_described(schema['values'])}"
    return str(schema.get("name") or schema["type"])


def _shown(value: object) -> str:
    text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 1] + "…"
    return f"{type(value).__name__} {text}"
