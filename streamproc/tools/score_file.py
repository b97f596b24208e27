"""Tool: score a run-file output with the pipeline's models, learning from a labels file as
the labels would arrive (prequential, in event time), without a broker.

Reads clean.jsonl and features.jsonl from a run-file output folder; writes predictions.jsonl
(every model's score per clean order, the champion's first) and models.json (each model's
rolling ROC AUC, log loss, accuracy, labels learned, and the promotions). It learns through
the worker's Trainer (core.prequential), so a file learns what live traffic would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from streamproc.config.models import Models
from streamproc.core.learning import build_x
from streamproc.core.prequential import PrequentialRun
from streamproc.errors import ConfigError, EventRejected
from streamproc.stages.feature_step import CLEAN_ORDER, RecordShape

PREDICTIONS_FILE, MODELS_FILE = "predictions.jsonl", "models.json"


def score_file(
    models: Models, folder: Path, labels: Path, shape: RecordShape = CLEAN_ORDER
) -> dict[str, Any]:
    """The models' report (also written to models.json)."""
    run = PrequentialRun(models, _labels(models, labels, shape))
    served = {
        line["event_id"]: {name: value["value"] for name, value in line["features"].items()}
        for line in _lines(folder / "features.jsonl")
    }
    at_ms = -1
    with (folder / PREDICTIONS_FILE).open("w", encoding="utf-8") as out:
        for position, record in enumerate(_lines(folder / "clean.jsonl")):
            event_id = str(record[shape.event_id])
            at_ms = int(record[shape.time]) if shape.time is not None else position
            try:
                x = build_x(models.inputs, record, served.get(event_id, {}))
            except EventRejected:  # the worker dead-letters it; a file has no DLQ here
                continue
            scores = run.score(event_id, at_ms, x)
            prediction = {
                "event_id": event_id,
                "entity_key": record.get(shape.entity) if shape.entity else None,
                "occurred_at": at_ms,
                "model_name": run.champion,
                shape.probability: scores[run.champion],
                "scores": scores,
            }
            out.write(json.dumps(prediction) + "\n")
    run.finish(at_ms)
    state = run.trainer.state
    report = {
        "champion": run.champion,
        "promotions": [asdict(p) for p in run.promotions],
        "labels": {
            "learned": state.learned,
            "waiting_for_their_event": len(state.held),
            "unjoined": run.unjoined,
            "sampled_out": run.sampled_out,
        },
        "models": {
            name: {**card.snapshot(), "learned": state.learned}
            for name, card in state.cards.items()
        },
    }
    (folder / MODELS_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _labels(models: Models, path: Path, shape: RecordShape) -> list[tuple[str, bool, int]]:
    key, field, at = models.labels.key, models.labels.field, models.labels.time_field
    labels = []
    for number, outcome in enumerate(_lines(path), 1):
        try:
            # in event order, a label is known from the start: learned right after its record
            arrives = int(outcome[at]) if shape.time is not None else -1
            labels.append((str(outcome[key]), bool(outcome[field]), arrives))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path}:{number}: a label needs {key}, {field} and {at} ({exc})"
            ) from exc
    return labels


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from exc
