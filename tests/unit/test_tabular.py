"""Tabular pipelines (kind: tabular): declarations, x from a schema, and run-file over a record
type no code knows about."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.config.tabular import (
    TabularSpec,
    auto_inputs,
    field_kinds,
    load_declaration,
    load_tabular,
)
from streamproc.errors import ConfigError
from streamproc.stages.feature_step import RecordShape
from streamproc.tools.run_file import run_tabular_file
from streamproc.tools.score_file import score_file
from tests.conftest import REPO

PHISHING = REPO / "pipelines/phishing.yaml"

CLICK = {
    "type": "record",
    "name": "Click",
    "namespace": "test",
    "fields": [
        {"name": "click_id", "type": "string"},
        {"name": "at", "type": "long"},
        {"name": "user", "type": "string"},
        {"name": "device", "type": {"type": "enum", "name": "Device", "symbols": ["ios", "web"]}},
        {"name": "price", "type": ["null", "double"], "default": None},
        {"name": "items", "type": "int"},
        {"name": "returning", "type": "boolean"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}
CLICK_LABEL = {
    "type": "record",
    "name": "ClickLabel",
    "namespace": "test",
    "fields": [
        {"name": "click_id", "type": "string"},
        {"name": "bought", "type": "boolean"},
        {"name": "at", "type": "long"},
    ],
}
CLICK_PIPELINE = """\
kind: tabular
name: clicks
source: {topic: test.click.v1, schema: test.Click}
event_id: click_id
time: at
entity_key: user
features:
  views:
    - name: clicks
      windows: {1h: 10m}
      aggregates: {spend: {field: price, ops: [count, mean]}}
      last: {last_device: device}
models:
  inputs: auto
  labels: {topic: test.click_label.v1, schema: test.ClickLabel, field: bought, key: click_id,
           time_field: at}
  predictions: {topic: test.click_prediction.v1, schema: streamproc.Prediction}
  champion: {name: logreg, pipeline: StandardScaler | LogisticRegression}
"""


def _schemas(catalog: SchemaCatalog) -> Any:
    return lambda name: catalog.latest(name).definition


def _write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture
def click_catalog(tmp_path: Path) -> SchemaCatalog:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "test.Click.v1.avsc").write_text(json.dumps(CLICK))
    (folder / "test.ClickLabel.v1.avsc").write_text(json.dumps(CLICK_LABEL))
    prediction = REPO / "schemas/streamproc.Prediction.v1.avsc"
    (folder / prediction.name).write_text(prediction.read_text())
    return SchemaCatalog.load(folder)


def test_each_kind_loads_into_its_own_spec() -> None:
    assert isinstance(load_declaration(PHISHING), TabularSpec)
    shop = load_declaration(REPO / "pipelines/shop_orders.yaml")
    assert isinstance(shop, PipelineSpec) and shop.kind == "shop"
    assert load_pipeline(REPO / "pipelines/shop_orders.yaml") == shop


def test_the_shop_loader_refuses_a_tabular_pipeline_naming_the_line() -> None:
    with pytest.raises(ConfigError, match=rf"{PHISHING}:{_line_of(PHISHING, 'kind:')}: kind"):
        load_pipeline(PHISHING)


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        ("kind: tabular", "kind: tabulr", "kind", "expected shop or tabular"),
        ("inputs: auto", "inputs: automatic", "models.inputs", "auto"),
        ("event_id: event_id", "event_id: event_id\ncolour: blue", "colour", "Extra"),
        ("window: 2000", "window: 20", "models.promotion.window", "greater than or equal"),
        (
            "time: occurred_at",
            "time: occurred_at\nfeatures: {views: [{name: v, windows: {1h: 10m}}]}",
            "(top level)",
            "need entity_key and time",
        ),
    ],
)
def test_a_wrong_tabular_declaration_names_the_file_the_line_and_the_field(
    tmp_path: Path, old: str, new: str, field: str, expected: str
) -> None:
    text = PHISHING.read_text()
    assert old in text
    path = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_declaration(path)
    message = str(caught.value)
    assert f"{path}:" in message and f": {field}:" in message and expected in message, message


def test_auto_inputs_take_numbers_booleans_and_strings_but_not_ids_times_or_labels(
    tmp_path: Path, click_catalog: SchemaCatalog
) -> None:
    kinds = field_kinds(CLICK)
    assert kinds == {
        "click_id": "categorical",
        "at": "numeric",
        "user": "categorical",
        "device": "categorical",
        "price": "numeric",  # nullable: a missing price gets its own indicator
        "items": "numeric",
        "returning": "boolean",
        "tags": "other",  # an array has no place in x
    }
    spec, models = load_tabular(_write(tmp_path, CLICK_PIPELINE), _schemas(click_catalog))
    assert models is not None
    assert auto_inputs(spec, kinds) == models.inputs
    assert models.inputs.numeric == [
        "price",
        "items",
        "spend_count_1h",
        "spend_mean_1h",
        "seconds_since_last",
    ]
    assert models.inputs.boolean == ["returning"]
    assert models.inputs.categorical == ["device", "last_device"]  # not the event id, not user


@pytest.mark.parametrize(
    ("old", "new", "field", "expected"),
    [
        (
            "inputs: auto",
            "inputs: {numeric: [price, colour]}",
            "models.inputs.numeric.1",
            "'colour' is neither a field of test.Click nor a served feature",
        ),
        ("time: at", "time: user", "time", "'user' is categorical in the schema, expected numeric"),
        ("event_id: click_id", "event_id: id", "event_id", "'id' is not a field of test.Click"),
        (
            "spend: {field: price,",
            "spend: {field: device,",
            "features.views.0.aggregates.spend",
            "'device' is categorical in the schema, expected numeric",
        ),
        (
            "field: bought",
            "field: purchased",
            "models.labels.field",
            "'purchased' is not a field of the labels' schema test.ClickLabel",
        ),
    ],
)
def test_declared_names_are_checked_against_the_schemas(  # noqa: PLR0913, PLR0917 - fixtures and parameters
    tmp_path: Path, click_catalog: SchemaCatalog, old: str, new: str, field: str, expected: str
) -> None:
    assert old in CLICK_PIPELINE
    path = _write(tmp_path, CLICK_PIPELINE.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_tabular(path, _schemas(click_catalog))
    message = str(caught.value)
    assert f"{path}:{_line_of(path, new)}: {field}: {expected}" in message, message


async def test_a_record_type_no_code_knows_is_scored_with_its_features(
    tmp_path: Path, click_catalog: SchemaCatalog
) -> None:
    spec, models = load_tabular(_write(tmp_path, CLICK_PIPELINE), _schemas(click_catalog))
    assert models is not None
    clicks: list[dict[str, Any]] = [
        {
            "click_id": f"c{i}",
            "at": 1_000 * i,
            "user": f"u{i % 3}",
            "device": "ios",
            "price": None if i % 4 == 0 else float(i),
            "items": i % 5,
            "returning": i % 2 == 0,
            "tags": [],
        }
        for i in range(60)
    ]
    broken = {**clicks[1], "device": "android"}  # not a symbol of the enum
    source = tmp_path / "clicks.jsonl"
    source.write_text("".join(json.dumps(c) + "\n" for c in [clicks[0], broken, *clicks[1:]]))
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"click_id": c["click_id"], "bought": c["items"] > 2, "at": c["at"] + 5_000})
            + "\n"
            for c in clicks
        )
    )
    out = tmp_path / "out"
    summary = await run_tabular_file(spec, click_catalog, source, out)
    assert (summary.read, summary.clean, summary.rejected) == (61, 60, 1)
    [dead] = [json.loads(line) for line in (out / "dlq.jsonl").read_text().splitlines()]
    assert (dead["reason"], dead["record"]) == ("schema_mismatch", broken)
    served = [json.loads(line) for line in (out / "features.jsonl").read_text().splitlines()]
    assert [s["event_id"] for s in served] == [c["click_id"] for c in clicks]
    u0 = {s["event_id"]: s["features"] for s in served if s["entity_key"] == "u0"}
    assert u0["c3"]["spend_count_1h"]["value"] == 0  # c0 came first, without a price
    assert u0["c3"]["last_device"]["value"] == "ios"
    assert (u0["c6"]["spend_count_1h"]["value"], u0["c6"]["spend_mean_1h"]["value"]) == (1, 3.0)
    report = score_file(models, out, labels, RecordShape("click_id", "at", "user", "probability"))
    # a label comes 5 s after its click: the last five arrive after the stream ends
    assert report["models"]["logreg"]["learned"] == 55
    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert predictions[3]["entity_key"] == "u0"
    assert all(0 <= p["probability"] <= 1 for p in predictions)
