"""Worker: the pipeline's one trainer (lease, restore, labels, learn, snapshots, promotions,
drift events), in whichever process holds the lease."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from streamproc.adapters.kafka.dlq import dead_letter, log_dead_letters
from streamproc.adapters.kafka.model_snapshots import (
    SNAPSHOTS_TOPIC,
    ChampionChoice,
    champion_key,
    models_key,
    read_latest,
    serving_key,
)
from streamproc.adapters.kafka.producer import BatchSender
from streamproc.adapters.kafka.reader import PartitionReader
from streamproc.adapters.kafka.snapshots import SnapshotLog, SnapshotTopic
from streamproc.adapters.metrics import StageMetrics
from streamproc.adapters.outage import Outages, ride_through
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.adapters.redis.stores import RedisLease
from streamproc.config.kafka import KafkaConnection
from streamproc.core.learning import SnapshotMismatch
from streamproc.core.training import (
    Label,
    Trainer,
    TrainingReport,
    dump_serving,
    dump_state,
    load_state,
)
from streamproc.errors import EventRejected
from streamproc.ports import Codec
from streamproc.records import Envelope, OutRecord, Rejection
from streamproc.stages.predict import PredictStep
from streamproc.worker.follower import SnapshotFollower
from streamproc.worker.snapshot_thread import in_snapshot_thread

log = logging.getLogger(__name__)

MODEL_EVENTS_TOPIC = "streamproc.model_events.v1"
MODEL_EVENT_SCHEMA = "streamproc.ModelEvent"


# Labels learned per step of the trainer loop, at most: a backlog of due labels (a worker
# catching up) was learned in one call, 100,000 labels and about a minute with the tree
# challenger, during which the loop neither renewed its lease nor heard a stop.
LEARN_LIMIT = 2_000


class TrainerLoop:
    """The pipeline's one trainer, in whichever worker holds the lease."""

    def __init__(  # noqa: PLR0913, PLR0917 - each collaborator passed in explicitly
        self,
        pipeline: str,
        step: PredictStep,
        codec: Codec,
        kafka: KafkaConnection,
        group: str,
        served: RedisServedLog,
        lease: RedisLease,
        follower: SnapshotFollower,
        metrics: StageMetrics,
        lease_ms: int = 15_000,
        batch_size: int = 500,
        outages: Outages | None = None,
        renames: Mapping[str, str] | None = None,
        scored_topic: str | None = None,
    ) -> None:
        """`scored_topic`: whose partitions must all have scored something before any label
        is due (see RedisServedLog.watermark)."""
        self._pipeline = pipeline
        self._scored_topic = scored_topic
        self._scored_partitions: int | None = None
        self._outages = outages or Outages(budget_s=120, gauge=metrics)
        self._declared = step.declared
        self._codec = codec
        self._kafka = kafka
        self._group = group
        self._served = served
        self._lease = lease
        self._follower = follower
        self._metrics = metrics
        self._lease_ms = lease_ms
        self._batch_size = batch_size
        self._sender = BatchSender(kafka, renames=renames)  # to the version's own topics
        self._snapshots: SnapshotLog = SnapshotTopic(kafka, SNAPSHOTS_TOPIC)
        self._more_due = False  # the last step left due labels for the next

    async def run(self) -> None:
        """Until cancelled. An outage of Redis or Kafka is ridden through: the trainer starts
        again from its last snapshot once they answer (InfraError past the budget)."""
        while True:
            await ride_through(self._turn, self._outages)
            await asyncio.sleep(self._lease_ms / 3000)

    async def _turn(self) -> None:
        epoch = await self._lease.hold(self._lease_ms)
        self._outages.end("redis")  # a turn lasts as long as the lease: it ends no outage
        if epoch:
            log.info("trainer of %s: lease taken (epoch %d)", self._pipeline, epoch)
            await self._train(epoch)

    async def _train(self, epoch: int) -> None:
        trainer = await self._restore()
        labels = self._declared.labels
        reader = await asyncio.to_thread(
            PartitionReader,
            self._kafka,
            labels.topic,
            trainer.label_offsets(),
            self._group,
            self._metrics.lag_reporter(),
        )
        rule = self._declared.snapshots
        since_snapshot, snapshot_due = 0, time.monotonic() + rule.every_ms / 1000
        reading: asyncio.Future[list[Envelope]] | None = None
        try:
            if self._scored_topic is not None:
                self._scored_partitions = await asyncio.to_thread(
                    reader.partition_count, self._scored_topic
                )
            while await self._lease.hold(self._lease_ms) == epoch:
                self._apply_choice(trainer)
                wait_s = 0.0 if self._more_due else 0.2  # due labels left: learn on at once
                reading = asyncio.ensure_future(
                    asyncio.to_thread(reader.read, self._batch_size, wait_s)
                )
                envelopes = await asyncio.shield(reading)
                self._outages.end("kafka")
                fresh, dead = self._decode(envelopes)
                left_out = trainer.accept(fresh, reader.at_end)  # the ends this read saw
                self._metrics.labels.labels("sampled_out").inc(left_out)
                report = await self._learn(trainer)
                since_snapshot += report.learned + report.unjoined + len(dead) + left_out
                await self._publish(trainer, report, dead)
                if since_snapshot >= rule.every_labels or (
                    since_snapshot and time.monotonic() >= snapshot_due
                ):
                    await self._snapshot(trainer, epoch)
                    since_snapshot, snapshot_due = 0, time.monotonic() + rule.every_ms / 1000
            log.warning(
                "trainer of %s: lease lost (epoch %d): stops learning", self._pipeline, epoch
            )
        finally:
            if reading is not None:  # cancelled, the read goes on in its thread: close after it
                await asyncio.wait([reading])
            reader.close()

    async def _restore(self) -> Trainer:
        try:
            found = await asyncio.to_thread(read_latest, self._snapshots, self._pipeline)
        finally:
            # The trainer reads the topic only here; left open, its consumer went on fetching
            # every snapshot published after, ours included, into librdkafka's queue (up to
            # its 64 MB default: +66 MB of RSS). The next restore reads the topic anew.
            await asyncio.to_thread(self._snapshots.close)
        data = found.get(models_key(self._pipeline))
        if data is None:
            log.info("trainer of %s: no snapshot, models start untrained", self._pipeline)
            return Trainer(self._declared)
        try:
            state, restarted = await in_snapshot_thread(load_state, data, self._declared)
        except SnapshotMismatch as exc:
            log.warning("trainer of %s: %s; models start untrained", self._pipeline, exc)
            return Trainer(self._declared)
        log.info(
            "trainer of %s: restored v%d (%d labels learned, offsets %s)%s",
            self._pipeline,
            state.version,
            state.learned,
            state.label_offsets,
            f"; declared anew: {', '.join(restarted)}" if restarted else "",
        )
        return Trainer(self._declared, state)

    def _apply_choice(self, trainer: Trainer) -> None:
        choice = self._follower.choice
        if choice is not None and (choice.champion, choice.pinned) != (
            trainer.state.champion,
            trainer.state.pinned,
        ):
            trainer.set_champion(choice.champion, choice.pinned)

    def _decode(self, envelopes: Sequence[Envelope]) -> tuple[list[Label], list[Rejection]]:
        labels, dead = [], []
        spec = self._declared.labels
        for envelope in envelopes:
            try:
                record = self._codec.decode(envelope.value, spec.schema_name)
                labels.append(
                    Label(
                        str(record[spec.key]),
                        bool(record[spec.field]),
                        int(record[spec.time_field]),
                        envelope.partition,
                        envelope.offset,
                    )
                )
            except EventRejected as exc:
                dead.append(Rejection(envelope, exc.reason, exc))
            except (KeyError, TypeError, ValueError) as exc:
                dead.append(Rejection(envelope, "bad_label", exc))
        return labels, dead

    async def _learn(self, trainer: Trainer) -> TrainingReport:
        wall_ms = int(time.time() * 1000)
        watermark = await self._served.watermark(wall_ms, self._scored_partitions)
        if watermark is None:  # nothing scored yet: no label is due
            return TrainingReport()
        due = trainer.due(watermark, wall_ms, limit=LEARN_LIMIT)
        self._more_due = len(due) >= LEARN_LIMIT
        served = await self._served.fetch([label.event_id for label in due])
        return await asyncio.to_thread(trainer.learn, due, served, watermark, wall_ms)

    async def _publish(
        self, trainer: Trainer, report: TrainingReport, dead: list[Rejection]
    ) -> None:
        self._metrics.observe_training(report, trainer.scores())
        self._metrics.labels.labels("dead_letter").inc(len(dead))
        log_dead_letters(dead)
        events = [self._event("drift", d.stream, asdict(d), d.at_ms) for d in report.drift] + [
            self._event("promotion", p.promoted, asdict(p), int(time.time() * 1000))
            for p in report.promotions
        ]
        await self._sender.send([*(dead_letter(r) for r in dead), *events])
        for promotion in report.promotions:
            log.warning("trainer of %s: promoted %s", self._pipeline, promotion)
            choice = self._follower.choice or ChampionChoice(
                promotion.retired, False, "declared", 0
            )
            new = choice.succeeded_by(promotion.promoted, False, "promotion rule")
            await asyncio.to_thread(
                self._snapshots.publish, champion_key(self._pipeline), new.dump()
            )
            self._follower.choice = new

    def _event(self, kind: str, subject: str, detail: dict[str, Any], at_ms: int) -> OutRecord:
        record = {
            "kind": kind,
            "pipeline": self._pipeline,
            "subject": subject,
            "detail": json.dumps(detail),
            "occurred_at": at_ms,
        }
        value = self._codec.encode(MODEL_EVENTS_TOPIC, MODEL_EVENT_SCHEMA, record)
        return OutRecord(MODEL_EVENTS_TOPIC, self._pipeline.encode(), value)

    async def _snapshot(self, trainer: Trainer, epoch: int) -> None:
        started = time.perf_counter()
        trainer.state.version += 1
        trainer.state.label_offsets = trainer.label_offsets()
        taken_at_ms = int(time.time() * 1000)
        data = await in_snapshot_thread(
            dump_state, trainer.state, self._pipeline, epoch, taken_at_ms
        )
        serving = await in_snapshot_thread(
            dump_serving, trainer.state, self._pipeline, epoch, taken_at_ms
        )
        await asyncio.to_thread(self._snapshots.publish, serving_key(self._pipeline), serving)
        await asyncio.to_thread(self._snapshots.publish, models_key(self._pipeline), data)
        self._metrics.snapshots.inc()
        self._metrics.snapshot_bytes.set(len(data))
        log.info(
            "trainer of %s: snapshot v%d, %d bytes, %.0f ms",
            self._pipeline,
            trainer.state.version,
            len(data),
            (time.perf_counter() - started) * 1000,
        )
