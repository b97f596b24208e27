"""Acceptance (issue 6, deliverable 7): River's Phishing dataset streamed as events through the
tabular pipeline pipelines/phishing.yaml, with immediate labels, scores as River's own
progressive validation does (river.evaluate.progressive_val_score, same model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from river import datasets, evaluate, linear_model, metrics, preprocessing

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.cli import main
from streamproc.scenario.river_datasets import keyed, labels_path, stream
from tests.conftest import REPO


@pytest.fixture
def scored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Path:
    """`streamproc dataset phishing` then `streamproc run-file` on it: the output folder."""
    monkeypatch.setenv("STREAMPROC_SCHEMAS_DIR", str(REPO / "schemas"))
    events, out = tmp_path / "phishing.jsonl", tmp_path / "out"
    assert main(["dataset", "phishing", "--out", str(events)]) == 0
    pipeline = str(REPO / "pipelines/phishing.yaml")
    labels = str(labels_path(events))
    run = ["run-file", "--pipeline", pipeline, "--in", str(events), "--out", str(out)]
    assert main([*run, "--labels", labels]) == 0
    assert "model logreg (champion): rolling ROC AUC" in capsys.readouterr().out
    return out


def _river_model() -> Any:  # River's models are untyped (pyproject's mypy overrides)
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def test_the_pipeline_gives_rivers_progressive_validation_auc(scored: Path) -> None:
    """Like with like: the pipeline's score card is a RollingROCAUC over promotion.window =
    2000 labels, more than the dataset's 1250 rows, so it is the exact ROC AUC of the whole
    run; River's ROCAUC (10 thresholds, an approximation) is held to the acceptance's 1 AUC
    point, the same RollingROCAUC to rounding."""
    report = json.loads((scored / "models.json").read_text())
    card = report["models"]["logreg"]
    assert (report["champion"], card["learned"], card["labels"]) == ("logreg", 1250, 1250)
    rolling = evaluate.progressive_val_score(
        datasets.Phishing(), _river_model(), metrics.RollingROCAUC(window_size=2000)
    ).get()
    approximate = evaluate.progressive_val_score(
        datasets.Phishing(), _river_model(), metrics.ROCAUC()
    ).get()
    assert abs(card["roc_auc"] - approximate) < 0.01, (card["roc_auc"], approximate)
    assert card["roc_auc"] == pytest.approx(rolling, abs=1e-9)


def test_each_score_is_the_one_river_gives_before_learning_the_row(scored: Path) -> None:
    predictions = [
        json.loads(line) for line in (scored / "predictions.jsonl").read_text().splitlines()
    ]
    model = _river_model()
    theirs = []
    for x, y in datasets.Phishing():
        theirs.append(model.predict_proba_one(x).get(True, 0.5))
        model.learn_one(x, y)
    ours = [p["scores"]["logreg"] for p in predictions]
    assert [p["event_id"] for p in predictions] == [f"phishing-{i:06d}" for i in range(1250)]
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 1e-9


def test_the_dataset_streams_as_events_and_labels_known_at_once(serde: AvroSerde) -> None:
    rows = stream("phishing")
    assert len(rows.events) == len(rows.labels) == datasets.Phishing().n_samples
    first, label = rows.events[0], rows.labels[0]
    assert label == {
        "event_id": first["event_id"],
        "is_phishing": True,
        "occurred_at": first["occurred_at"],
    }
    times = [event["occurred_at"] for event in rows.events]
    assert times == sorted(times) and len(set(times)) == len(times)
    # what --to-kafka produces: keyed by event id, the broker's timestamp, Avro that decodes
    [(key, value, timestamp)] = list(
        keyed(rows.events[:1], lambda r: serde.encode("river.phishing.v1", "river.Phishing", r))
    )
    assert (key, timestamp) == (first["event_id"].encode(), None)
    assert serde.decode(value, "river.Phishing") == first


def test_without_a_time_field_records_go_by_event_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each label is learned right after its record is scored: the same scores again."""
    monkeypatch.setenv("STREAMPROC_SCHEMAS_DIR", str(REPO / "schemas"))
    text = (REPO / "pipelines/phishing.yaml").read_text()
    pipeline = tmp_path / "untimed.yaml"
    # without `time:`, occurred_at would be one more number for `auto`: name the inputs
    names = [name for name in stream("phishing").events[0] if name != "occurred_at"][1:]
    inputs = f"inputs: {{numeric: [{', '.join(names)}]}}"
    untimed = text.replace("time: occurred_at", "", 1).replace("inputs: auto", inputs, 1)
    pipeline.write_text(untimed)
    events, out = tmp_path / "phishing.jsonl", tmp_path / "out"
    assert main(["dataset", "phishing", "--out", str(events)]) == 0
    run = ["run-file", "--pipeline", str(pipeline), "--in", str(events), "--out", str(out)]
    assert main([*run, "--labels", str(labels_path(events))]) == 0
    card = json.loads((out / "models.json").read_text())["models"]["logreg"]
    rolling = evaluate.progressive_val_score(
        datasets.Phishing(), _river_model(), metrics.RollingROCAUC(window_size=2000)
    ).get()
    assert card["learned"] == 1250
    assert card["roc_auc"] == pytest.approx(rolling, abs=1e-9)
