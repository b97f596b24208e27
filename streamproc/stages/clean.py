"""Core: the one place where a stage's steps are chained, one batch at a time.

Clean stage: decode → normalize → unit-switch check → dedupe (one store call per batch) →
clean records, duplicate audit records and rejections, in input order.
Feature step: decode clean events → features applied in order (one read, one guarded write per
batch) → vectors served, too-late events diverted.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streamproc.core import canonical
from streamproc.core.dedupe import Claim, DedupeRules, SeenStore, Sighting, Verdict, fingerprint
from streamproc.core.features import FeatureBatch, FeatureEvent, FeatureStage, FeatureValue
from streamproc.core.normalize import Normalizer
from streamproc.core.unitswitch import (
    UnitStatsRefresh,
    UnitStatsStore,
    UnitSwitchDetector,
)
from streamproc.errors import EventRejected
from streamproc.records import Envelope, OutRecord, Rejection
from streamproc.spec.pipeline import PipelineSpec

INTERNAL_ERROR = "internal_error"
# Where a clean event was read: "<partition>/<offset>" of the source topic. The feature step
# guards on it, so an event the clean stage sends twice (a replay after its crash) counts once.
SOURCE_HEADER = "streamproc.source"
UNIT_SWITCH = "unit_switch_suspected"
UNIT_UNVERIFIED = "unit_unverified"  # no reference yet to check the unit against


class Codec(Protocol):
    """Turns record values into dicts and back (the Avro serde at the edge implements it)."""

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]: ...

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes: ...


@dataclass(slots=True)
class CleanBatch:
    """What one batch produced, in input order, and what happened to it, counted."""

    clean: list[OutRecord] = field(default_factory=list)
    duplicates: list[OutRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    duplicate_kinds: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    unit_switches: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def outputs(self) -> list[OutRecord]:
        return [*self.clean, *self.duplicates]


class CleanStage:
    """The clean stage of one pipeline. The unit-switch detector learns as batches pass, in
    state shared by every worker of the deployment (`units`)."""

    def __init__(
        self,
        spec: PipelineSpec,
        codec: Codec,
        seen: SeenStore,
        units: UnitStatsStore,
        pii_key: bytes,
        units_refresh: UnitStatsRefresh | None = None,
    ) -> None:
        self.spec = spec
        self._codec = codec
        self._seen = seen
        self._units = units
        self._units_refresh = units_refresh or UnitStatsRefresh()
        self._units_loaded = False
        self._normalizer = Normalizer(spec, pii_key)
        self._detector = UnitSwitchDetector(spec.unit_switch.min_reference)
        self._rules = DedupeRules(
            spec.dedupe.window_ms, spec.dedupe.exact_ttl_ms, spec.dedupe.content_ttl_ms
        )

    async def process(self, batch: Sequence[Envelope]) -> CleanBatch:
        """Never raises for a bad event; only the store's InfraError escapes."""
        result = CleanBatch()
        if not self._units_loaded:  # judge from the start as the deployment's other workers do
            await self._share_units()  # nothing to send yet: the first read of the state
            self._units_loaded = True
        accepted: list[tuple[Envelope, dict[str, Any]]] = []
        for envelope in batch:
            try:
                accepted.append((envelope, self._clean(envelope, result)))
            except EventRejected as exc:
                result.rejections.append(Rejection(envelope, exc.reason, exc))
            except Exception as exc:  # a bug must cost one event, never the partition
                result.rejections.append(Rejection(envelope, INTERNAL_ERROR, exc))
        claims = [self._claim(envelope, clean) for envelope, clean in accepted]
        _, verdicts = await asyncio.gather(
            self._share_units(), self._seen.claim(claims, self._rules)
        )
        for (envelope, clean), verdict in zip(accepted, verdicts, strict=True):
            try:
                self._emit(envelope, clean, verdict, result)
            except Exception as exc:
                result.rejections.append(Rejection(envelope, INTERNAL_ERROR, exc))
        return result

    async def _share_units(self) -> None:
        """The batch's unit-switch counts to the shared state; the others' back when due."""
        update = self._detector.take_update()
        if self._units_refresh.due(update):
            self._detector.adopt(await self._units.exchange(update))
        elif update:
            await self._units.send(update)

    def _clean(self, envelope: Envelope, result: CleanBatch) -> dict[str, Any]:
        raw = self._codec.decode(envelope.value, self.spec.source.schema_name)
        clean = self._normalizer.normalize(raw)
        self._check_units(raw, clean, (envelope.partition, envelope.offset), result)
        return clean

    def _check_units(
        self,
        raw: Mapping[str, Any],
        clean: dict[str, Any],
        position: tuple[int, int],
        result: CleanBatch,
    ) -> None:
        """Only session_duration is declared today; its canonical value is in seconds."""
        names, switch = self.spec.fields, self.spec.unit_switch
        if names.session_duration not in switch.fields or clean["session_duration_s"] is None:
            return
        unit = self.spec.sources[clean["source"]].duration_unit or "s"
        verdict = self._detector.check(
            clean["source"],
            names.session_duration,
            raw.get(names.version),
            clean["session_duration_s"],
            unit,
            position,
        )
        flags: list[str] = clean["quality_flags"]
        if verdict.unchecked:
            flags.append(UNIT_UNVERIFIED)
        if not verdict.suspected:
            return
        result.unit_switches[(clean["source"], names.session_duration)] += 1
        if switch.action == "quarantine":
            raise EventRejected(
                UNIT_SWITCH,
                f"{names.session_duration} looks {verdict.correction:g}× off its declared unit",
            )
        flags.append(UNIT_SWITCH)
        if switch.action == "convert":
            clean["session_duration_s"] *= verdict.correction
            self._normalizer.check_duration(clean["session_duration_s"])
            flags.append("unit_converted")  # maybe again: flags become a set when emitted

    def _claim(self, envelope: Envelope, clean: Mapping[str, Any]) -> Claim:
        sighting = Sighting(
            clean["event_id"], envelope.partition, envelope.offset, clean["occurred_at"]
        )
        content = fingerprint(clean, self.spec.dedupe.content_fields)
        return Claim(sighting, content, clean["entity_key"] or clean["event_id"])

    def _emit(
        self, envelope: Envelope, clean: dict[str, Any], verdict: Verdict, result: CleanBatch
    ) -> None:
        if verdict.kind is None or verdict.first is None:
            clean["quality_flags"] = list(dict.fromkeys(clean["quality_flags"]))  # a set
            # Keyed by entity: an entity's orders stay in one partition for the feature stage.
            key = clean["entity_key"].encode() if clean["entity_key"] else envelope.key
            value = self._codec.encode(self.spec.sink.topic, self.spec.sink.schema_name, clean)
            headers = (*envelope.headers, (SOURCE_HEADER, source_stamp(envelope)))
            result.clean.append(
                OutRecord(self.spec.sink.topic, key, value, headers, envelope.timestamp_ms)
            )
            result.flags.update(clean["quality_flags"])
            return
        first = verdict.first
        audit = {
            "event_id": clean["event_id"],
            "kind": verdict.kind,
            "first_event_id": first.event_id,
            "first_partition": first.partition,
            "first_offset": first.offset,
            "partition": envelope.partition,
            "offset": envelope.offset,
            "occurred_at": clean["occurred_at"],
            "first_occurred_at": first.occurred_at,
            "entity_key": clean["entity_key"],
        }
        topic, schema = self.spec.duplicates.topic, self.spec.duplicates.schema_name
        value = self._codec.encode(topic, schema, audit)
        result.duplicates.append(
            OutRecord(topic, envelope.key, value, tuple(envelope.headers), envelope.timestamp_ms)
        )
        result.duplicate_kinds[verdict.kind] += 1


@dataclass(frozen=True, slots=True)
class ServedOrder:
    """A clean order and the features served to it (none for an order without entity)."""

    envelope: Envelope
    record: Mapping[str, Any]
    features: Mapping[str, FeatureValue]


@dataclass(slots=True)
class FeatureStepBatch:
    """What one batch of clean events did to the features, and the records to send."""

    features: FeatureBatch = field(default_factory=FeatureBatch)
    orders: list[ServedOrder] = field(default_factory=list)  # every decoded one, in order
    diverted: list[OutRecord] = field(default_factory=list)  # too late: to the late topic
    rejections: list[Rejection] = field(default_factory=list)
    without_entity: int = 0


@dataclass(frozen=True, slots=True)
class RecordShape:
    """Which fields of a scored record identify, time and key it (the shop's clean order by
    default; a tabular pipeline names its own), and what the served probability is called.
    Without a time field, records go by their order (files only: the worker needs a time)."""

    event_id: str = "event_id"
    time: str | None = "occurred_at"
    entity: str | None = "entity_key"
    probability: str = "fraud_probability"


CLEAN_ORDER = RecordShape()  # the shop pipeline's clean order


class FeatureStep:
    """Records → online features: decode, apply in order, divert the too-late ones (when a
    late topic is given)."""

    def __init__(
        self,
        codec: Codec,
        stage: FeatureStage,
        schema_name: str,
        shape: RecordShape = CLEAN_ORDER,
        late_topic: str | None = None,
    ) -> None:
        self._codec = codec
        self._stage = stage
        self._schema_name = schema_name
        self._shape = shape
        self._late_topic = late_topic

    @classmethod
    def of_clean_orders(cls, spec: PipelineSpec, codec: Codec, stage: FeatureStage) -> FeatureStep:
        """The shop pipeline's step on its clean topic."""
        return cls(codec, stage, spec.sink.schema_name, CLEAN_ORDER, divert_topic(spec))

    async def process(self, batch: Sequence[Envelope], wall_ms: int) -> FeatureStepBatch:
        """Never raises for a bad record; the store's InfraError and OffsetConflict escape."""
        result = FeatureStepBatch()
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
        partition, offset = _source_position(envelope)
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


def source_stamp(envelope: Envelope) -> bytes:
    """The SOURCE_HEADER value naming where `envelope` was read."""
    return f"{envelope.partition}/{envelope.offset}".encode()


def _source_position(envelope: Envelope) -> tuple[int, int]:
    """The source position the clean stage stamped; a record without one (produced by
    another writer) is placed by its own position, in partitions of its own."""
    for name, value in envelope.headers:
        if name == SOURCE_HEADER:
            partition, _, offset = value.decode().partition("/")
            return int(partition), int(offset)
    return -1 - envelope.partition, envelope.offset
