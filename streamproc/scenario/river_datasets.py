"""Scenario: River's bundled datasets streamed as events: one record per row (an event id and an
event time added) and one label per row, known at once (label time = event time).

Which datasets: every binary-classification dataset in river.datasets whose rows ship inside
the installed package, found there at run time so that a newer River's come along. The ones
River downloads first are refused: a stream that needs the network is not reproducible.

For tabular pipelines (pipelines/phishing.yaml): the rows need no download, so the whole
path from events to scores can be checked against river.evaluate.progressive_val_score. A
dataset without hand-written schemas gets them derived from its rows (`declare`).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import numbers
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any

from river import datasets
from river.datasets import base, synth

from streamproc.errors import ConfigError

START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: any fixed start keeps reruns identical
STEP_MS = 1_000  # one row per second of event time
EVENT_ID, TIME = "event_id", "occurred_at"
LABEL = "label"
# river.PhishingLabel predates derived schemas, and its records on Kafka name the label so.
_LABEL_FIELDS = {"Phishing": "is_phishing"}
_SYNTHETIC = "it is one of River's endless synthetic generators (river.datasets.synth), not rows"
_AVRO_NAME = re.compile(r"[^A-Za-z0-9_]")

Scalar = bool | int | float | str | None
AvroType = str | list[str]


@dataclass(frozen=True, slots=True)
class RiverDataset:
    """A River dataset as a stream: its class, and the names its records go by."""

    name: str  # the class name in lower case, e.g. bananas
    dataset: type[Any]
    label_field: str

    def load(self) -> Iterable[tuple[dict[str, Any], Any]]:
        rows: Iterable[tuple[dict[str, Any], Any]] = self.dataset()
        return rows

    @property
    def record(self) -> str:
        return f"river.{self.dataset.__name__}"

    @property
    def label_record(self) -> str:
        return f"{self.record}Label"

    @property
    def topic(self) -> str:
        return f"river.{self.name}.v1"

    @property
    def label_topic(self) -> str:
        return f"river.{self.name}_label.v1"

    @property
    def prediction_topic(self) -> str:
        return f"river.{self.name}_prediction.v1"

    @property
    def pipeline(self) -> str:
        """The declaration that reads it, under pipelines/."""
        return f"{self.name}.yaml"


@dataclass(frozen=True, slots=True)
class DatasetStream:
    """A River dataset as topics see it: the events and labels to produce, and the Avro type of
    each feature."""

    events: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    dataset: RiverDataset
    fields: dict[str, AvroType] = field(default_factory=dict)  # each feature's, in row order
    renamed: dict[str, str] = field(default_factory=dict)  # River's name → field, if they differ


def names() -> list[str]:
    """The datasets that stream, by the name `known` takes."""
    return sorted(_discovered()[0])


def known(name: str) -> RiverDataset:
    """A dataset by name, in any case, with or without separators (credit_card = CreditCard)."""
    usable, refused = _discovered()
    key = _key(name)
    if key in usable:
        return usable[key]
    works = (
        f"datasets that work (binary classification, bundled with river {version('river')}): "
        f"{', '.join(sorted(usable))}"
    )
    if key in refused:
        raise ConfigError(f"dataset {name!r} cannot stream: {refused[key]}; {works}")
    raise ConfigError(f"unknown dataset {name!r}; {works}")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@functools.cache
def _discovered() -> tuple[dict[str, RiverDataset], dict[str, str]]:
    """The datasets that stream by name, and why each other one River has does not."""
    usable: dict[str, RiverDataset] = {}
    refused: dict[str, str] = {}
    for cls in _dataset_classes(datasets):
        name = cls.__name__.lower()
        why = _why_not(cls)
        if why is None:
            usable[name] = RiverDataset(name, cls, _LABEL_FIELDS.get(cls.__name__, LABEL))
        else:
            refused[name] = why
    for cls in _dataset_classes(synth):
        refused.setdefault(cls.__name__.lower(), _SYNTHETIC)
    return usable, refused


def _dataset_classes(module: ModuleType) -> list[type[Any]]:
    return [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, base.Dataset)
        and not inspect.isabstract(value)
    ]


def _why_not(cls: type[Any]) -> str | None:
    # Remote ones are told apart by class: building one may create River's download folder.
    if issubclass(cls, base.RemoteDataset):
        return "River downloads it, it is not part of the installed package"
    if issubclass(cls, base.SyntheticDataset):
        return _SYNTHETIC
    try:
        dataset = cls()
    except TypeError:
        return "it cannot be built without arguments"
    if dataset.task != base.BINARY_CLF:
        return f"it is a {dataset.task} dataset, and only binary classification has yes/no labels"
    if isinstance(dataset, base.FileDataset) and not dataset.path.exists():
        return f"its file {dataset.filename} is missing from the installed river"
    return None


def stream(name: str, start_ms: int = START_MS, step_ms: int = STEP_MS) -> DatasetStream:
    """The dataset's rows in River's order, as events and their immediate labels. Feature
    names become Avro names (Bananas' 1 and 2: x1 and x2), a feature missing from a row is
    null, and a column of ints and floats is all floats, so the events fit one record schema."""
    dataset = known(name)
    renamed: dict[str, str] = {}
    taken = {EVENT_ID, TIME, dataset.label_field}  # a feature named so would hide or be hidden
    rows: list[tuple[dict[str, Scalar], bool]] = []
    seen: dict[str, set[type]] = {}
    for row, (x, y) in enumerate(dataset.load()):
        values: dict[str, Scalar] = {}
        for river_name, value in x.items():
            if river_name not in renamed:
                renamed[river_name] = _avro_name(str(river_name), taken)
            column = renamed[river_name]
            values[column] = _scalar(value, f"{name} row {row}, feature {river_name!r}")
            seen.setdefault(column, set()).add(type(values[column]))
        rows.append((values, _label(y, f"{name} row {row}")))
    for values, _ in rows:
        for column in seen.keys() - values.keys():
            seen[column].add(type(None))
    fields = {column: _avro_type(types) for column, types in seen.items()}
    events, labels = [], []
    for row, (values, y) in enumerate(rows):
        event_id, at_ms = f"{dataset.name}-{row:06d}", start_ms + row * step_ms
        x = {column: _coerce(values.get(column), fields[column]) for column in fields}
        events.append({EVENT_ID: event_id, TIME: at_ms, **x})
        labels.append({EVENT_ID: event_id, dataset.label_field: y, TIME: at_ms})
    changed = {river: ours for river, ours in renamed.items() if river != ours}
    return DatasetStream(events, labels, dataset, fields, changed)


def _avro_name(name: str, taken: set[str]) -> str:
    candidate = _AVRO_NAME.sub("_", name)
    if not candidate or not (candidate[0].isalpha() or candidate[0] == "_"):
        candidate = f"x{candidate}"
    while candidate in taken:
        candidate += "_"
    taken.add(candidate)
    return candidate


def _scalar(value: Any, where: str) -> Scalar:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dt.datetime):  # epoch ms, as event times are; naive ones as UTC
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return int(aware.timestamp() * 1000)
    raise ConfigError(f"{where}: a {type(value).__name__} value, which no record field carries")


def _label(value: Any, where: str) -> bool:
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{where}: the label {value!r} is neither a boolean nor 0/1")


def _avro_type(types: set[type]) -> AvroType:
    present = types - {type(None)}
    if not present:
        return "null"
    if present == {bool}:
        avro = "boolean"
    elif present <= {bool, int}:
        avro = "long"
    elif present <= {bool, int, float}:
        avro = "double"
    else:  # strings, or strings mixed with numbers: their text
        avro = "string"
    return ["null", avro] if type(None) in types else avro


def _coerce(value: Scalar, avro: AvroType) -> Scalar:
    kind = avro[-1] if isinstance(avro, list) else avro
    if value is None or kind == "null":
        return None
    if kind == "double":
        return float(value)
    if kind == "long":
        return int(value)
    if kind == "string":
        return value if isinstance(value, str) else str(value)
    return value


def record_schemas(rows: DatasetStream) -> tuple[dict[str, Any], dict[str, Any]]:
    """Avro record schemas of the events and of the labels, derived from the rows."""
    dataset, cls = rows.dataset, rows.dataset.dataset.__name__
    original = {ours: river for river, ours in rows.renamed.items()}
    features = []
    for name, avro in rows.fields.items():
        declared: dict[str, Any] = {"name": name, "type": avro}
        if isinstance(avro, list):
            declared["default"] = None
        if name in original:
            declared["doc"] = f"River's feature {original[name]!r}"
        features.append(declared)
    events = {
        "type": "record",
        "name": cls,
        "namespace": "river",
        "doc": f"One row of River's bundled {cls} dataset (datasets.{cls}), streamed as an "
        f"event by `streamproc dataset {dataset.name}`; derived from its rows.",
        "fields": [
            {
                "name": EVENT_ID,
                "type": "string",
                "doc": f"{dataset.name}-<row>: the label joins by it",
            },
            {"name": TIME, "type": "long", "doc": "epoch ms, UTC: the row's place in the stream"},
            *features,
        ],
    }
    labels = {
        "type": "record",
        "name": f"{cls}Label",
        "namespace": "river",
        "doc": f"The label of one {dataset.record} event, known at once.",
        "fields": [
            {"name": EVENT_ID, "type": "string", "doc": f"the {dataset.record} event's event_id"},
            {"name": dataset.label_field, "type": "boolean"},
            {"name": TIME, "type": "long", "doc": "epoch ms, UTC: when the label became known"},
        ],
    }
    return events, labels


def declarations(rows: DatasetStream) -> list[tuple[str, str, str]]:
    """(folder: schemas, topics or pipelines; file name; text) of everything a tabular
    pipeline over the dataset needs, as the hand-written Phishing ones are laid out."""
    dataset = rows.dataset
    events, labels = record_schemas(rows)
    schemas = [
        ("schemas", f"{schema['namespace']}.{schema['name']}.v1.avsc", _schema_text(schema))
        for schema in (events, labels)
    ]
    topics = [
        (
            "topics",
            f"{topic}.yaml",
            _TOPIC.format(topic=topic, what=what, schema=schema, dlq=dlq),
        )
        for topic, what, schema, dlq in (
            (
                dataset.topic,
                f"rows of River's {dataset.dataset.__name__} dataset",
                dataset.record,
                _DLQ,
            ),
            (
                dataset.label_topic,
                f"labels of the {dataset.record} events",
                dataset.label_record,
                _DLQ,
            ),
            (
                dataset.prediction_topic,
                f"scores of the {dataset.record} events",
                "streamproc.Prediction",
                "",
            ),
        )
    ]
    pipeline = _PIPELINE.format(
        name=dataset.name,
        cls=dataset.dataset.__name__,
        record=dataset.record,
        label_record=dataset.label_record,
        topic=dataset.topic,
        label_topic=dataset.label_topic,
        prediction_topic=dataset.prediction_topic,
        label_field=dataset.label_field,
    )
    return [*schemas, *topics, ("pipelines", dataset.pipeline, pipeline)]


def declare(rows: DatasetStream, folders: Mapping[str, Path]) -> list[tuple[Path, bool]]:
    """Write the declarations into `folders` (schemas, topics, pipelines): (path, written).
    A file already there is kept, and so is a schema with any version there: hand-written
    ones know better, and a changed schema must become a new version, not overwrite one."""
    done = []
    for folder, name, text in declarations(rows):
        path = folders[folder] / name
        written = not _declared(folder, path)
        if written:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        done.append((path, written))
    return done


def undeclared(rows: DatasetStream, folders: Mapping[str, Path]) -> list[Path]:
    """What `declare` would write: what producing the dataset to Kafka still lacks."""
    paths = [(folder, folders[folder] / name) for folder, name, _ in declarations(rows)]
    return [path for folder, path in paths if not _declared(folder, path)]


def _declared(folder: str, path: Path) -> bool:
    versions = path.name.removesuffix(".v1.avsc") + ".v*.avsc"
    return path.exists() or (folder == "schemas" and any(path.parent.glob(versions)))


def _schema_text(schema: dict[str, Any]) -> str:
    """One field a line, as the hand-written schemas are."""
    head = {key: value for key, value in schema.items() if key != "fields"}
    lines = ",\n".join(f"    {json.dumps(one)}" for one in schema["fields"])
    opening = json.dumps(head, indent=2)[:-2]
    return f'{opening},\n  "fields": [\n{lines}\n  ]\n}}\n'


_DLQ = "dlq:\n  retention_ms: 2592000000  # 30 days to inspect and replay dead letters\n"
_TOPIC = """\
# Derived by `streamproc dataset --declare`: {what}.
name: {topic}
description: {what}
value_schema: {schema}
partitions: 3
replication_factor: 1
retention_ms: 604800000 # 7 days
cleanup_policy: delete
{dlq}"""
_PIPELINE = """\
# A tabular pipeline over River's bundled {cls} dataset, derived by
# `streamproc dataset {name} --declare` (edit it freely: a file that exists is kept).
#   streamproc dataset {name} --out data/{name}.jsonl          (events + immediate labels)
#   streamproc run-file --pipeline pipelines/{name}.yaml --in data/{name}.jsonl \\
#       --out data/{name} --labels data/{name}.labels.jsonl
kind: tabular
name: {name}
source: {{topic: {topic}, schema: {record}}}
event_id: event_id
time: occurred_at           # epoch ms; leave it out to go by event order

models:
  inputs: auto              # every number, boolean and string of {record} but the ids
  labels: {{topic: {label_topic}, schema: {label_record}, field: {label_field}, key: event_id}}
  predictions: {{topic: {prediction_topic}, schema: streamproc.Prediction}}
  champion:
    name: logreg
    pipeline: StandardScaler | LogisticRegression
  challengers:
    - {{name: hoeffding, pipeline: HoeffdingTreeClassifier}}
"""


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
