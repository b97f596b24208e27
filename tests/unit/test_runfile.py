"""`run-file` reads JSON lines or an Avro object container file, and gives the same output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.config.pipeline import load_pipeline
from streamproc.scenario.shop import GeneratorConfig, generate, write_scenario
from streamproc.tools.run_file import run_file
from tests.conftest import REPO
from tests.features_reference import events_from_truth, recompute, same


async def test_avro_container_input_gives_what_json_lines_give(tmp_path: Path) -> None:
    scenario = generate(GeneratorConfig(events=1_500, seed=4))
    json_in, _, _ = write_scenario(scenario, tmp_path / "orders.jsonl")
    catalog = SchemaCatalog.load(REPO / "schemas")
    avro_in = tmp_path / "orders.avro"
    with avro_in.open("wb") as out:
        fastavro.writer(out, catalog.versions("shop.OrderSubmitted")[0].parsed, scenario.events)
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    from_json = await run_file(spec, catalog, b"k", json_in, tmp_path / "json")
    from_avro = await run_file(spec, catalog, b"k", avro_in, tmp_path / "avro")
    assert from_json.read == from_avro.read == 1_500
    assert (from_json.clean, from_json.duplicates, from_json.rejected) == (
        from_avro.clean,
        from_avro.duplicates,
        from_avro.rejected,
    )
    for json_file, avro_file in zip(from_json.files, from_avro.files, strict=True):
        assert json_file.read_text() == avro_file.read_text()
    assert from_json.clean == sum(t.kind == "order" for t in scenario.truth)


async def test_a_record_that_does_not_fit_the_schema_is_a_dead_letter(tmp_path: Path) -> None:
    source = tmp_path / "orders.jsonl"
    scenario = generate(GeneratorConfig(events=10, seed=4))
    broken = {**scenario.events[0], "items": "three"}
    source.write_text("\n".join(json.dumps(e) for e in [broken, *scenario.events[1:]]) + "\n")
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    summary = await run_file(spec, SchemaCatalog.load(REPO / "schemas"), b"k", source, tmp_path)
    [dead] = [json.loads(line) for line in (tmp_path / "dlq.jsonl").read_text().splitlines()]
    assert dead["reason"] == "schema_mismatch"
    assert dead["record"] == broken
    assert summary.rejected == 1 + sum(t.kind == "invalid" for t in scenario.truth[1:])


async def test_each_clean_event_gets_the_features_a_plain_recomputation_gives(
    tmp_path: Path,
) -> None:
    scenario = generate(GeneratorConfig(events=3_000, seed=8))
    source, _, _ = write_scenario(scenario, tmp_path / "orders.jsonl")
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    await run_file(spec, SchemaCatalog.load(REPO / "schemas"), b"k", source, tmp_path / "out")
    served = [
        json.loads(line) for line in (tmp_path / "out/features.jsonl").read_text().splitlines()
    ]
    events = events_from_truth(scenario.truth, b"k")
    assert [s["event_id"] for s in served] == [e.event_id for e in events]
    [view] = spec.features.views
    expected = recompute(view, events)
    wrong = [
        (line["event_id"], name, want, line["features"][name]["value"])
        for line, vector in zip(served, expected, strict=True)
        for name, want in vector.items()
        if not same(want, line["features"][name]["value"])
    ]
    assert wrong == []


def _unstated(clean: Path) -> list[dict[str, Any]]:
    """The clean orders of a file, without the status of amount_includes_tax (v2 dropped it:
    its orders have it defaulted to the source's habit, which the generator's v1 ones state)."""
    orders = [json.loads(line) for line in clean.read_text().splitlines()]
    for order in orders:
        order["field_status"].pop("amount_includes_tax", None)
    return orders


async def test_a_file_of_v1_and_v2_orders_cleans_as_the_v1_file_does(tmp_path: Path) -> None:
    """The generator's traffic with a third of it from producers on shop.OrderSubmitted v2:
    every output file is the v1 traffic's, byte for byte."""
    v1_in, _, _ = write_scenario(generate(GeneratorConfig(events=1_500, seed=4)), tmp_path / "v1")
    mixed = generate(GeneratorConfig(events=1_500, seed=4, v2_rate=0.35))
    mixed_in, _, _ = write_scenario(mixed, tmp_path / "mixed")
    assert sum("item_count" in event for event in mixed.events) > 400
    catalog = SchemaCatalog.load(REPO / "schemas")
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    from_v1 = await run_file(spec, catalog, b"k", v1_in, tmp_path / "out-v1")
    from_mixed = await run_file(spec, catalog, b"k", mixed_in, tmp_path / "out-mixed")
    assert (from_v1.clean, from_v1.duplicates) == (from_mixed.clean, from_mixed.duplicates)
    for name, v1_file, mixed_file in zip(
        ("clean", "duplicates", "dlq", "features"), from_v1.files, from_mixed.files, strict=True
    ):
        if name == "dlq":  # a dead letter holds its record as sent: v1 or v2
            assert len(v1_file.read_text().splitlines()) == len(mixed_file.read_text().splitlines())
        elif name == "clean":  # but what v1 says and v2 cannot: the amount includes tax
            assert _unstated(v1_file) == _unstated(mixed_file)
        else:
            assert v1_file.read_text() == mixed_file.read_text(), name
