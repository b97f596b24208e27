"""shop.OrderSubmitted v1 and v2 in one topic: each record decoded under its writer's schema
(the id in its frame) and resolved to the newest version, so a v1 record and the same order
written as v2 decode alike; the renamed field by its alias, the removed one gone, the new one
at its default. Writers pick the version their fields fit. An incompatible v3 is refused, as a
candidate and in the folder, with the schema, the field and the fix named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog, load_schema_file
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.cli import parser as cli
from streamproc.errors import ConfigError
from tests.builders import ORDER_SUBMITTED, as_decoded, order, order_v2
from tests.conftest import REPO

TOPIC = "shop.order.v1"
V3 = REPO / "tests/fixtures/schemas/shop.OrderSubmitted.v3.avsc"


def _id(data: bytes) -> int:
    return int.from_bytes(data[1:5], "big")


def test_a_v1_record_and_the_same_order_as_v2_decode_to_one_dict(
    serde: AvroSerde, catalog: SchemaCatalog
) -> None:
    # the same order: v1 says nothing of the tax either (null: the source's habit)
    v1_record = order(customer_id="c-1", items=3, tz=None, amount_includes_tax=None)
    v2_record = order_v2(event_id=v1_record["event_id"], customer_id="c-1", item_count=3)
    from_v1 = serde.encode(TOPIC, ORDER_SUBMITTED, v1_record)
    from_v2 = serde.encode(TOPIC, ORDER_SUBMITTED, v2_record)
    v1, v2 = catalog.versions(ORDER_SUBMITTED)
    assert (_id(from_v1), _id(from_v2)) == (v1.fingerprint_id, v2.fingerprint_id)
    assert serde.decode(from_v1, ORDER_SUBMITTED) == serde.decode(from_v2, ORDER_SUBMITTED)
    assert serde.decode(from_v1, ORDER_SUBMITTED) == as_decoded(v2_record)


def test_the_renamed_field_comes_out_under_its_new_name_by_its_alias(serde: AvroSerde) -> None:
    decoded = serde.decode(serde.encode(TOPIC, ORDER_SUBMITTED, order(items=7)))
    assert decoded["item_count"] == 7
    assert "items" not in decoded


@pytest.mark.parametrize("includes_tax", [True, False, None])
def test_the_removed_field_is_read_as_a_v1_record_holds_it_and_null_from_v2(
    serde: AvroSerde, includes_tax: bool | None
) -> None:
    """A replay of v1 records reads what the live run read before v2 existed."""
    decoded = serde.decode(
        serde.encode(TOPIC, ORDER_SUBMITTED, order(amount_includes_tax=includes_tax))
    )
    assert decoded["amount_includes_tax"] is includes_tax
    from_v2 = serde.decode(serde.encode(TOPIC, ORDER_SUBMITTED, order_v2()))
    assert from_v2["amount_includes_tax"] is None


def test_the_new_field_is_null_in_a_v1_record_and_kept_in_a_v2_one(serde: AvroSerde) -> None:
    assert serde.decode(serde.encode(TOPIC, ORDER_SUBMITTED, order()))["coupon_code"] is None
    coupon = order_v2(coupon_code="SPRING10")
    assert serde.decode(serde.encode(TOPIC, ORDER_SUBMITTED, coupon))["coupon_code"] == "SPRING10"


def test_a_record_is_written_as_the_newest_version_its_fields_fit(catalog: SchemaCatalog) -> None:
    def version(record: dict[str, Any]) -> int:
        return catalog.writer_for(ORDER_SUBMITTED, record.keys()).version

    assert version(order()) == 1
    assert version(order_v2()) == 2
    sparse_v1 = {k: v for k, v in order().items() if k in {"event_id", "source", "amount"}}
    sparse_v1 |= {"currency": "EUR", "items": 1, "occurred_at": 0}  # the required ones only
    assert version(sparse_v1) == 1
    # fits none: the closest, so that a producer's problem is told against its own version
    assert version({**order(), "coupon_code": "X"}) == 1
    assert version({**order_v2(), "items": 2}) == 2
    assert catalog.writer_for("shop.OrderClean", {}).version == 1  # a single version


def test_every_version_reads_every_earlier_one(catalog: SchemaCatalog) -> None:
    assert catalog.check_compatibility() == []


def test_v2_as_a_candidate_beside_v1_alone_is_compatible(tmp_path: Path) -> None:
    shutil.copy(REPO / "schemas/shop.OrderSubmitted.v1.avsc", tmp_path)
    before_v2 = SchemaCatalog.load(tmp_path)
    assert (
        before_v2.check_candidate(load_schema_file(REPO / "schemas/shop.OrderSubmitted.v2.avsc"))
        == []
    )


def test_v3_as_a_candidate_is_refused_naming_the_schema_the_field_and_the_fix(
    catalog: SchemaCatalog,
) -> None:
    problems = catalog.check_candidate(load_schema_file(V3))
    assert [(p.reader_version, p.writer_version, p.field) for p in problems] == [
        (3, 1, "sales_channel"),
        (3, 2, "sales_channel"),
    ]
    text = str(problems[0])
    assert text.startswith(f"shop.OrderSubmitted v3 ({V3}) cannot read records written with v1")
    assert "sales_channel has no default, and v1 records lack it" in text
    assert 'give sales_channel a default (an optional field: type ["null", ...]' in text


def test_v3_in_the_folder_is_refused_too(tmp_path: Path) -> None:
    for path in (REPO / "schemas").glob("shop.OrderSubmitted.v*.avsc"):
        shutil.copy(path, tmp_path)
    shutil.copy(V3, tmp_path)
    problems = SchemaCatalog.load(tmp_path).check_compatibility()
    assert {(p.name, p.reader_version, p.field) for p in problems} == {
        ("shop.OrderSubmitted", 3, "sales_channel")
    }


def test_a_changed_type_names_the_field_and_what_it_was(tmp_path: Path) -> None:
    v2 = json.loads((REPO / "schemas/shop.OrderSubmitted.v2.avsc").read_text())
    for field in v2["fields"]:
        if field["name"] == "item_count":
            field["type"] = "string"
    candidate = tmp_path / "shop.OrderSubmitted.v3.avsc"
    candidate.write_text(json.dumps(v2))
    problems = SchemaCatalog.load(REPO / "schemas").check_candidate(load_schema_file(candidate))
    assert {p.field for p in problems} == {"item_count"}
    assert (
        "item_count changed its type (reader type: string not compatible with writer type: int)"
        in str(problems[0])
    )
    assert "keep item_count's type as the older version wrote it" in str(problems[0])


def test_a_candidate_may_not_rewrite_a_published_version(tmp_path: Path) -> None:
    changed = json.loads((REPO / "schemas/shop.OrderSubmitted.v2.avsc").read_text())
    changed["fields"] = changed["fields"][:-1]  # v2 without its coupon_code
    candidate = tmp_path / "shop.OrderSubmitted.v2.avsc"
    candidate.write_text(json.dumps(changed))
    with pytest.raises(ConfigError, match="exists already .* name the candidate v3"):
        SchemaCatalog.load(REPO / "schemas").check_candidate(load_schema_file(candidate))


def test_the_embedded_registry_knows_both_versions(catalog: SchemaCatalog) -> None:
    registry = EmbeddedRegistry(catalog)
    for version in catalog.versions(ORDER_SUBMITTED):
        writer = registry.writer_schema(version.fingerprint_id)
        assert writer is not None and writer.canonical == version.canonical


def test_any_v1_order_decodes_as_its_v2_twin(serde: AvroSerde) -> None:
    for overrides in ({}, {"source": "pos", "tz": "Europe/Berlin"}, {"app_version": 5}):
        record = order(**overrides)
        assert serde.decode(serde.encode(TOPIC, ORDER_SUBMITTED, record)) == as_decoded(record)


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMPROC_SCHEMA_REGISTRY_URL", raising=False)
    monkeypatch.chdir(REPO)


@pytest.mark.usefixtures("no_registry")
def test_schemas_check_refuses_the_v3_candidate(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schemas", "check", "--candidate", str(V3)]) == cli.EXIT_FAILURE
    out, err = capsys.readouterr()
    assert f"FAIL candidate shop.OrderSubmitted v3  ({V3})" in out
    assert "FAIL shop.OrderSubmitted v3" in err and "sales_channel has no default" in err
    assert "registry: none configured" in out


@pytest.mark.usefixtures("no_registry")
def test_schemas_check_passes_the_repo_and_a_compatible_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["schemas", "check"]) == 0
    v3 = json.loads(V3.read_text())
    v3["fields"][-1] |= {"type": ["null", "string"], "default": None}  # the fix it suggests
    fixed = tmp_path / "shop.OrderSubmitted.v3.avsc"
    fixed.write_text(json.dumps(v3))
    assert cli.main(["schemas", "check", "--candidate", str(fixed)]) == 0
    assert "ok   candidate shop.OrderSubmitted v3" in capsys.readouterr().out


@pytest.mark.usefixtures("no_registry")
def test_a_badly_named_candidate_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = tmp_path / "orders-next.avsc"
    shutil.copy(V3, odd)
    assert cli.main(["schemas", "check", "--candidate", str(odd)]) == cli.EXIT_CONFIG
    assert "name the file <namespace>.<Name>.v<N>.avsc" in capsys.readouterr().err
