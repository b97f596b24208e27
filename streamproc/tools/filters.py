"""Tool (no I/O): the filter expressions of `streamproc tail`, over the JSON object each record
is printed as. No code is evaluated: an expression is a path, an operator and a text.

    value.currency=CHF                      equal
    headers.streamproc.errors.reason!=truncated
    key~^C00                                a regular expression found in the text
    value.customer_name!~(?i)lovelace       not found

A path is dotted: at each level the longest run of its parts that names a key is taken, so a
header named `streamproc.errors.reason` is reached as above; a number indexes a list. What the
path reaches is compared as text (null, true and false as JSON writes them; an object or a
list as compact JSON), and as a number when both sides are numbers (`amount=119` matches
119.0). A path that reaches nothing equals nothing: `=` and `~` are false, `!=` and `!~` true.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_EXPRESSION = re.compile(r"\s*(?P<path>[^\s=!~]+)\s*(?P<op>!=|!~|=|~)(?P<text>.*)", re.DOTALL)
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Filter:
    """One expression: `path op text`."""

    path: tuple[str, ...]
    op: str
    text: str
    pattern: re.Pattern[str] | None = None

    def matches(self, record: Mapping[str, Any]) -> bool:
        found = _reach(record, self.path)
        negated = self.op.startswith("!")
        if found is _MISSING:
            return negated
        if self.pattern is not None:
            hit = self.pattern.search(_as_text(found)) is not None
        else:
            hit = _equal(found, self.text)
        return hit != negated


def parse_filter(expression: str) -> Filter:
    """The Filter an expression says; ValueError saying what is wrong."""
    match = _EXPRESSION.fullmatch(expression)
    if match is None:
        raise ValueError(
            f"{expression!r}: expected PATH=TEXT, PATH!=TEXT, PATH~REGEX or PATH!~REGEX "
            "(e.g. value.currency=CHF)"
        )
    path, op, text = match["path"], match["op"], match["text"].strip()
    if any(not part for part in path.split(".")):
        raise ValueError(f"{expression!r}: {path!r} has an empty part")
    pattern = None
    if op.endswith("~"):
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise ValueError(f"{expression!r}: not a regular expression: {exc}") from None
    return Filter(tuple(path.split(".")), op, text, pattern)


def _reach(record: Any, path: tuple[str, ...]) -> Any:
    """What `path` names in `record`, or _MISSING."""
    if not path:
        return record
    if isinstance(record, Mapping):
        for size in range(len(path), 0, -1):  # the longest key first
            key = ".".join(path[:size])
            if key in record:
                found = _reach(record[key], path[size:])
                if found is not _MISSING:
                    return found
        return _MISSING
    if isinstance(record, list) and path[0].isdigit() and int(path[0]) < len(record):
        return _reach(record[int(path[0])], path[1:])
    return _MISSING


def _as_text(value: Any) -> str:
    """A value as a filter compares it."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _equal(found: Any, text: str) -> bool:
    if isinstance(found, (int, float)) and not isinstance(found, bool):
        number = _number(text)
        return number is not None and found == number
    return _as_text(found) == text


def _number(text: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return None
