"""A record checked against its Avro schema before it is encoded: each problem names the field
path, what the schema expects and what the record holds; a valid record has none, and every
record of the repo's schemas that fastavro writes and our serde reads back passes."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from fastavro.schema import parse_schema
from hypothesis import given, settings

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.validation import Problem, problems
from tests.builders import ORDER_SUBMITTED, order, orders

_MISSING = "nothing (the field is missing and has no default)"
# Every kind of type, nested: a record in a union, an enum used again by name, arrays, maps.
LINE = {
    "type": "record",
    "name": "Line",
    "fields": [{"name": "sku", "type": "string"}, {"name": "qty", "type": "int"}],
}
BASKET = parse_schema(
    {
        "type": "record",
        "name": "Basket",
        "namespace": "test",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "status", "type": {"type": "enum", "name": "S", "symbols": ["open", "paid"]}},
            {"name": "previous", "type": ["null", "S"], "default": None},
            {"name": "lines", "type": {"type": "array", "items": LINE}},
            {"name": "gift", "type": ["null", "Line"], "default": None},
            {"name": "tags", "type": {"type": "map", "values": "string"}, "default": {}},
            {"name": "digest", "type": {"type": "fixed", "name": "D", "size": 4}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "ratio", "type": "float", "default": 0.5},
        ],
    }
)


def basket(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": 7,
        "status": "open",
        "lines": [{"sku": "a", "qty": 1}],
        "digest": b"abcd",
        "at": datetime.datetime(2026, 3, 29, tzinfo=datetime.UTC),
    }
    record.update(overrides)
    return record


def test_a_valid_record_has_no_problem() -> None:
    assert problems(basket(), BASKET) == []
    full = basket(previous="paid", gift={"sku": "g", "qty": 1}, tags={"k": "v"}, at=1, ratio=2)
    assert problems(full, BASKET) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"id": "7"}, Problem("id", "long", "str '7'")),
        ({"id": True}, Problem("id", "long", "bool True")),
        ({"id": 2**63}, Problem("id", "long (a 64-bit integer)", f"{2**63}, out of its range")),
        ({"status": "lost"}, Problem("status", "one of open, paid (test.S)", "str 'lost'")),
        ({"previous": 3}, Problem("previous", "null or test.S", "int 3")),
        ({"lines": [{"sku": "a", "qty": 1.5}]}, Problem("lines[0].qty", "int", "float 1.5")),
        ({"lines": "a"}, Problem("lines", "an array of test.Line", "str 'a'")),
        (
            {"gift": {"sku": "g"}},
            Problem("gift.qty", "int", _MISSING),
        ),
        ({"gift": "g"}, Problem("gift", "null or test.Line", "str 'g'")),
        ({"tags": {"k": 1}}, Problem("tags['k']", "string", "int 1")),
        ({"tags": {1: "v"}}, Problem("tags[1]", "a string key", "int 1")),
        ({"digest": b"abc"}, Problem("digest", "4 bytes (test.D)", "bytes b'abc'")),
        ({"at": "today"}, Problem("at", "long", "str 'today'")),
        ({"ratio": "x" * 60}, Problem("ratio", "float", "str '" + "x" * 38 + "…")),
        ({"colour": "red"}, Problem("colour", "no such field (not in test.Basket)", "str 'red'")),
    ],
)
def test_each_problem_names_the_field_what_is_expected_and_what_it_got(
    overrides: dict[str, Any], expected: Problem
) -> None:
    assert problems(basket(**overrides), BASKET) == [expected]


def test_every_problem_is_told_not_just_the_first() -> None:
    record = basket(id=None, status=None)
    del record["lines"]
    assert [p.path for p in problems(record, BASKET)] == ["id", "status", "lines"]
    assert (
        str(problems(record, BASKET)[2]) == f"lines: expected an array of test.Line, got {_MISSING}"
    )


def test_a_record_that_is_no_mapping_is_one_problem() -> None:
    assert problems(["id", 7], BASKET) == [
        Problem("test.Basket", "a record (test.Basket)", "list ['id', 7]")
    ]


@settings(max_examples=200, deadline=None)
@given(record=orders)
def test_every_order_the_serde_round_trips_is_valid(
    catalog: SchemaCatalog, record: dict[str, Any]
) -> None:
    assert problems(record, catalog.versions(ORDER_SUBMITTED)[0].parsed) == []  # v1 orders


def test_a_shop_order_missing_its_amount_and_with_a_text_count(catalog: SchemaCatalog) -> None:
    record = order(items="2", occurred_at=1.5, customer_id=5)
    del record["amount"]
    found = problems(record, catalog.versions(ORDER_SUBMITTED)[0].parsed)
    assert [str(p) for p in found] == [
        "customer_id: expected null or string, got int 5",
        f"amount: expected double, got {_MISSING}",
        "items: expected int, got str '2'",
        "occurred_at: expected long or string, got float 1.5",
    ]
