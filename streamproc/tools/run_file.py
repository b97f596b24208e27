"""Tool: run a pipeline on a file of events, no broker, in-memory stores.

The same processor code as the worker: each input record is encoded in the wire format,
cleaned in batches, the clean events go through the feature step, and the outputs are decoded
back into JSON lines, with the feature vector served to each clean event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.dlq import REASON, dead_letter
from streamproc.adapters.memory import (
    InMemoryFeatureStore,
    InMemorySeenStore,
    InMemoryUnitStatsStore,
)
from streamproc.config.pipeline import PipelineSpec
from streamproc.config.tabular import TabularSpec
from streamproc.core.features.stage import FeatureStage
from streamproc.core.features.state import FeatureEvent, Served
from streamproc.errors import ConfigError, DecodeError
from streamproc.records import Envelope, OutRecord, Rejection
from streamproc.stages.clean import CleanStage
from streamproc.stages.feature_step import FeatureStep
from streamproc.stages.scored import ScoredChain

BATCH = 500
CLEAN_FILE, DUPLICATES_FILE, DLQ_FILE = "clean.jsonl", "duplicates.jsonl", "dlq.jsonl"
FEATURES_FILE = "features.jsonl"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How a file's records ended up (clean, duplicate, rejected), and the files written."""

    read: int
    clean: int
    duplicates: int
    rejected: int
    files: tuple[Path, ...]


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """JSON lines, or an Avro object container file (by its magic bytes)."""
    with path.open("rb") as probe:
        is_avro = probe.read(4) == b"Obj\x01"
    if is_avro:
        with path.open("rb") as stream:
            for record in fastavro.reader(stream):
                yield dict(record)  # type: ignore[arg-type]
        return
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{number}: not a JSON object: {exc.msg}") from exc


async def run_file(
    spec: PipelineSpec, catalog: SchemaCatalog, pii_key: bytes, source: Path, out: Path
) -> RunSummary:
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    stage = CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), pii_key)
    features = ScoredChain(  # the worker's chain; a file is not scored (models learn online)
        FeatureStep.of_clean_orders(
            spec, serde, FeatureStage(spec.features, InMemoryFeatureStore())
        ),
        clock_ms=lambda: 0,
    )
    out.mkdir(parents=True, exist_ok=True)
    with _Outputs(out, serde) as outputs:
        batch: dict[int, Any] = {}
        for offset, record in enumerate(read_events(source)):
            batch[offset] = record
            if len(batch) == BATCH:
                await outputs.run(stage, features, spec, batch)
                batch = {}
        if batch:
            await outputs.run(stage, features, spec, batch)
    return outputs.summary()


class _Outputs:
    """The output files and their counts."""

    def __init__(self, out: Path, serde: AvroSerde) -> None:
        self._serde = serde
        self._paths = (
            out / CLEAN_FILE,
            out / DUPLICATES_FILE,
            out / DLQ_FILE,
            out / FEATURES_FILE,
        )
        self._files = [path.open("w", encoding="utf-8") for path in self._paths]
        self._read = self._clean = self._duplicates = self._rejected = 0

    def __enter__(self) -> _Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        for file in self._files:
            file.close()

    async def run(
        self, stage: CleanStage, features: ScoredChain, spec: PipelineSpec, records: dict[int, Any]
    ) -> None:
        batch, unencodable = [], []
        for offset, record in records.items():
            try:
                batch.append(_envelope(spec, self._serde, offset, record))
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                error = DecodeError(
                    "schema_mismatch", f"does not fit {spec.source.schema_name}: {exc}"
                )
                unencodable.append(
                    Rejection(
                        Envelope(spec.source.topic, 0, offset, None, None), error.reason, error
                    )
                )
        result = await stage.process(batch)
        clean, duplicates, dlq, served = self._files
        if spec.features.views:
            # the clean topic as the worker would read it: one partition, offsets in order
            envelopes = [
                Envelope(out.topic, 0, self._clean + i, out.key, out.value, out.headers)
                for i, out in enumerate(result.clean)
            ]
            scored = await features.process(envelopes)
            served.writelines(_served_line(s) for s in scored.step.features.served)
        clean.writelines(self._json_line(record) for record in result.clean)
        duplicates.writelines(self._json_line(record) for record in result.duplicates)
        for rejection in sorted([*result.rejections, *unencodable], key=lambda r: r.source.offset):
            dead = _dead_letter(rejection, records[rejection.source.offset])
            dlq.write(json.dumps(dead, ensure_ascii=False, default=str) + "\n")
        self._read += len(records)
        self._clean += len(result.clean)
        self._duplicates += len(result.duplicates)
        self._rejected += len(result.rejections) + len(unencodable)

    def summary(self) -> RunSummary:
        return RunSummary(self._read, self._clean, self._duplicates, self._rejected, self._paths)

    def _json_line(self, record: OutRecord) -> str:
        return json.dumps(self._serde.decode(record.value), ensure_ascii=False) + "\n"


def _served_line(served: Served) -> str:
    event = served.event
    line = {
        "event_id": event.event_id,
        "entity_key": event.entity,
        "occurred_at": event.occurred_at_ms,
        "late": served.late,
        "features": {name: value._asdict() for name, value in served.features.items()},
    }
    return json.dumps(line, ensure_ascii=False) + "\n"


def _envelope(
    spec: PipelineSpec | TabularSpec, serde: AvroSerde, offset: int, record: Any
) -> Envelope:
    """The record as a producer would send it: wire format, in partition 0 at its line."""
    value = serde.encode(spec.source.topic, spec.source.schema_name, record)
    return Envelope(spec.source.topic, 0, offset, None, value, (), None)


def _dead_letter(rejection: Rejection, record: Any) -> dict[str, Any]:
    """What the worker would send to the DLQ: its headers (KIP-1034 and ours), and the record."""
    headers = {name: value.decode() for name, value in dead_letter(rejection).headers}
    return {"reason": headers[REASON], "headers": headers, "record": record}


async def run_tabular_file(
    spec: TabularSpec, catalog: SchemaCatalog, source: Path, out: Path
) -> RunSummary:
    """A tabular pipeline on a file: each record through the wire format as a producer would
    send it (one that does not fit the source schema is a dead letter), into clean.jsonl as
    decoded (no cleaning stage), and the features served to its entity into features.jsonl."""
    serde = AvroSerde(catalog, EmbeddedRegistry(catalog))
    stage = FeatureStage(spec.features, InMemoryFeatureStore())
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / CLEAN_FILE, out / DLQ_FILE, out / FEATURES_FILE)
    clean, dlq, served = (path.open("w", encoding="utf-8") for path in paths)
    read = rejected = 0
    with clean, dlq, served:
        batch: list[tuple[int, dict[str, Any]]] = []
        for offset, record in enumerate(read_events(source)):
            read += 1
            try:
                batch.append((offset, serde.decode(_envelope(spec, serde, offset, record).value)))
            except (ValueError, TypeError, AttributeError, KeyError, DecodeError) as exc:
                error = DecodeError(
                    "schema_mismatch", f"does not fit {spec.source.schema_name}: {exc}"
                )
                where = Envelope(spec.source.topic, 0, offset, None, None)
                dead = _dead_letter(Rejection(where, error.reason, error), record)
                dlq.write(json.dumps(dead, ensure_ascii=False, default=str) + "\n")
                rejected += 1
                continue
            if len(batch) == BATCH:
                served.writelines(await _serve_tabular(spec, stage, batch))
                clean.writelines(json.dumps(r, ensure_ascii=False) + "\n" for _, r in batch)
                batch = []
        served.writelines(await _serve_tabular(spec, stage, batch))
        clean.writelines(json.dumps(r, ensure_ascii=False) + "\n" for _, r in batch)
    return RunSummary(read, read - rejected, 0, rejected, paths)


async def _serve_tabular(
    spec: TabularSpec, stage: FeatureStage, batch: list[tuple[int, dict[str, Any]]]
) -> list[str]:
    """features.jsonl lines for the batch's records that have an entity (with views only)."""
    if not spec.features.views or spec.entity_key is None or spec.time is None:
        return []
    events = [
        FeatureEvent(
            str(record[spec.entity_key]),
            0,
            offset,
            int(record[spec.time]),
            record,
            str(record[spec.event_id]),
        )
        for offset, record in batch
        if record.get(spec.entity_key) not in (None, "")
    ]
    result = await stage.process(events, wall_ms=0)
    return [_served_line(vector) for vector in result.served]
