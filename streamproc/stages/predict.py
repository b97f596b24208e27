"""Stage: the predict step: each clean order's x from the features it was served, the champion's
score, the prediction record, and the served x to log for the label join (where the trainer
scores the challengers in shadow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamproc.avro_records import FeatureStatus, OrderPrediction, Prediction, ScoreFields
from streamproc.config.models import Models
from streamproc.core.features.state import FeatureValue
from streamproc.core.learning import build_pipeline, build_x, probability
from streamproc.core.training import ServedX
from streamproc.errors import INTERNAL_ERROR, EventRejected
from streamproc.ports import Codec
from streamproc.records import OutRecord, Rejection
from streamproc.stages.feature_step import CLEAN_ORDER, RecordShape, ServedOrder


@dataclass(frozen=True, slots=True)
class ServingModels:
    """The models an inference worker scores with: a snapshot's, swapped whole."""

    version: int
    champion: str
    models: Mapping[str, Any]
    epoch: int = 0

    @classmethod
    def untrained(cls, declared: Models) -> ServingModels:
        """Before the first snapshot: every score is 0.5, version 0."""
        models = {spec.name: build_pipeline(spec) for spec in declared.specs()}
        return cls(0, declared.champion.name, models)


@dataclass(slots=True)
class PredictOutcome:
    """What one batch of served orders produced: predictions, the x to log, rejections."""

    predictions: list[OutRecord] = field(default_factory=list)
    served: list[tuple[str, ServedX]] = field(default_factory=list)  # event id → x to log
    # whose they are: the event ids logged per entity, so an erasure finds a subject's x
    entities: dict[str, list[str]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    # The newest event time scored, per clean-topic partition: the trainer's watermark is the
    # slowest active partition's, so a partition read late never has its labels given up.
    newest_ms: dict[int, int] = field(default_factory=dict)


class PredictStep:
    """Scores clean orders with the current ServingModels; `serving` is replaced whole when
    a newer snapshot arrives (hot swap), never changed in place."""

    def __init__(self, declared: Models, codec: Codec, shape: RecordShape = CLEAN_ORDER) -> None:
        self.declared = declared
        self.serving = ServingModels.untrained(declared)
        self._codec = codec
        self._shape = shape

    def process(self, batch: Sequence[ServedOrder], now_ms: int) -> PredictOutcome:
        """Never raises for a bad event: it becomes a rejection."""
        result = PredictOutcome()
        serving = self.serving  # one version for the whole batch
        champion = serving.models[serving.champion]
        topic, schema = self.declared.predictions.topic, self.declared.predictions.schema_name
        for item in batch:
            try:
                x = build_x(self.declared.inputs, item.record, item.features)
                # Only the champion is scored here: the trainer scores every model on the
                # logged x before it learns the label, which keeps the comparison fair (each
                # model as it stood then) and costs the serving path nothing.
                served_p = probability(champion, x)
                record = prediction(
                    self._shape,
                    item.record,
                    item.features,
                    served_p,
                    (serving.champion, serving.version),
                    item.envelope.timestamp_ms,
                    now_ms,
                )
                value = self._codec.encode(topic, schema, record)
            except EventRejected as exc:  # models never score (nor learn) a broken input
                event_id = item.record.get(self._shape.event_id)
                result.rejections.append(Rejection(item.envelope, exc.reason, exc, event_id))
                continue
            except Exception as exc:  # a bug must cost one event, never the partition
                event_id = item.record.get(self._shape.event_id)
                result.rejections.append(Rejection(item.envelope, INTERNAL_ERROR, exc, event_id))
                continue
            occurred_at = record["occurred_at"]
            result.predictions.append(
                OutRecord(topic, item.envelope.key, value, (), item.envelope.timestamp_ms)
            )
            age = record["feature_freshness_ms"]
            as_of = None if age is None else occurred_at - age
            served = ServedX(x, {serving.champion: served_p}, occurred_at, serving.version, as_of)
            result.served.append((record["event_id"], served))
            if record["entity_key"] is not None:
                result.entities.setdefault(record["entity_key"], []).append(record["event_id"])
            partition = item.envelope.partition
            result.newest_ms[partition] = max(result.newest_ms.get(partition, 0), occurred_at)
        return result


def prediction(  # noqa: PLR0913, PLR0917 - the parts of one record, each named at the call
    shape: RecordShape,
    scored: Mapping[str, Any],
    features: Mapping[str, FeatureValue],
    probability_true: float,
    model: tuple[str, int],
    raw_timestamp_ms: int | None,
    now_ms: int,
) -> OrderPrediction | Prediction:
    """The prediction record (shop.OrderPrediction, or streamproc.Prediction for a tabular
    pipeline: `shape` names the scored record's fields and the probability's) for one scored
    record. The scored record is read by those names: its schema is the pipeline's choice."""
    statuses = {feature.status for feature in features.values()}
    ages = [feature.age_ms for feature in features.values() if feature.age_ms is not None]
    status: FeatureStatus
    if not features or not ages:
        status = "missing"  # nothing known about the entity before this record
    elif "stale" in statuses:
        status = "stale"
    else:
        status = "fresh"
    name, version = model
    entity = scored.get(shape.entity) if shape.entity else None
    score: ScoreFields = {
        "event_id": str(scored[shape.event_id]),
        "entity_key": None if entity in (None, "") else str(entity),
        "model_name": name,
        "model_version": version,
        "occurred_at": int(scored[shape.time or ""]),
        "predicted_at": now_ms,
        "feature_freshness_ms": max(ages) if ages else None,
        "feature_status": status,
        "latency_ms": max(0, now_ms - raw_timestamp_ms) if raw_timestamp_ms else 0,
    }
    if shape.probability == "probability":
        return {**score, "probability": probability_true}
    return {**score, "fraud_probability": probability_true}
