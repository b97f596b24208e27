"""Tool (no I/O): the rows of a JSON-lines or CSV file, from the file's lines as bytes, each
checked against a record schema and numbered by the line it starts on.

A bad row is a row with its problem, and the rows after it are still read; a CSV header that
does not fit the schema is the whole file's problem (BadFile)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from streamproc.tools.conform import BadRow, RecordShape, RecordShapes

Format = Literal["jsonl", "csv"]
FORMATS: dict[str, Format] = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
_NOT_UTF8 = "not UTF-8 text"


@dataclass(frozen=True, slots=True)
class Row:
    """A row and the line it starts on: the record to encode, or what is wrong with it."""

    line: int
    record: dict[str, Any] | None = None
    problem: str | None = None


class BadFile(ValueError):
    """A problem of the whole file (a CSV header), at `line`."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line


Shape = RecordShape | RecordShapes


def checked_rows(lines: Iterable[bytes], kind: Format, shape: Shape) -> Iterator[Row]:
    """Every row of the file whose `lines` are given, blank lines left out. With several
    versions of the schema, a JSON row is checked against the version its keys fit, and a CSV
    file against the one its header fits."""
    return _csv_rows(lines, shape) if kind == "csv" else _json_rows(lines, shape)


def _json_rows(lines: Iterable[bytes], shape: Shape) -> Iterator[Row]:
    bad: set[int] = set()
    for number, text in enumerate(_decoded(lines, bad), start=1):
        if not text.strip():
            continue
        if number in bad:
            yield Row(number, problem=_NOT_UTF8)
            continue
        try:
            value = json.loads(text.rstrip("\r\n"))  # the column of an error is on this line
        except (ValueError, RecursionError) as exc:  # a number of 5,000 digits, [[[[...
            yield Row(number, problem=f"not JSON: {_why(exc)}")
            continue
        if not isinstance(value, dict):
            yield Row(number, problem=f"expected a JSON object, got {type(value).__name__}")
            continue
        yield _checked(number, shape.for_keys(value.keys()).from_json, value)


def _csv_rows(lines: Iterable[bytes], shapes: Shape) -> Iterator[Row]:
    bad: set[int] = set()
    reader = csv.reader(_decoded(lines, bad))
    header = next((cells for cells in reader if cells), None)  # blank lines before it too
    if header is None:
        return
    shape = shapes.for_keys([cell.strip() for cell in header])
    columns = _columns(header, shape, reader.line_num)
    end = reader.line_num
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = reader.line_num
            yield Row(start, problem=f"not CSV: {exc}")
            continue
        end = reader.line_num
        if not cells:  # a blank line
            continue
        if bad.intersection(range(start, end + 1)):
            yield Row(start, problem=_NOT_UTF8)
        elif len(cells) != len(columns):
            yield Row(start, problem=f"{len(cells)} cells, the header has {len(columns)}")
        else:
            yield _checked(start, shape.from_cells, dict(zip(columns, cells, strict=True)))


def _columns(header: list[str], shape: RecordShape, line: int) -> list[str]:
    """The header's column names; BadFile unless each is a field, once, and every field
    without a default has one."""
    columns = [cell.strip() for cell in header]
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    unknown = [name for name in columns if name not in shape.fields]
    missing = [name for name in shape.required() if name not in columns]
    problems = []
    if repeated:
        problems.append(f"columns named twice: {', '.join(repeated)}")
    if unknown:
        problems.append(
            f"columns that are no field of {shape.name}: {', '.join(map(repr, unknown))} "
            f"(its fields: {', '.join(shape.fields)})"
        )
    if missing:
        needed = ", ".join(f"{name} ({shape.describe(name)})" for name in missing)
        problems.append(f"no column for the required {needed}")
    if problems:
        raise BadFile(line, "; ".join(problems))
    return columns


def _why(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at column {error.colno}"
    return "nested too deeply" if isinstance(error, RecursionError) else str(error)


def _decoded(lines: Iterable[bytes], bad: set[int]) -> Iterator[str]:
    """Each line as text; the number of one that is not UTF-8 goes into `bad` (it is read
    with replacement characters, so a CSV row around it still ends where it should)."""
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad.add(number)
            text = raw.decode("utf-8", errors="replace")
        yield text.removeprefix("\ufeff") if number == 1 else text  # a spreadsheet's BOM


def _checked(
    line: int, convert: Callable[[Mapping[str, Any]], dict[str, Any]], row: Mapping[str, Any]
) -> Row:
    try:
        return Row(line, record=convert(row))
    except BadRow as bad:
        return Row(line, problem=str(bad))
