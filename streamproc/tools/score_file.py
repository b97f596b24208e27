"""Edge: score a run-file output with the pipeline's models, learning from a labels file as
the labels would arrive (prequential, in event time), without a broker.

Reads clean.jsonl and features.jsonl from a run-file output folder; writes predictions.jsonl
(every model's score per clean order, the champion's first) and models.json (each model's
rolling ROC AUC, log loss, accuracy, labels learned, and the promotions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamproc.core.learning import ModelSet, build_x
from streamproc.errors import ConfigError, EventRejected
from streamproc.spec.models import Models
from streamproc.stages.feature_step import CLEAN_ORDER, RecordShape

PREDICTIONS_FILE, MODELS_FILE = "predictions.jsonl", "models.json"


def score_file(
    models: Models, folder: Path, labels: Path, shape: RecordShape = CLEAN_ORDER
) -> dict[str, Any]:
    """The models' report (also written to models.json)."""
    model_set = ModelSet(models)
    key, field, at = models.labels.key, models.labels.field, models.labels.time_field
    for number, outcome in enumerate(_lines(labels), 1):
        try:
            # in event order, a label "arrives" before any record: learned once it is scored
            arrives = int(outcome[at]) if shape.time is not None else -1
            model_set.expect(str(outcome[key]), bool(outcome[field]), arrives)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{labels}:{number}: a label needs {key}, {field} and {at} ({exc})"
            ) from exc
    served = {
        line["event_id"]: {name: value["value"] for name, value in line["features"].items()}
        for line in _lines(folder / "features.jsonl")
    }
    with (folder / PREDICTIONS_FILE).open("w", encoding="utf-8") as out:
        for position, record in enumerate(_lines(folder / "clean.jsonl")):
            event_id = str(record[shape.event_id])
            at_ms = int(record[shape.time]) if shape.time is not None else position
            try:
                x = build_x(models.inputs, record, served.get(event_id, {}))
            except EventRejected:  # the worker dead-letters it; a file has no DLQ here
                continue
            scores = model_set.score(event_id, at_ms, x)
            prediction = {
                "event_id": event_id,
                "entity_key": record.get(shape.entity) if shape.entity else None,
                "occurred_at": at_ms,
                "model_name": model_set.champion,
                shape.probability: scores[model_set.champion],
                "scores": scores,
            }
            out.write(json.dumps(prediction) + "\n")
    report = {
        "champion": model_set.champion,
        "promotions": [asdict(p) for p in model_set.promotions],
        "models": {
            name: {
                **learner.score_card.snapshot(),
                "learned": learner.learned,
                "early_labels": learner.early_labels,
            }
            for name, learner in model_set.learners.items()
        },
    }
    (folder / MODELS_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from exc
