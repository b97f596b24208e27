"""Tool (no I/O): a row checked against an Avro record schema, as JSON values or as CSV text
cells converted to the schema's types, before anything is encoded. Each problem names the
field, what the schema expects there, and what came.

It reads the schema's JSON (a `.avsc` definition): primitives, records, enums, arrays, maps,
fixed, unions and named references. Logical types are checked as their underlying type.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from streamproc.errors import ConfigError

_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_WHOLE = re.compile(r"[+-]?\d+")
_LONG_DIGITS = 21  # a sign and 20 digits: past any long, and far below int()'s own limit
_FLOAT_MAX = 3.4028234663852886e38  # the largest 32-bit float
# A CSV cell of a double: a decimal number, or NaN and the infinities, which Avro allows.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.I)
_SHOWN_CHARS = 40  # of a value quoted in a problem
_SHOWN_SYMBOLS = 8  # of an enum's symbols named in a problem
_COMPLEX = ("record", "array", "map")  # a CSV cell holds these as JSON
# The Avro types a JSON value of each Python type is tried as first, in a union.
_OWN_TYPES: dict[type, tuple[str, ...]] = {
    bool: ("boolean",),
    int: ("int", "long"),
    float: ("float", "double"),
    str: ("string", "enum"),
    type(None): ("null",),
    dict: ("record", "map"),
    list: ("array",),
}
# A CSV cell's candidates in a union, the strictest first: "12" is a number before a string.
_TEXT_RANKS = {"boolean": 0, "int": 1, "long": 1, "float": 2, "double": 2, "enum": 3}

Convert = Callable[[Any, Any, str], Any]  # (value, schema, field path) -> the value to encode


class Mismatch(ValueError):
    """A value that does not fit its schema (or a nested record's problems)."""


class BadRow(ValueError):
    """A row with one problem or more, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class RecordShape:
    """One record schema's fields, ready to check rows against."""

    def __init__(self, definition: Mapping[str, Any]) -> None:
        if definition.get("type") != "record":
            raise ConfigError(f"{definition.get('name')} is not a record schema: rows are records")
        self._definition = definition
        self._names: dict[str, Any] = {}
        self.name = _collect(definition, definition.get("namespace"), self._names)
        self.fields: tuple[str, ...] = tuple(f["name"] for f in definition["fields"])

    def for_keys(self, keys: Collection[str]) -> RecordShape:
        """The shape a row with these keys is checked against: this one (RecordShapes picks
        among versions)."""
        return self

    def required(self) -> list[str]:
        """The fields without a default: a row must give each."""
        return [f["name"] for f in self._definition["fields"] if "default" not in f]

    def describe(self, field: str) -> str:
        """What `field` takes, in a few words."""
        declared = next(f for f in self._definition["fields"] if f["name"] == field)
        return describe(declared["type"], self._names)

    def from_json(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """`row` (parsed JSON) as the record; BadRow with each bad field."""
        return self._row(row, self._json)

    def from_cells(self, cells: Mapping[str, str]) -> dict[str, Any]:
        """`cells` (a CSV row by column) as the record, each cell converted to its field's
        type; an empty cell is null where the field may be null, else an empty string where
        it is text. BadRow with each bad field."""
        return self._row(cells, self._text)

    def _row(self, row: Mapping[str, Any], convert: Convert) -> dict[str, Any]:
        record, problems = self._fields(row, self._definition, convert, "")
        if problems:
            raise BadRow(problems)
        return record

    def _fields(
        self, row: Mapping[str, Any], schema: Mapping[str, Any], convert: Convert, path: str
    ) -> tuple[dict[str, Any], list[str]]:
        """Each field of record `schema` from `row`, a default for one `row` lacks; and the
        problems, one per bad field (and one per key that is no field)."""
        prefix = f"{path}." if path else ""
        names = {f["name"] for f in schema["fields"]}
        owner = f"{path} ({schema['name']})" if path else self.name
        problems = [f"{prefix}{key}: no such field in {owner}" for key in row if key not in names]
        record: dict[str, Any] = {}
        for declared in schema["fields"]:
            name, where = declared["name"], f"{prefix}{declared['name']}"
            try:
                if name in row:
                    record[name] = convert(row[name], declared["type"], where)
                elif "default" in declared:
                    record[name] = declared["default"]
                else:
                    raise _mismatch(where, describe(declared["type"], self._names), "nothing")
            except Mismatch as problem:
                problems.append(str(problem))
        return record, problems

    def _resolve(self, schema: Any) -> Any:
        """A named type's definition for its name; `{"type": {...}}` for what it wraps."""
        if isinstance(schema, str) and schema in self._names:
            return self._names[schema]
        if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
            return self._resolve(schema["type"])
        return schema

    def _json(self, value: Any, schema: Any, path: str) -> Any:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            ordered = sorted(schema, key=lambda branch: _fit(value, self._resolve(branch)))
            return self._union(value, schema, ordered, path, self._json)
        kind = _kind(schema)
        if kind in _PRIMITIVES:
            return _json_primitive(value, kind, path)
        return self._json_complex(value, schema, path)

    def _json_complex(self, value: Any, schema: Mapping[str, Any], path: str) -> Any:
        kind = schema["type"]
        if kind == "record" and isinstance(value, Mapping):
            record, problems = self._fields(value, schema, self._json, path)
            if problems:
                raise Mismatch("; ".join(problems))
            return record
        if kind == "array" and isinstance(value, list):
            items = schema["items"]
            return [self._json(item, items, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind == "map" and isinstance(value, Mapping):
            values = schema["values"]
            return {str(k): self._json(v, values, f"{path}.{k}") for k, v in value.items()}
        if kind == "enum" and value in schema["symbols"]:
            return value
        if kind == "fixed" and isinstance(value, str):
            return _bytes(value, path, schema["size"])
        raise _mismatch(path, describe(schema, self._names), _shown(value))

    def _text(self, text: str, schema: Any, path: str) -> Any:
        schema = self._resolve(schema)
        if isinstance(schema, list):
            if text == "" and "null" in schema:
                return None
            concrete = [branch for branch in schema if branch != "null"]
            ordered = sorted(concrete, key=lambda b: _TEXT_RANKS.get(_kind(self._resolve(b)), 5))
            return self._union(text, schema, ordered, path, self._text)
        kind = _kind(schema)
        if kind in _PRIMITIVES:
            return _text_primitive(text, kind, path)
        if kind in _COMPLEX:
            try:
                parsed = json.loads(text)
            except (ValueError, RecursionError):
                expected = f"{describe(schema, self._names)} in JSON"
                raise _mismatch(path, expected, _shown(text)) from None
            return self._json(parsed, schema, path)
        return self._json(text, schema, path)  # enum, fixed: the text is the value

    def _union(
        self, value: Any, schema: list[Any], tried: list[Any], path: str, convert: Convert
    ) -> Any:
        """The value as the first branch of `tried` it fits."""
        for branch in tried:
            try:
                return convert(value, branch, path)
            except Mismatch:
                continue
        raise _mismatch(path, describe(schema, self._names), _shown(value))


class RecordShapes:
    """Every version of one record schema, each a RecordShape: a row is checked against, and
    then written as, the version its field names fit (`pick`: the schema catalog's
    writer_for), so a file of v1 rows and one of v2 rows are both sent as they are."""

    def __init__(
        self, shapes: Mapping[int, RecordShape], pick: Callable[[Collection[str]], int]
    ) -> None:
        self._shapes = dict(shapes)
        self._pick = pick
        newest = self._shapes[max(self._shapes)]
        self.name = newest.name
        # every version's fields, the newest's first (a --key may name any of them)
        self.fields = tuple(
            dict.fromkeys(
                f for v in sorted(self._shapes, reverse=True) for f in self._shapes[v].fields
            )
        )

    def for_keys(self, keys: Collection[str]) -> RecordShape:
        return self._shapes[self._pick(keys)]


def describe(schema: Any, names: Mapping[str, Any] | None = None) -> str:
    """A schema in a few words: `long`, `null or string`, `array of double`, ..."""
    if isinstance(schema, list):
        return " or ".join(describe(branch, names) for branch in schema)
    if isinstance(schema, str) and names and schema in names:
        schema = names[schema]
    kind = _kind(schema)
    if isinstance(kind, (dict, list)):
        return describe(kind, names)
    words = _DESCRIPTIONS.get(kind)
    return words(schema, names) if words is not None else str(kind)


def _symbols(schema: Mapping[str, Any]) -> str:
    symbols = list(schema["symbols"])
    more = ", ..." if len(symbols) > _SHOWN_SYMBOLS else ""
    return f"one of {', '.join(symbols[:_SHOWN_SYMBOLS])}{more}"


_DESCRIPTIONS: dict[str, Callable[[Any, Mapping[str, Any] | None], str]] = {
    "array": lambda schema, names: f"array of {describe(schema['items'], names)}",
    "map": lambda schema, names: f"map of {describe(schema['values'], names)}",
    "enum": lambda schema, _: _symbols(schema),
    "fixed": lambda schema, _: f"{schema['size']} bytes",
    "record": lambda schema, _: f"a {schema['name']} record",
}


def _collect(schema: Any, namespace: str | None, names: dict[str, Any]) -> str:
    """Every named type in `schema` into `names`, by full name and by short name; returns
    the full name of `schema` itself ("" for a type without a name)."""
    if isinstance(schema, list):
        for branch in schema:
            _collect(branch, namespace, names)
        return ""
    if not isinstance(schema, dict):
        return ""
    kind = schema.get("type")
    full = ""
    if kind in ("record", "enum", "fixed"):
        name = str(schema["name"])
        space = schema.get("namespace", namespace)
        full = name if "." in name or not space else f"{space}.{name}"
        names[full] = names[full.rsplit(".", 1)[-1]] = schema
        namespace = full.rpartition(".")[0] or None
    for declared in schema.get("fields", ()):
        _collect(declared["type"], namespace, names)
    for key in ("items", "values"):
        if key in schema:
            _collect(schema[key], namespace, names)
    if isinstance(kind, (dict, list)):
        _collect(kind, namespace, names)
    return full


def _kind(schema: Any) -> Any:
    return schema if isinstance(schema, str) else schema.get("type")


def _fit(value: Any, branch: Any) -> int:
    """0 for a branch of the value's own JSON type, so that an int tries long before double."""
    return 0 if _kind(branch) in _OWN_TYPES.get(type(value), ()) else 1


def _mismatch(path: str, expected: str, got: str) -> Mismatch:
    return Mismatch(f"{path + ': ' if path else ''}expected {expected}, got {got}")


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _bytes(text: str, path: str, size: int | None = None) -> bytes:
    """Avro's JSON form of bytes: one character per byte (code points 0-255)."""
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError:
        raise _mismatch(path, "bytes (characters U+0000 to U+00FF)", _shown(text)) from None
    if size is not None and len(data) != size:
        raise _mismatch(path, f"{size} bytes", f"{len(data)}")
    return data


def _json_primitive(value: Any, kind: str, path: str) -> Any:
    if kind == "null" and value is None:
        return None
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind in _INT_RANGES and type(value) is int:
        low, high = _INT_RANGES[kind]
        if low <= value <= high:
            return value
        raise _mismatch(path, f"{kind} ({low} to {high})", _shown(value))
    if kind in ("float", "double") and type(value) in (int, float):
        number = float(value)
        if kind == "float" and math.isfinite(number) and abs(number) > _FLOAT_MAX:
            raise _mismatch(path, "float (32 bits)", _shown(value))
        return number
    if kind == "string" and isinstance(value, str):
        if not _utf8(value):  # a lone surrogate (\ud800 in JSON) has no UTF-8
            raise _mismatch(path, "string (UTF-8 text)", _shown(value))
        return value
    if kind == "bytes" and isinstance(value, str):
        return _bytes(value, path)
    raise _mismatch(path, kind, _shown(value))


def _text_primitive(text: str, kind: str, path: str) -> Any:
    cell = text.strip()
    if kind in ("string", "bytes"):
        return _json_primitive(text, kind, path)
    if kind == "null" and text == "":
        return None
    if kind == "boolean" and cell.lower() in ("true", "false"):
        return cell.lower() == "true"
    if kind in _INT_RANGES and _WHOLE.fullmatch(cell) and len(cell) <= _LONG_DIGITS:
        return _json_primitive(int(cell), kind, path)
    if kind in ("float", "double") and _NUMBER.fullmatch(cell):
        return float(cell)
    raise _mismatch(path, kind, _shown(text))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_PRIMITIVES = frozenset(("null", "boolean", "int", "long", "float", "double", "bytes", "string"))
