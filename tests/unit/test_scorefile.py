"""`run-file --labels`: every clean order scored by every model, learning as labels arrive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamproc.cli import main
from streamproc.scenario.shop import GeneratorConfig, generate, write_scenario


def test_orders_are_scored_and_the_models_report_what_they_learned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, _, outcomes = write_scenario(
        generate(GeneratorConfig(events=3_000, seed=21)), tmp_path / "orders.jsonl"
    )
    out = tmp_path / "out"
    assert (
        main(["run-file", "--in", str(events), "--out", str(out), "--labels", str(outcomes)]) == 0
    )
    clean = [json.loads(line) for line in (out / "clean.jsonl").read_text().splitlines()]
    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert [p["event_id"] for p in predictions] == [c["event_id"] for c in clean]
    assert all(0 <= p["fraud_probability"] <= 1 for p in predictions)
    assert {name for p in predictions for name in p["scores"]} == {"logreg", "hat"}
    report = json.loads((out / "models.json").read_text())
    assert report["models"]["logreg"]["learned"] > 1_000
    assert "rolling ROC AUC" in capsys.readouterr().out


def test_a_broken_labels_file_names_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events, _, _ = write_scenario(
        generate(GeneratorConfig(events=200, seed=21)), tmp_path / "orders.jsonl"
    )
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"event_id": "a", "is_fraud": true, "occurred_at": 1}\n{"event_id": "b"}\n')
    code = main(
        ["run-file", "--in", str(events), "--out", str(tmp_path / "o"), "--labels", str(labels)]
    )
    assert code == 2
    assert (
        f"{labels}:2: a label needs event_id, is_fraud and occurred_at" in capsys.readouterr().err
    )
