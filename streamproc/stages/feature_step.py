"""Stage: the feature step, one batch at a time: decode clean events → features applied in
order (one read, one guarded write per batch) → vectors served, too-late events diverted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamproc.avro_records import ProbabilityField
from streamproc.config.pipeline import PipelineSpec
from streamproc.core import canonical
from streamproc.core.erasure import Erasures
from streamproc.core.features.stage import FeatureOutcome, FeatureStage
from streamproc.core.features.state import FeatureEvent, FeatureValue
from streamproc.errors import INTERNAL_ERROR, EventRejected
from streamproc.ports import Codec
from streamproc.records import Envelope, OutRecord, Rejection, source_position


@dataclass(frozen=True, slots=True)
class ServedOrder:
    """A clean order and the features served to it (none for an order without entity).

    `record` is the decoded record as it is: an OrderClean on the shop pipeline, a record of
    the pipeline's own schema on a tabular one. The step reads it only by RecordShape's names,
    which the pipeline chooses at run time, so it is not cast to a TypedDict mypy would trust.
    """

    envelope: Envelope
    record: Mapping[str, Any]
    features: Mapping[str, FeatureValue]


@dataclass(slots=True)
class FeatureStepOutcome:
    """What one batch of clean events did to the features, and the records to send."""

    features: FeatureOutcome = field(default_factory=FeatureOutcome)
    orders: list[ServedOrder] = field(default_factory=list)  # every decoded one, in order
    diverted: list[OutRecord] = field(default_factory=list)  # too late: to the late topic
    rejections: list[Rejection] = field(default_factory=list)
    without_entity: int = 0
    erased: int = 0  # records of an erased subject: dropped, nothing kept or sent of them


@dataclass(frozen=True, slots=True)
class RecordShape:
    """Which fields of a scored record identify, time and key it (the shop's clean order by
    default; a tabular pipeline names its own), and what the served probability is called.
    Without a time field, records go by their order (files only: the worker needs a time).
    The defaults are OrderClean's and OrderPrediction's names; a unit test holds them so."""

    event_id: str = "event_id"
    time: str | None = "occurred_at"
    entity: str | None = "entity_key"
    probability: ProbabilityField = "fraud_probability"


CLEAN_ORDER = RecordShape()  # the shop pipeline's clean order


class FeatureStep:
    """Records → online features: decode, apply in order, divert the too-late ones (when a
    late topic is given). A record whose entity is erased (`erasures`) is dropped whole: a
    replay of records from before the erasure brings neither features nor predictions back."""

    def __init__(  # noqa: PLR0913, PLR0917 - each collaborator passed in, none built here
        self,
        codec: Codec,
        stage: FeatureStage,
        schema_name: str,
        shape: RecordShape = CLEAN_ORDER,
        late_topic: str | None = None,
        erasures: Erasures | None = None,
    ) -> None:
        self._erasures = erasures
        self._codec = codec
        self._stage = stage
        self._schema_name = schema_name
        self._shape = shape
        self._late_topic = late_topic

    @classmethod
    def of_clean_orders(
        cls,
        spec: PipelineSpec,
        codec: Codec,
        stage: FeatureStage,
        erasures: Erasures | None = None,
    ) -> FeatureStep:
        """The shop pipeline's step on its clean topic."""
        return cls(codec, stage, spec.sink.schema_name, CLEAN_ORDER, divert_topic(spec), erasures)

    async def process(self, batch: Sequence[Envelope], wall_ms: int) -> FeatureStepOutcome:
        """Never raises for a bad record; the store's InfraError and OffsetConflict escape."""
        result = FeatureStepOutcome()
        decoded: list[tuple[Envelope, dict[str, Any], FeatureEvent | None]] = []
        for envelope in batch:
            try:  # everything read from a record is read here: a bad one costs itself only
                record, event = self._decode(envelope)
            except EventRejected as exc:
                result.rejections.append(Rejection(envelope, exc.reason, exc))
                continue
            except Exception as exc:
                result.rejections.append(Rejection(envelope, INTERNAL_ERROR, exc))
                continue
            if event is None:  # nobody to keep features for (an anonymous till sale)
                result.without_entity += 1
            elif self._erasures is not None and self._erasures.erased(event.entity):
                result.erased += 1
                continue
            decoded.append((envelope, record, event))
        events = [event for _, _, event in decoded if event is not None]
        result.features = await self._stage.process(events, wall_ms)
        served = iter(result.features.served)
        for envelope, record, known in decoded:
            if known is None:
                result.orders.append(ServedOrder(envelope, record, {}))
                continue
            vector = next(served, None)
            result.orders.append(ServedOrder(envelope, record, vector.features if vector else {}))
            if self._late_topic and vector and vector.late and not vector.replayed:
                result.diverted.append(
                    OutRecord(
                        self._late_topic,
                        envelope.key,
                        envelope.value,
                        tuple(envelope.headers),
                        envelope.timestamp_ms,
                    )
                )
        return result

    def _decode(self, envelope: Envelope) -> tuple[dict[str, Any], FeatureEvent | None]:
        """The record, and its feature event when it has an entity."""
        shape = self._shape
        record = self._codec.decode(envelope.value, self._schema_name)
        event_id = record.get(shape.event_id)
        if event_id in (None, ""):
            raise EventRejected("missing_required", f"{shape.event_id} is {event_id!r}")
        at_ms = _event_time(record, shape.time) if shape.time else None
        entity = record.get(shape.entity) if shape.entity else None
        if not entity or at_ms is None:
            return record, None
        partition, offset = source_position(envelope)
        return record, FeatureEvent(str(entity), partition, offset, at_ms, record, str(event_id))


def _event_time(record: Mapping[str, Any], field_name: str) -> int:
    """The record's event time (epoch ms); a null or absurd one is the record's fault."""
    value = record.get(field_name)
    if not canonical.is_number(value):
        raise EventRejected("invalid_time", f"{field_name} is {value!r}, not an epoch time in ms")
    return int(value)


def divert_topic(spec: PipelineSpec) -> str | None:
    """Where the feature step sends clean orders too late for the features, if anywhere."""
    return late_topic(spec.sink.topic) if spec.features.late == "divert" else None


def late_topic(clean_topic: str) -> str:
    """Where the feature step diverts clean events too late for the online features."""
    return f"{clean_topic}.late"
