"""`streamproc dataset NAME --declare`: Avro schemas, topics and a tabular pipeline derived
from a bundled dataset's rows, so that --to-kafka and run-file work on it with nothing
hand-written; --to-kafka without them says what is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.cli import main
from streamproc.config.tabular import load_tabular
from streamproc.config.topics import load_topic_specs
from streamproc.errors import ConfigError
from streamproc.scenario import river_datasets as streamed
from streamproc.scenario.river_datasets import (
    RiverDataset,
    declare,
    known,
    labels_path,
    names,
    stream,
)
from tests.conftest import REPO
from tests.unit.test_datasets import bundled_binary


def _folders(root: Path) -> dict[str, Path]:
    return {part: root / part for part in ("schemas", "topics", "pipelines")}


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The CLI's schemas, topics and pipelines folders, in tmp_path: the repo's schemas
    (streamproc.Prediction is needed), no topics, no pipelines."""
    paths = _folders(tmp_path / "declared")
    shutil.copytree(REPO / "schemas", paths["schemas"])
    monkeypatch.setenv("STREAMPROC_SCHEMAS_DIR", str(paths["schemas"]))
    monkeypatch.setenv("STREAMPROC_TOPICS_DIR", str(paths["topics"]))
    monkeypatch.setenv("STREAMPROC_PIPELINE", str(paths["pipelines"] / "shop_orders.yaml"))
    return paths


def test_the_names_come_from_river() -> None:
    assert names() == bundled_binary()


@pytest.mark.parametrize("name", names())
def test_every_dataset_fits_the_schemas_derived_from_its_rows(name: str, tmp_path: Path) -> None:
    rows, dataset = stream(name), known(name)
    declare(rows, _folders(tmp_path))
    catalog = SchemaCatalog.load(tmp_path / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    for records, schema in ((rows.events, dataset.record), (rows.labels, dataset.label_record)):
        for record in records[:: max(1, len(records) // 500)]:
            assert serde.decode(serde.encode(dataset.topic, schema, record), schema) == record


def test_to_kafka_without_declarations_names_what_is_missing_before_any_broker(
    tmp_path: Path, folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "bananas.jsonl"
    assert main(["dataset", "bananas", "--out", str(events), "--to-kafka"]) == 2
    error = capsys.readouterr().err
    assert str(folders["schemas"] / "river.Bananas.v1.avsc") in error
    assert str(folders["topics"] / "river.bananas.v1.yaml") in error
    assert str(folders["pipelines"] / "bananas.yaml") in error
    assert "--declare" in error
    assert events.exists()  # the file mode works regardless


def test_declare_then_run_file_scores_bananas(
    tmp_path: Path, folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """From `streamproc dataset bananas` to scores, with nothing hand-written."""
    events, out = tmp_path / "bananas.jsonl", tmp_path / "out"
    assert main(["dataset", "bananas", "--out", str(events), "--declare"]) == 0
    pipeline = folders["pipelines"] / "bananas.yaml"
    catalog = SchemaCatalog.load(folders["schemas"])
    spec, models = load_tabular(pipeline, lambda name: catalog.latest(name).definition)
    assert models is not None and models.inputs.numeric == ["x1", "x2"]
    declared = {spec.name for spec in load_topic_specs(folders["topics"])}
    assert {spec.source.topic, models.labels.topic, models.predictions.topic} <= declared
    run = ["run-file", "--pipeline", str(pipeline), "--in", str(events), "--out", str(out)]
    assert main([*run, "--labels", str(labels_path(events))]) == 0
    report = json.loads((out / "models.json").read_text())
    champion = report["models"][report["champion"]]
    assert champion["learned"] == 5300
    assert champion["roc_auc"] > 0.7  # the banana shapes are curved: the tree learns them
    capsys.readouterr()
    # a second --declare keeps what is there: it may have been edited since
    pipeline.write_text(pipeline.read_text() + "# edited\n")
    assert main(["dataset", "bananas", "--out", str(events), "--declare"]) == 0
    assert f"kept {pipeline}" in capsys.readouterr().out
    assert pipeline.read_text().endswith("# edited\n")


def test_declare_keeps_the_hand_written_phishing_schemas(tmp_path: Path) -> None:
    paths = _folders(tmp_path)
    shutil.copytree(REPO / "schemas", paths["schemas"])
    written = dict(declare(stream("phishing"), paths))
    assert written[paths["schemas"] / "river.Phishing.v1.avsc"] is False
    assert written[paths["schemas"] / "river.PhishingLabel.v1.avsc"] is False
    assert written[paths["pipelines"] / "phishing.yaml"] is True


class _Ragged:
    """A dataset as a newer River might ship one: names that are no Avro names, a feature
    called like a reserved field, sparse rows, numpy scalars, ints among floats, 0/1 labels."""

    def __iter__(self) -> Any:
        yield {"a-b": 1, "label": "x", "event_id": np.float64(0.5)}, np.int64(1)
        yield {"a-b": 2.5, "label": "y", "9": True}, 0


def test_rows_of_any_shape_fit_the_schema_derived_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = {"ragged": RiverDataset("ragged", _Ragged, "label")}
    monkeypatch.setattr(streamed, "_discovered", lambda: (found, {}))
    rows = stream("ragged")
    assert rows.renamed == {"a-b": "a_b", "label": "label_", "event_id": "event_id_", "9": "x9"}
    assert rows.fields == {
        "a_b": "double",
        "label_": "string",
        "event_id_": ["null", "double"],
        "x9": ["null", "boolean"],
    }
    assert rows.events[1] == {
        "event_id": "ragged-000001",
        "occurred_at": streamed.START_MS + streamed.STEP_MS,
        "a_b": 2.5,
        "label_": "y",
        "event_id_": None,
        "x9": True,
    }
    assert [label["label"] for label in rows.labels] == [True, False]
    declare(rows, _folders(tmp_path))
    catalog = SchemaCatalog.load(tmp_path / "schemas")
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    for event in rows.events:
        assert serde.decode(serde.encode("river.ragged.v1", "river._Ragged", event)) == event


def test_a_label_that_is_not_yes_or_no_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Updown:
        def __iter__(self) -> Any:
            yield {"price": 1.0}, "UP"

    found = {"updown": RiverDataset("updown", Updown, "label")}
    monkeypatch.setattr(streamed, "_discovered", lambda: (found, {}))
    with pytest.raises(ConfigError, match="updown row 0: the label 'UP' is neither"):
        stream("updown")
