"""`streamproc produce`'s reading of a file: JSON lines and CSV rows numbered by their line,
checked against the topic's value schema, CSV cells converted to the fields' types (numbers,
booleans, nulls, unions), each bad row with the field, what it expects and what came."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.config.topics import load_topic_specs
from streamproc.errors import ConfigError
from streamproc.scenario.shop import producer_key
from streamproc.tools.conform import BadRow, RecordShape, RecordShapes
from streamproc.tools.produce_file import (
    FileToSend,
    check,
    file_format,
    record_key,
    value_schema,
)
from streamproc.tools.rows import BadFile, Row, checked_rows
from tests.builders import order
from tests.conftest import REPO


@pytest.fixture(scope="module")
def orders() -> RecordShape:
    return RecordShape(json.loads((REPO / "schemas/shop.OrderSubmitted.v1.avsc").read_text()))


# A record of every kind of type, named types and references included.
NESTED = RecordShape(
    {
        "type": "record",
        "name": "Parcel",
        "namespace": "test",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "size", "type": {"type": "enum", "name": "Size", "symbols": ["S", "M", "L"]}},
            {
                "name": "to",
                "type": {
                    "type": "record",
                    "name": "Address",
                    "fields": [
                        {"name": "city", "type": "string"},
                        {"name": "zip", "type": ["null", "string"], "default": None},
                    ],
                },
            },
            {"name": "from", "type": ["null", "test.Address"], "default": None},
            {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []},
            {"name": "weights", "type": {"type": "map", "values": "double"}, "default": {}},
            {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 2}, "default": "AB"},
            {"name": "fragile", "type": "boolean", "default": False},
            {"name": "note", "type": "string", "default": ""},
            {"name": "ratio", "type": "float", "default": 0.0},
            {"name": "count", "type": ["double", "long"], "default": 0.0},
        ],
    }
)


def _lines(text: str) -> list[bytes]:
    return text.encode().splitlines(keepends=True)


def _rows(text: str, shape: RecordShape | RecordShapes, kind: str = "csv") -> list[Row]:
    return list(checked_rows(_lines(text), "csv" if kind == "csv" else "jsonl", shape))


_HEADER = (
    "event_id,source,amount,currency,items,occurred_at,tax_rate,amount_includes_tax,app_version"
)


def test_csv_cells_become_the_fields_types(orders: RecordShape) -> None:
    (row,) = _rows(f"{_HEADER}\ne1,web,12.5,EUR,2,1712345678000,0.19,TRUE,7\n", orders)
    assert row.line == 2
    assert row.record is not None
    assert (row.record["amount"], row.record["items"], row.record["tax_rate"]) == (12.5, 2, 0.19)
    assert row.record["amount_includes_tax"] is True
    assert row.record["app_version"] == 7
    assert row.record["occurred_at"] == 1712345678000  # long before string in the union
    assert row.record["customer_id"] is None  # no column: the field's default


def test_an_empty_cell_is_null_where_the_field_may_be_null(orders: RecordShape) -> None:
    (row,) = _rows(f"{_HEADER}\ne1,,1,EUR,1,2026-03-29T02:30:00,,,\n", orders)
    assert row.record is not None
    assert row.record["tax_rate"] is None and row.record["app_version"] is None
    assert row.record["amount_includes_tax"] is None
    assert row.record["source"] == ""  # a string that cannot be null: the empty string
    assert row.record["occurred_at"] == "2026-03-29T02:30:00"  # no long: the string branch


def test_each_bad_field_is_named_with_what_it_expects(orders: RecordShape) -> None:
    text = f"{_HEADER}\ne1,web,abc,EUR,2.5,1,,maybe,x\n"
    (row,) = _rows(text, orders)
    assert row.record is None
    assert row.problem == (
        'amount: expected double, got "abc"; '
        'amount_includes_tax: expected null or boolean, got "maybe"; '
        'items: expected int, got "2.5"; '
        'app_version: expected null or int, got "x"'
    )


def test_an_int_past_32_bits_is_refused_with_the_range(orders: RecordShape) -> None:
    (row,) = _rows(f"{_HEADER}\ne1,web,1,EUR,3000000000,1,,,\n", orders)
    assert row.problem == "items: expected int (-2147483648 to 2147483647), got 3000000000"


def test_rows_keep_their_line_numbers_across_blank_lines_and_quoted_newlines(
    orders: RecordShape,
) -> None:
    text = (
        f"{_HEADER}\n"
        "e1,web,1,EUR,1,1,,,\n"
        "\n"
        'e2,"we\nb",1,EUR,1,1,,,\n'  # a quoted cell over two lines
        "e3,web,bad,EUR,1,1,,,\n"
        "e4,web,1\n"
    )
    rows = _rows(text, orders)
    assert [row.line for row in rows] == [2, 4, 6, 7]
    assert rows[1].record is not None and rows[1].record["source"] == "we\nb"
    assert rows[2].problem is not None and rows[2].problem.startswith("amount:")
    assert rows[3].problem == "3 cells, the header has 9"


def test_a_line_that_is_not_utf8_is_its_rows_problem(orders: RecordShape) -> None:
    lines = [*_lines(f"{_HEADER}\n"), b"e1,w\xffb,1,EUR,1,1,,,\n", b"e2,web,1,EUR,1,1,,,\n"]
    rows = list(checked_rows(lines, "csv", orders))
    assert [(row.line, row.problem) for row in rows] == [(2, "not UTF-8 text"), (3, None)]


def test_a_spreadsheets_byte_order_mark_is_no_part_of_the_first_column(
    orders: RecordShape,
) -> None:
    (row,) = _rows(f"\ufeff{_HEADER}\ne1,web,1,EUR,1,1,,,\n", orders)
    assert row.record is not None and row.record["event_id"] == "e1"


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        ("event_id,source,amount,currency,items,occurred_at,colour", "'colour'"),
        ("event_id,source,amount,currency,items,items,occurred_at", "named twice: items"),
        ("event_id,source,currency,items,occurred_at", "required amount (double)"),
    ],
)
def test_a_header_that_does_not_fit_the_schema_is_the_files_problem(
    orders: RecordShape, header: str, problem: str
) -> None:
    with pytest.raises(BadFile) as bad:
        _rows(f"{header}\ne1,web,1,EUR,1,1,x\n", orders)
    assert bad.value.line == 1
    assert problem in str(bad.value)


def test_json_lines_are_checked_as_json_values(orders: RecordShape) -> None:
    good = json.dumps(order(event_id="e1", tax_rate=0, items=3))
    text = "\n".join(
        [
            good,
            "",
            '{"event_id": "e2"',
            "[1, 2]",
            json.dumps(order(amount="12", app_version=True, colour="red")),
            json.dumps(order(occurred_at=1.5)),
        ]
    )
    rows = _rows(text, orders, kind="jsonl")
    assert [row.line for row in rows] == [1, 3, 4, 5, 6]
    assert rows[0].record is not None and rows[0].record["tax_rate"] == 0.0  # an int is a double
    assert rows[1].problem == "not JSON: Expecting ',' delimiter at column 18"
    assert rows[2].problem == "expected a JSON object, got list"
    assert rows[3].problem == (
        "colour: no such field in shop.OrderSubmitted; amount: expected double, got "
        '"12"; app_version: expected null or int, got true'
    )
    assert rows[4].problem == "occurred_at: expected long or string, got 1.5"


def test_a_missing_required_field_is_named(orders: RecordShape) -> None:
    record = order()
    del record["amount"]
    with pytest.raises(BadRow) as bad:
        orders.from_json(record)
    assert bad.value.problems == ["amount: expected double, got nothing"]


def test_nested_records_enums_arrays_maps_and_fixed_from_json() -> None:
    record = NESTED.from_json(
        {
            "id": 7,
            "size": "M",
            "to": {"city": "Köln"},
            "from": {"city": "Bonn", "zip": "53111"},
            "tags": ["a", "b"],
            "weights": {"box": 1},
            "code": "XY",
        }
    )
    assert record["to"] == {"city": "Köln", "zip": None}
    assert record["from"] == {"city": "Bonn", "zip": "53111"}
    assert record["weights"] == {"box": 1.0}
    assert record["code"] == b"XY"
    assert (record["fragile"], record["note"]) == (False, "")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("size", "XL", 'size: expected one of S, M, L, got "XL"'),
        ("to", {"town": "x"}, "to.town: no such field in to (Address)"),
        ("tags", ["a", 1], "tags[1]: expected string, got 1"),
        ("weights", {"box": "heavy"}, 'weights.box: expected double, got "heavy"'),
        ("code", "XYZ", "code: expected 2 bytes, got 3"),
        ("from", 3, "from: expected null or a Address record, got 3"),
    ],
)
def test_nested_values_that_do_not_fit_name_their_path(
    field: str, value: Any, problem: str
) -> None:
    row = {"id": 1, "size": "S", "to": {"city": "x"}, field: value}
    with pytest.raises(BadRow) as bad:
        NESTED.from_json(row)
    assert problem in str(bad.value)


def test_csv_cells_of_records_arrays_and_maps_are_json() -> None:
    cells = {
        "id": "1",
        "size": "L",
        "to": '{"city": "Köln", "zip": null}',
        "from": "",
        "tags": '["x"]',
        "weights": '{"a": 2.5}',
        "fragile": "false",
        "ratio": "1e-3",
    }
    record = NESTED.from_cells(cells)
    assert record["to"] == {"city": "Köln", "zip": None}
    assert record["from"] is None
    assert (record["tags"], record["weights"]) == (["x"], {"a": 2.5})
    assert (record["fragile"], record["ratio"]) == (False, 0.001)
    with pytest.raises(BadRow) as bad:
        NESTED.from_cells({**cells, "tags": "x,y"})
    assert str(bad.value) == 'tags: expected array of string in JSON, got "x,y"'


def test_a_file_is_checked_whole_and_its_bad_rows_kept(orders: RecordShape, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(f"{_HEADER}\ne1,web,1,EUR,1,1,,,\ne2,web,x,EUR,1,1,,,\ne3,web,2,EUR,1,1,,,\n")
    bad: list[Row] = []
    checked = check(FileToSend(path, "csv", orders, "t", lambda _: None), bad.append)
    assert (checked.valid, checked.invalid) == (2, 1)
    assert [row.line for row in bad] == [3]


def test_a_file_that_cannot_be_read_is_a_configuration_error(
    orders: RecordShape, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        check(FileToSend(tmp_path / "absent.csv", "csv", orders, "t", lambda _: None), print)
    with pytest.raises(ConfigError, match="--format"):
        file_format(tmp_path / "orders.txt", None)
    assert file_format(tmp_path / "orders.JSON", None) == "jsonl"
    assert file_format(tmp_path / "orders.txt", "csv") == "csv"


def test_keys_are_the_shops_producers_unless_a_field_is_named(orders: RecordShape) -> None:
    guest = order(customer_id=None, email="a@b.c")
    assert record_key(orders, None)(guest) == producer_key(guest)
    assert record_key(orders, "event_id")(order(event_id="e9")) == b"e9"
    assert record_key(orders, "items")(order(items=3)) == b"3"
    assert record_key(orders, "customer_id")(order(customer_id=None)) is None
    with pytest.raises(ConfigError, match="--key colour: no such field"):
        record_key(orders, "colour")
    assert record_key(NESTED, None)({"id": 1}) is None  # no producers' habit known


def test_the_value_schema_comes_from_the_topic_declaration() -> None:
    specs = load_topic_specs(REPO / "topics")
    assert value_schema("shop.order.v1", specs) == "shop.OrderSubmitted"
    with pytest.raises(ConfigError, match="declares no value_schema"):
        value_schema("streamproc.model_snapshots.v1", specs)
    with pytest.raises(ConfigError, match="is not declared"):
        value_schema("shop.order.v9", specs)


@pytest.mark.parametrize(
    ("kind", "text", "problem"),
    [
        ("jsonl", '{"items": ' + "9" * 5000 + "}", "not JSON: Exceeds the limit"),
        ("jsonl", "[" * 100_000, "not JSON: nested too deeply"),
        ("jsonl", '{"event_id": "\\ud800"}', "event_id: expected string (UTF-8 text)"),
        ("csv", f"{_HEADER}\ne1,web,1,EUR,{'9' * 5000},1,,,\n", "items: expected int, got"),
        ("csv", f'{_HEADER}\ne1,"{"x" * 200_000}",1,EUR,1,1,,,\n', "not CSV: field larger than"),
    ],
)
def test_hostile_rows_are_problems_never_crashes(
    orders: RecordShape, kind: str, text: str, problem: str
) -> None:
    rows = _rows(text, orders, kind)
    assert rows[0].problem is not None and problem in rows[0].problem


def test_a_float_past_32_bits_does_not_fit_a_float_field() -> None:
    row = {"id": 1, "size": "S", "to": {"city": "x"}}
    with pytest.raises(BadRow, match="ratio: expected float"):
        NESTED.from_json({**row, "ratio": 1e39})
    assert NESTED.from_json({**row, "ratio": float("inf")})["ratio"] == float("inf")


def test_every_declared_value_schema_is_a_record_of_the_catalog(catalog: SchemaCatalog) -> None:
    declared = {
        spec.name: spec.value_schema
        for spec in load_topic_specs(REPO / "topics")
        if spec.value_schema is not None
    }
    assert "shop.order.clean.v1" in declared  # the test reads the declarations
    for schema in declared.values():
        assert RecordShape(catalog.latest(schema).definition).name == schema
    with pytest.raises(ConfigError, match="not a record schema"):
        RecordShape({"type": "enum", "name": "E", "symbols": ["A"]})


def test_a_json_value_takes_the_union_branch_of_its_own_type_first() -> None:
    row = {"id": 1, "size": "S", "to": {"city": "x"}}
    whole = NESTED.from_json({**row, "count": 3})["count"]
    assert (whole, type(whole)) == (3, int)  # long, though double comes first
    assert NESTED.from_json({**row, "count": 3.5})["count"] == 3.5
    assert (
        NESTED.from_cells({"id": "1", "size": "S", "to": '{"city": "x"}', "count": "3"})["count"]
        == 3
    )  # a cell: a whole number is a long before a double


# -- a topic whose schema has several versions ---------------------------------------------------


@pytest.fixture(scope="module")
def versions() -> RecordShapes:
    catalog = SchemaCatalog.load(REPO / "schemas")
    name = "shop.OrderSubmitted"
    return RecordShapes(
        {v.version: RecordShape(v.definition) for v in catalog.versions(name)},
        lambda keys: catalog.writer_for(name, keys).version,
    )


def test_each_json_row_is_checked_as_the_version_its_fields_fit(versions: RecordShapes) -> None:
    v2 = {k: v for k, v in order().items() if k not in {"items", "amount_includes_tax"}}
    lines = [order(items=3), {**v2, "item_count": 4, "coupon_code": "SPRING10"}, order(items="x")]
    rows = _rows("\n".join(json.dumps(line) for line in lines), versions, kind="jsonl")
    assert rows[0].record is not None and rows[0].record["items"] == 3
    assert rows[1].record is not None and rows[1].record["item_count"] == 4
    assert rows[1].record["coupon_code"] == "SPRING10"
    assert rows[2].problem is not None and rows[2].problem.startswith("items: expected int")


def test_a_csv_file_is_checked_as_the_version_its_header_fits(versions: RecordShapes) -> None:
    (v1,) = _rows(f"{_HEADER}\ne1,web,12.5,EUR,2,1712345678000,0.19,TRUE,7\n", versions)
    assert v1.record is not None and v1.record["items"] == 2
    header = "event_id,source,amount,currency,item_count,occurred_at,coupon_code"
    (v2,) = _rows(f"{header}\ne2,web,12.5,EUR,2,1712345678000,WELCOME5\n", versions)
    assert v2.record is not None and (v2.record["item_count"], v2.record["coupon_code"]) == (
        2,
        "WELCOME5",
    )
    assert "amount_includes_tax" not in v2.record
    with pytest.raises(BadFile, match="columns that are no field of shop.OrderSubmitted"):
        _rows(f"{header},items\ne3,web,1,EUR,2,1,,2\n", versions)


def test_a_key_may_name_a_field_of_any_version(versions: RecordShapes) -> None:
    assert {"items", "item_count", "coupon_code", "amount_includes_tax"} <= set(versions.fields)
    key = record_key(versions, "coupon_code")
    assert key({"coupon_code": "X"}) == b"X" and key(order()) is None
