"""The schema catalog: the scenario's field contract, file rules, compatibility checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.errors import ConfigError

# docs/scenario.md: producers outside this repo publish with exactly these names.
RAW_ORDER_FIELDS = [
    "event_id", "source", "customer_id", "customer_name", "email", "country", "amount",
    "amount_includes_tax", "tax_rate", "currency", "items", "occurred_at", "tz",
    "session_duration", "app_version", "payment_method",
]  # fmt: skip


def _field_names(catalog: SchemaCatalog, name: str, version: int | None = None) -> list[str]:
    schema = catalog.latest(name) if version is None else catalog.versions(name)[version - 1]
    return [field["name"] for field in schema.definition["fields"]]


def test_raw_order_v1_has_the_scenario_fields_in_order(catalog: SchemaCatalog) -> None:
    assert _field_names(catalog, "shop.OrderSubmitted", 1) == RAW_ORDER_FIELDS


def test_raw_order_v2_renames_one_field_drops_one_and_adds_one(catalog: SchemaCatalog) -> None:
    v2 = [
        "item_count" if name == "items" else name
        for name in RAW_ORDER_FIELDS
        if name != "amount_includes_tax"
    ]
    assert _field_names(catalog, "shop.OrderSubmitted") == [*v2, "coupon_code"]
    fields = {f["name"]: f for f in catalog.latest("shop.OrderSubmitted").definition["fields"]}
    assert fields["item_count"]["aliases"] == ["items"]
    assert fields["coupon_code"]["default"] is None


def test_outcome_has_the_scenario_fields(catalog: SchemaCatalog) -> None:
    assert _field_names(catalog, "shop.OrderOutcome") == ["event_id", "is_fraud", "occurred_at"]


def test_prediction_carries_what_downstream_services_need(catalog: SchemaCatalog) -> None:
    fields = set(_field_names(catalog, "shop.OrderPrediction"))
    assert {
        "event_id", "entity_key", "fraud_probability", "model_name", "model_version",
        "occurred_at", "predicted_at", "feature_freshness_ms", "feature_status",
    } <= fields  # fmt: skip


def test_repo_schemas_are_compatible(catalog: SchemaCatalog) -> None:
    assert catalog.check_compatibility() == []


def _write(folder: Path, file_name: str, fields: list[dict[str, Any]]) -> None:
    name = file_name.split(".v")[0]
    namespace, _, short = name.rpartition(".")
    schema = {"type": "record", "name": short, "namespace": namespace, "fields": fields}
    (folder / file_name).write_text(json.dumps(schema))


def test_a_new_field_without_default_breaks_backward_compatibility(tmp_path: Path) -> None:
    _write(tmp_path, "t.A.v1.avsc", [{"name": "x", "type": "int"}])
    _write(tmp_path, "t.A.v2.avsc", [{"name": "x", "type": "int"}, {"name": "y", "type": "int"}])
    problems = SchemaCatalog.load(tmp_path).check_compatibility()
    assert [(p.name, p.reader_version, p.writer_version) for p in problems] == [("t.A", 2, 1)]
    assert "reader_field_missing_default_value" in str(problems[0])


def test_compatibility_is_checked_against_every_earlier_version(tmp_path: Path) -> None:
    _write(tmp_path, "t.A.v1.avsc", [{"name": "x", "type": "int"}])
    _write(tmp_path, "t.A.v2.avsc", [{"name": "x", "type": "long"}])  # int promotes to long
    _write(tmp_path, "t.A.v3.avsc", [{"name": "x", "type": "int"}])  # cannot read v2's longs
    problems = SchemaCatalog.load(tmp_path).check_compatibility()
    assert [(p.reader_version, p.writer_version) for p in problems] == [(3, 2)]


@pytest.mark.parametrize(
    ("file_name", "content", "expected"),
    [
        ("orders.avsc", "{}", "name the file"),
        ("t.A.v1.avsc", "{not json", "t.A.v1.avsc:1:2: not valid JSON"),
        ("t.A.v1.avsc", '{"type": "record", "name": "A", "fields": [{"name": "x"}]}',
         "not a valid Avro schema"),
        ("t.B.v1.avsc", '{"type": "record", "name": "A", "namespace": "t", "fields": []}',
         "the file name says 't.B'"),
    ],
)  # fmt: skip
def test_bad_schema_files_are_named_in_the_error(
    tmp_path: Path, file_name: str, content: str, expected: str
) -> None:
    (tmp_path / file_name).write_text(content)
    with pytest.raises(ConfigError) as caught:
        SchemaCatalog.load(tmp_path)
    assert expected in str(caught.value)
    assert file_name in str(caught.value)
