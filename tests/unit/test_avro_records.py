"""Each TypedDict in streamproc.avro_records says what its schema in schemas/ says: the same
field names, each field's type (a nullable field is `X | None`, an enum a Literal of its
symbols), and a key left out (NotRequired) only where the schema gives a default. The record
shapes the stages default to name fields of those TypedDicts."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict, Union, get_args, get_origin

import pytest

from streamproc import avro_records
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.avro_records import (
    OrderClean,
    OrderDuplicate,
    OrderOutcome,
    OrderPrediction,
    OrderSubmitted,
    OrderSubmittedV2,
    Prediction,
)
from streamproc.stages.feature_step import CLEAN_ORDER

# by schema name, and version where a schema has several (the newest otherwise)
RECORDS: dict[str, Any] = {
    "shop.OrderSubmitted.v1": OrderSubmitted,
    "shop.OrderSubmitted.v2": OrderSubmittedV2,
    "shop.OrderClean": OrderClean,
    "shop.OrderDuplicate": OrderDuplicate,
    "shop.OrderOutcome": OrderOutcome,
    "shop.OrderPrediction": OrderPrediction,
    "streamproc.Prediction": Prediction,
}
_PRIMITIVES = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
    "null": type(None),
}


def _from_avro(avro: Any) -> object:
    """An Avro type in a form comparable with _from_python's."""
    if isinstance(avro, str):
        return _PRIMITIVES[avro]
    if isinstance(avro, list):
        return ("union", frozenset(_from_avro(branch) for branch in avro))
    kind = avro["type"]
    if kind == "enum":
        return ("literal", frozenset(avro["symbols"]))
    if kind == "array":
        return ("list", _from_avro(avro["items"]))
    if kind == "map":
        return ("dict", str, _from_avro(avro["values"]))
    return _from_avro(kind)  # {"type": "long"} and the like


def _from_python(hint: object) -> object:
    """A TypedDict value's type in a form comparable with _from_avro's."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return ("union", frozenset(_from_python(arg) for arg in args))
    if origin is Literal:
        return ("literal", frozenset(args))
    if origin is list:
        return ("list", _from_python(args[0]))
    if origin is dict:
        return ("dict", args[0], _from_python(args[1]))
    if hint is None:
        return type(None)
    return hint


def drift(record: Any, schema: Mapping[str, Any]) -> list[str]:
    """How `record` (a TypedDict) and `schema` (an Avro record schema) disagree."""
    fields = {field["name"]: field for field in schema["fields"]}
    hints = typing.get_type_hints(record)
    # NotRequired as written: with postponed annotations, Python 3.11's __optional_keys__
    # misses it, get_type_hints(include_extras=True) does not
    written = typing.get_type_hints(record, include_extras=True)
    optional = record.__optional_keys__ | {
        name for name, hint in written.items() if get_origin(hint) is NotRequired
    }
    problems = [f"{name}: not in the schema" for name in sorted(hints.keys() - fields.keys())]
    problems += [f"{name}: not in the TypedDict" for name in sorted(fields.keys() - hints.keys())]
    for name in sorted(hints.keys() & fields.keys()):
        typed, declared = _from_python(hints[name]), _from_avro(fields[name]["type"])
        if typed != declared:
            problems.append(f"{name}: {hints[name]} in the TypedDict, {fields[name]['type']}")
        if name in optional and "default" not in fields[name]:
            problems.append(f"{name}: NotRequired, but the schema gives no default")
    return problems


@pytest.mark.parametrize("schema_name", sorted(RECORDS))
def test_each_typed_record_matches_its_schema(catalog: SchemaCatalog, schema_name: str) -> None:
    name, _, version = schema_name.rpartition(".v")
    if name and version.isdigit():
        schema = catalog.versions(name)[int(version) - 1]
    else:
        schema = catalog.latest(schema_name)
    assert drift(RECORDS[schema_name], schema.definition) == []


def test_every_typed_record_in_the_module_is_checked() -> None:
    typed = {
        name
        for name, value in vars(avro_records).items()
        if isinstance(value, type) and typing.is_typeddict(value)
    }
    checked = {record.__name__ for record in RECORDS.values()}
    assert typed - checked == {"ScoreFields"}  # the base of the two prediction records


class _DriftedDuplicate(TypedDict):
    event_id: str | None  # nullable here, not in the schema
    kind: Literal["retry"]  # a symbol short
    first_event_id: str
    first_partition: int
    first_offset: int
    partition: int
    offset: float  # a long in the schema
    occurred_at: int
    first_occured_at: int  # misspelt
    entity_key: NotRequired[str]  # nullable there; its default is fine, its type is not
    kind_note: NotRequired[str]  # in no schema


def test_drift_is_found_field_by_field(catalog: SchemaCatalog) -> None:
    problems = drift(_DriftedDuplicate, catalog.latest("shop.OrderDuplicate").definition)
    assert [problem.split(":")[0] for problem in problems] == [
        "first_occured_at",
        "kind_note",
        "first_occurred_at",
        "entity_key",
        "event_id",
        "kind",
        "offset",
    ]


def test_a_required_key_must_not_be_left_out_without_a_default() -> None:
    class Loose(TypedDict):
        event_id: NotRequired[str]

    schema = {"type": "record", "name": "X", "fields": [{"name": "event_id", "type": "string"}]}
    assert drift(Loose, schema) == ["event_id: NotRequired, but the schema gives no default"]


def test_the_shop_record_shape_names_clean_order_and_prediction_fields() -> None:
    clean = typing.get_type_hints(OrderClean)
    assert {CLEAN_ORDER.event_id, CLEAN_ORDER.time, CLEAN_ORDER.entity} <= clean.keys()
    assert CLEAN_ORDER.probability in typing.get_type_hints(OrderPrediction)


def test_each_probability_field_is_a_prediction_records_own() -> None:
    shared = typing.get_type_hints(avro_records.ScoreFields).keys()
    own = {
        record.__name__: typing.get_type_hints(record).keys() - shared
        for record in (OrderPrediction, Prediction)
    }
    assert own == {"OrderPrediction": {"fraud_probability"}, "Prediction": {"probability"}}
    assert set(get_args(avro_records.ProbabilityField)) == set().union(*own.values())
