"""`streamproc tail --filter`: expressions parsed without evaluating code, dotted paths that
reach dotted header names and list items, text, number and regex comparisons, and the record
as `tail` prints it (a value that does not decode shown with its error and bytes)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.cli.tail import start_at
from streamproc.records import Envelope
from streamproc.tools.filters import parse_filter
from streamproc.tools.record_view import json_line, record_view
from tests.builders import ORDER_SUBMITTED, order

RECORD: dict[str, Any] = {
    "topic": "shop.order.v1.dlq",
    "partition": 3,
    "offset": 42,
    "key": "C0001",
    "headers": {"streamproc.errors.reason": "unknown_currency", "x": None},
    "value": {
        "currency": "CHF",
        "amount": 119.0,
        "items": 2,
        "tax_rate": None,
        "paid": True,
        "flags": ["tz_gap", "name_recased"],
    },
}


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        ("value.currency=CHF", True),
        ("value.currency=chf", False),
        ("value.currency!=CHF", False),
        ("value.currency!=EUR", True),
        ("headers.streamproc.errors.reason=unknown_currency", True),
        ("partition=3", True),
        ("partition=3.0", True),
        ("offset=42x", False),
        ("value.amount=119", True),
        ("value.amount=119.5", False),
        ("value.tax_rate=null", True),
        ("value.paid=true", True),
        ("value.flags.1=name_recased", True),
        ("value.flags~tz_gap", True),
        ("value.flags.7=tz_gap", False),
        ("key~^C0", True),
        ("key!~^C0", False),
        ("value.currency~(?i)^chf$", True),
        ("value.colour=red", False),  # a path that reaches nothing equals nothing
        ("value.colour!=red", True),
        ("value.colour~.", False),
        ("value.colour!~.", True),
        ("headers.x=null", True),
        (" value.items = 2 ", True),
        ("value.currency.deeper=CHF", False),
    ],
)
def test_an_expression_holds_or_not(expression: str, matches: bool) -> None:
    assert parse_filter(expression).matches(RECORD) is matches


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("value.currency", "expected PATH=TEXT"),
        ("=CHF", "expected PATH=TEXT"),
        ("value..currency=CHF", "has an empty part"),
        ("key~(", "not a regular expression"),
        ("__import__('os').system('x')", "expected PATH=TEXT"),
    ],
)
def test_a_bad_expression_says_what_is_expected(expression: str, problem: str) -> None:
    with pytest.raises(ValueError, match="expected|empty part|regular expression") as error:
        parse_filter(expression)
    assert problem in str(error.value)


def test_the_text_after_the_operator_is_taken_whole() -> None:
    assert parse_filter("value.note=a=b").text == "a=b"
    assert parse_filter("value.note=a=b").matches({"value": {"note": "a=b"}})


def test_a_record_that_decodes_is_shown_with_its_value(serde: AvroSerde) -> None:
    value = serde.encode("shop.order.v1", ORDER_SUBMITTED, order(event_id="e1"))
    record = Envelope(
        "shop.order.v1", 1, 7, b"C1", value, (("a", b"1"), ("a", b"2"), ("b", b"")), 1_000
    )
    view = record_view(record, serde.decode)
    assert view["value"]["event_id"] == "e1"
    assert view["headers"] == {"a": ["1", "2"], "b": ""}
    assert (view["timestamp"], view["time"]) == (1_000, "1970-01-01T00:00:01.000Z")
    assert "error" not in view
    assert json.loads(json_line(view))["value"]["event_id"] == "e1"


def test_a_record_that_does_not_decode_is_shown_with_its_error_and_bytes(
    serde: AvroSerde,
) -> None:
    value = b"\x00\x00\x00\x00\x01garbage"
    record = Envelope("t", 0, 1, b"\xff\xfe", value, (("bin", b"\x80"),), None)
    view = record_view(record, serde.decode)
    assert view["value"] is None
    assert view["error"].startswith("unknown_schema_id: ")
    assert base64.b64decode(view["value_base64"]) == value
    assert view["key"] == {"base64": base64.b64encode(b"\xff\xfe").decode()}
    assert view["headers"] == {"bin": {"base64": "gA=="}}
    assert view["time"] is None


def test_json_lines_carry_bytes_and_nan_without_failing() -> None:
    line = json_line({"value": {"blob": b"\x01", "amount": float("nan")}})
    assert json.loads(line) == {"value": {"blob": {"base64": "AQ=="}, "amount": None}}


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("earliest", "earliest", 0),
        ("latest", "latest", 0),
        ("1234", "offset", 1234),
        ("2026-03-29T10:00:00Z", "time", 1_774_778_400_000),
        ("2026-03-29T10:00:00", "time", 1_774_778_400_000),  # no zone: UTC
        ("2026-03-29T12:00:00+02:00", "time", 1_774_778_400_000),
    ],
)
def test_from_takes_an_end_an_offset_or_a_time(text: str, kind: str, value: int) -> None:
    start = start_at(text)
    assert (start.kind, start.value) == (kind, value)


def test_from_refuses_anything_else() -> None:
    with pytest.raises(Exception, match="expected earliest, latest, an offset or an ISO time"):
        start_at("yesterday")
