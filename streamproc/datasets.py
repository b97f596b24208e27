"""Edge: River's bundled datasets streamed as events: one record per row (an event id and an
event time added) and one label per row, known at once (label time = event time).

For tabular pipelines (pipelines/phishing.yaml): the rows need no download, so the whole
path from events to scores can be checked against river.evaluate.progressive_val_score.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from river import datasets

from streamproc.errors import ConfigError

START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: any fixed start keeps reruns identical
STEP_MS = 1_000  # one row per second of event time


@dataclass(frozen=True, slots=True)
class RiverDataset:
    """A River dataset as a stream: how to load it and what its label field is called."""

    load: Callable[[], Iterable[tuple[dict[str, Any], Any]]]
    label_field: str
    pipeline: str  # the declaration that reads it, under pipelines/


DATASETS: dict[str, RiverDataset] = {
    "phishing": RiverDataset(datasets.Phishing, "is_phishing", "phishing.yaml"),
}


@dataclass(frozen=True, slots=True)
class DatasetStream:
    events: list[dict[str, Any]]
    labels: list[dict[str, Any]]


def known(name: str) -> RiverDataset:
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def stream(name: str, start_ms: int = START_MS, step_ms: int = STEP_MS) -> DatasetStream:
    """The dataset's rows in River's order, as events and their immediate labels."""
    dataset = known(name)
    events, labels = [], []
    for row, (x, y) in enumerate(dataset.load()):
        event_id, at_ms = f"{name}-{row:06d}", start_ms + row * step_ms
        events.append({"event_id": event_id, "occurred_at": at_ms, **x})
        labels.append({"event_id": event_id, dataset.label_field: bool(y), "occurred_at": at_ms})
    return DatasetStream(events, labels)


def labels_path(events_path: Path) -> Path:
    """Where the labels go: beside the events, e.g. phishing.jsonl → phishing.labels.jsonl."""
    return events_path.with_name(f"{events_path.stem}.labels.jsonl")


def write_stream(rows: DatasetStream, out: Path) -> tuple[Path, Path]:
    """The events at `out` and the labels beside it, as JSON lines."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, records in ((out, rows.events), (labels_path(out), rows.labels)):
        with path.open("w", encoding="utf-8") as lines:
            lines.writelines(json.dumps(record) + "\n" for record in records)
    return out, labels_path(out)


def keyed(
    records: Iterable[dict[str, Any]], encode: Callable[[dict[str, Any]], bytes]
) -> Iterator[tuple[bytes | None, bytes, int | None]]:
    """(key, value, timestamp) to produce: keyed by event id (a row has no entity). The Kafka
    timestamp is left to the broker (the send time): event time is in the record, and a
    2025 timestamp would put the records past the topic's retention at once."""
    for record in records:
        yield str(record["event_id"]).encode(), encode(record), None
