"""Stage: the clean stage, one batch at a time: decode → normalize → unit-switch check →
dedupe (one store call per batch) → clean records, duplicate audit records and rejections, in
input order."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamproc.avro_records import OrderClean, OrderDuplicate
from streamproc.config.pipeline import PipelineSpec
from streamproc.core.dedupe import (
    Claim,
    DedupeRules,
    DedupeVerdict,
    SeenStore,
    Sighting,
    fingerprint,
)
from streamproc.core.erasure import ERASED_FLAG, Erasures, pseudonymise
from streamproc.core.normalize import Normalizer
from streamproc.core.unitswitch import UnitStatsRefresh, UnitStatsStore, UnitSwitchDetector
from streamproc.errors import INTERNAL_ERROR, EventRejected
from streamproc.ports import Codec
from streamproc.records import SOURCE_HEADER, Envelope, OutRecord, Rejection, source_stamp

UNIT_SWITCH = "unit_switch_suspected"
UNIT_UNVERIFIED = "unit_unverified"  # no reference yet to check the unit against


_LOGGED_ID_CHARS = 100  # a producer's event id is text of any length; a log line is not


@dataclass(slots=True)
class CleanOutcome:
    """What one batch produced, in input order, and what happened to it, counted."""

    clean: list[OutRecord] = field(default_factory=list)
    duplicates: list[OutRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    duplicate_kinds: Counter[str] = field(default_factory=Counter)
    flags: Counter[str] = field(default_factory=Counter)
    unit_switches: Counter[tuple[str, str]] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)  # clean orders per source
    # (source, raw field, absent|null|defaulted|invalid) of the clean orders
    field_status: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    @property
    def outputs(self) -> list[OutRecord]:
        return [*self.clean, *self.duplicates]


class CleanStage:
    """The clean stage of one pipeline. The unit-switch detector learns as batches pass, in
    state shared by every worker of the deployment (`units`). An order of an erased subject
    (`erasures`) is pseudonymised before anything keeps it."""

    def __init__(  # noqa: PLR0913, PLR0917 - each collaborator passed in, none built here
        self,
        spec: PipelineSpec,
        codec: Codec,
        seen: SeenStore,
        units: UnitStatsStore,
        pii_key: bytes,
        units_refresh: UnitStatsRefresh | None = None,
        erasures: Erasures | None = None,
    ) -> None:
        self.spec = spec
        self._erasures = erasures
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

    async def process(self, batch: Sequence[Envelope]) -> CleanOutcome:
        """Never raises for a bad event; only the store's InfraError escapes."""
        result = CleanOutcome()
        if not self._units_loaded:  # judge from the start as the deployment's other workers do
            await self._share_units()  # nothing to send yet: the first read of the state
            self._units_loaded = True
        accepted: list[tuple[Envelope, OrderClean]] = []
        for envelope in batch:
            raw: Mapping[str, Any] = {}
            try:
                raw = self._codec.decode(envelope.value, self.spec.source.schema_name)
                accepted.append((envelope, self._clean(envelope, raw, result)))
            except EventRejected as exc:
                rejection = Rejection(envelope, exc.reason, exc, self._event_id(raw))
                result.rejections.append(rejection)
            except Exception as exc:  # a bug must cost one event, never the partition
                rejection = Rejection(envelope, INTERNAL_ERROR, exc, self._event_id(raw))
                result.rejections.append(rejection)
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

    def _event_id(self, raw: Mapping[str, Any]) -> str | None:
        """The raw order's event id, for the log line of its rejection (None: unreadable)."""
        event_id = raw.get(self.spec.fields.event_id)
        return event_id[:_LOGGED_ID_CHARS] if isinstance(event_id, str) else None

    def _clean(
        self, envelope: Envelope, raw: Mapping[str, Any], result: CleanOutcome
    ) -> OrderClean:
        clean = self._normalizer.normalize(raw)
        if self._erasures is not None and (pseudonym := self._erasures.erased(clean["entity_key"])):
            pseudonymise(clean, pseudonym)  # before dedupe: its keys use the pseudonym too
        self._check_units(raw, clean, (envelope.partition, envelope.offset), result)
        return clean

    def _check_units(
        self,
        raw: Mapping[str, Any],
        clean: OrderClean,
        position: tuple[int, int],
        result: CleanOutcome,
    ) -> None:
        """Only session_duration is declared today; its canonical value is in seconds."""
        names, switch = self.spec.fields, self.spec.unit_switch
        seconds = clean["session_duration_s"]
        if names.session_duration not in switch.fields or seconds is None:
            return
        unit = self.spec.sources[clean["source"]].duration_unit or "s"
        verdict = self._detector.check(
            clean["source"],
            names.session_duration,
            raw.get(names.version),  # the raw order's field: named by the pipeline
            seconds,
            unit,
            position,
        )
        flags = clean["quality_flags"]
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
            clean["session_duration_s"] = seconds = seconds * verdict.correction
            self._normalizer.check_duration(seconds)
            flags.append("unit_converted")  # maybe again: flags become a set when emitted

    def _claim(self, envelope: Envelope, clean: OrderClean) -> Claim:
        occurred_at = clean["occurred_at"]
        logged_at = envelope.timestamp_ms if envelope.timestamp_ms is not None else occurred_at
        sighting = Sighting(
            clean["event_id"], envelope.partition, envelope.offset, occurred_at, logged_at
        )
        # The pipeline names the fields a duplicate's content is compared on: read by name.
        content = fingerprint(clean, self.spec.dedupe.content_fields)
        return Claim(sighting, content, clean["entity_key"] or clean["event_id"])

    def _emit(
        self,
        envelope: Envelope,
        clean: OrderClean,
        verdict: DedupeVerdict,
        result: CleanOutcome,
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
            source = clean["source"]
            result.sources[source] += 1
            result.field_status.update(
                (source, name, status) for name, status in clean["field_status"].items()
            )
            return
        first = verdict.first
        audit: OrderDuplicate = {
            "event_id": clean["event_id"],
            "kind": verdict.kind,
            "first_event_id": first.event_id,
            "first_partition": first.partition,
            "first_offset": first.offset,
            "partition": envelope.partition,
            "offset": envelope.offset,
            "occurred_at": clean["occurred_at"],
            "first_occurred_at": first.occurred_at_ms,
            "entity_key": clean["entity_key"],
        }
        topic, schema = self.spec.duplicates.topic, self.spec.duplicates.schema_name
        value = self._codec.encode(topic, schema, audit)
        key = envelope.key  # the producer's, unless it may be the erased subject's id
        if ERASED_FLAG in clean["quality_flags"] and clean["entity_key"]:
            key = clean["entity_key"].encode()
        result.duplicates.append(
            OutRecord(topic, key, value, tuple(envelope.headers), envelope.timestamp_ms)
        )
        result.duplicate_kinds[verdict.kind] += 1
