"""Edge: the models' lifecycle in a worker: the one trainer (lease, restore, labels, learn,
snapshots, promotions, drift events) and the snapshot follower that hot-swaps what is served.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from streamproc.adapters.dlq import dead_letter
from streamproc.adapters.kafka import BatchSender, PartitionReader
from streamproc.adapters.redis import RedisLease, RedisServedLog
from streamproc.adapters.snapshots import SnapshotTopic
from streamproc.errors import EventRejected
from streamproc.events import Envelope, OutRecord, Rejection
from streamproc.metrics import StageMetrics
from streamproc.models import SnapshotMismatch
from streamproc.predict import PredictStep, ServingModels
from streamproc.processor import Codec
from streamproc.training import (
    Label,
    Trainer,
    TrainingReport,
    dump_serving,
    dump_state,
    load_served_model,
    load_state,
    read_header,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SNAPSHOTS_TOPIC = "streamproc.model_snapshots.v1"
MODEL_EVENTS_TOPIC = "streamproc.model_events.v1"
MODEL_EVENT_SCHEMA = "streamproc.ModelEvent"


# Snapshots (megabytes of pickled models, one every few seconds) are pickled and unpickled in
# this one thread, not in whichever thread of the default executor is free: glibc gives each
# thread that allocates an arena of its own (up to 8 per core) and keeps what is freed there
# for that arena, so the churn grew a heap in every thread it ran in. In one thread the next
# snapshot reuses the previous one's memory, and a trainer's dump never overlaps its
# follower's load (benchmarks/memory_bench.py). Kafka reads and writes stay out of it: a
# follower's read waits on the broker, and must not hold up the trainer's dump.
_SNAPSHOT_THREAD = ThreadPoolExecutor(1, thread_name_prefix="streamproc-snapshots")


async def in_snapshot_thread(work: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_SNAPSHOT_THREAD, partial(work, *args))


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] | None = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None
    return trim  # glibc's; None elsewhere (musl, macOS), where there is nothing to do


_MALLOC_TRIM = _libc_malloc_trim()


def release_freed_memory() -> None:
    """Hands the heap's free pages back to the OS. glibc returns only the top of a heap by
    itself: the megabytes freed at each hot swap (the previous models, the pickle) stay
    resident wherever something younger lies above them, so RSS crept up snapshot after
    snapshot. Called once per new snapshot: a few ms, in the snapshot thread."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def model_scope(app_id: str, pipeline: str) -> str:
    """Snapshots, the champion and the trainer lease belong to a deployment (its consumer
    group) and a pipeline: a demo and production never share models."""
    return f"{app_id}/{pipeline}"


def models_key(pipeline: str) -> str:
    return f"{pipeline}/models"


def champion_key(pipeline: str) -> str:
    return f"{pipeline}/champion"


def serving_key(pipeline: str) -> str:
    return f"{pipeline}/serving"


@dataclass(frozen=True, slots=True)
class ChampionChoice:
    """Who serves, published on the snapshot topic by the trainer (promotion) or an operator
    (`streamproc model promote|rollback|auto`). Pinned: the rule promotes no one."""

    champion: str
    pinned: bool
    by: str
    at_ms: int
    previous: list[str] = field(default_factory=list)  # earlier champions, newest first

    def dump(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def load(cls, data: bytes) -> ChampionChoice:
        return cls(**json.loads(data))

    def succeeded_by(self, champion: str, pinned: bool, by: str) -> ChampionChoice:
        previous = [self.champion, *self.previous][:20] if champion != self.champion else []
        return ChampionChoice(
            champion, pinned, by, int(time.time() * 1000), previous or self.previous
        )


def forget_models(topic: SnapshotTopic, scope: str) -> None:
    """Tombstones for a finished deployment's models (a demo, a test, a benchmark), so
    compaction keeps the topic to the deployments that still run."""
    topic.forget([models_key(scope), serving_key(scope), champion_key(scope)])


def read_latest(topic: SnapshotTopic, scope: str) -> dict[str, bytes]:
    """The newest state and serving models (highest epoch, then version) and champion choice
    of `scope` written since the topic was last read; a zombie trainer's late snapshot loses
    by epoch."""
    return topic.read_new(f"{scope}/", _newer_snapshot)


def _newer_snapshot(key: str, kept: bytes, newer: bytes) -> bool:
    if key.endswith("/champion"):  # a champion choice: the last one wins
        return True
    return _ranked(newer) >= _ranked(kept)


def _ranked(snapshot: bytes) -> tuple[int, int]:
    header = read_header(snapshot)
    return header["epoch"], header["version"]


class SnapshotFollower:
    """Keeps a worker's PredictStep on the newest snapshot and champion choice."""

    def __init__(
        self, pipeline: str, topic: SnapshotTopic, step: PredictStep, metrics: StageMetrics
    ) -> None:
        self._pipeline = pipeline
        self._topic = topic
        self._step = step
        self._metrics = metrics
        self.choice: ChampionChoice | None = None
        self._published: bytes | None = None  # the newest serving record
        self.ready = asyncio.Event()  # set once the topic has been read to its end

    async def follow(self, interval_s: float) -> None:
        while True:
            await self.poll()
            self.ready.set()
            await asyncio.sleep(interval_s)

    async def poll(self) -> None:
        if await self._poll():  # the previous models and the snapshot read are freed now
            await in_snapshot_thread(release_freed_memory)

    async def _poll(self) -> bool:
        """Whether other models were swapped in."""
        found = await asyncio.to_thread(read_latest, self._topic, self._pipeline)
        if (data := found.get(champion_key(self._pipeline))) is not None:
            self.choice = ChampionChoice.load(data)
        newest = found.get(serving_key(self._pipeline))
        if newest is not None and (
            self._published is None or _ranked(newest) >= _ranked(self._published)
        ):
            self._published = newest  # kept whole: the champion may change before the next
        serving = self._step.serving
        if self._published is None:  # untrained, every declared model at hand: pick one
            if self.choice is not None and self.choice.champion in serving.models:
                self._serve(replace(serving, champion=self.choice.champion))
            return False
        header = read_header(self._published)
        champion = header["champion"]
        if self.choice is not None and self.choice.champion in header["hashes"]:
            champion = self.choice.champion
        rank = (header["epoch"], header["version"])
        if rank < (serving.epoch, serving.version) or (
            (*rank, champion) == (serving.epoch, serving.version, serving.champion)
        ):
            return False
        model = await in_snapshot_thread(
            load_served_model, self._published, champion, self._step.declared
        )
        if model is None:
            return False  # the trainer will publish models of this declaration
        self._serve(ServingModels(header["version"], champion, {champion: model}, header["epoch"]))
        return True

    def _serve(self, serving: ServingModels) -> None:
        self._step.serving = serving
        self._metrics.serving_version.set(serving.version)
        for spec in self._step.declared.specs():
            self._metrics.serving.labels(spec.name).set(spec.name == serving.champion)


# Labels learned per step of the trainer loop, at most: a backlog of due labels (a worker
# catching up) was learned in one call, 100,000 labels and about a minute with the tree
# challenger, during which the loop neither renewed its lease nor heard a stop.
LEARN_LIMIT = 2_000


class TrainerLoop:
    """The pipeline's one trainer, in whichever worker holds the lease."""

    def __init__(
        self,
        pipeline: str,
        step: PredictStep,
        codec: Codec,
        bootstrap: str,
        group: str,
        served: RedisServedLog,
        lease: RedisLease,
        follower: SnapshotFollower,
        metrics: StageMetrics,
        lease_ms: int = 15_000,
        batch_size: int = 500,
    ) -> None:
        self._pipeline = pipeline
        self._declared = step.declared
        self._codec = codec
        self._bootstrap = bootstrap
        self._group = group
        self._served = served
        self._lease = lease
        self._follower = follower
        self._metrics = metrics
        self._lease_ms = lease_ms
        self._batch_size = batch_size
        self._sender = BatchSender(bootstrap)
        self._snapshots = SnapshotTopic(bootstrap, SNAPSHOTS_TOPIC)
        self._more_due = False  # the last step left due labels for the next

    async def run(self) -> None:
        while True:
            epoch = await self._lease.hold(self._lease_ms)
            if epoch:
                log.info("trainer of %s: lease taken (epoch %d)", self._pipeline, epoch)
                await self._train(epoch)
            await asyncio.sleep(self._lease_ms / 3000)

    async def _train(self, epoch: int) -> None:
        trainer = await self._restore()
        labels = self._declared.labels
        reader = await asyncio.to_thread(
            PartitionReader,
            self._bootstrap,
            labels.topic,
            trainer.label_offsets(),
            self._group,
        )
        rule = self._declared.snapshots
        since_snapshot, snapshot_due = 0, time.monotonic() + rule.every_ms / 1000
        reading: asyncio.Future[list[Envelope]] | None = None
        try:
            while await self._lease.hold(self._lease_ms) == epoch:
                self._apply_choice(trainer)
                wait_s = 0.0 if self._more_due else 0.2  # due labels left: learn on at once
                reading = asyncio.ensure_future(
                    asyncio.to_thread(reader.read, self._batch_size, wait_s)
                )
                envelopes = await asyncio.shield(reading)
                fresh, dead = self._decode(envelopes)
                left_out = trainer.accept(fresh)
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
        watermark = await self._served.watermark(wall_ms)
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
