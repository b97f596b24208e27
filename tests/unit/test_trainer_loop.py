"""The trainer process with fakes for its lease, served-x log, label topic, snapshot topic
and sender: labels are learned from the x their event was served, snapshots carry what was
learned, a lost lease stops learning, a restart goes on from the last snapshot without
learning a label twice, and promotions and operators' choices reach the topic."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.model_snapshots import (
    ChampionChoice,
    champion_key,
    models_key,
    serving_key,
)
from streamproc.adapters.metrics import StageMetrics
from streamproc.config.kafka import KafkaConnection
from streamproc.config.models import (
    Labels,
    ModelInputs,
    Models,
    ModelSpec,
    PromotionRule,
    Snapshots,
)
from streamproc.core.learning import probability
from streamproc.core.training import ServedX, load_state, read_header
from streamproc.stages.predict import PredictStep
from streamproc.worker import trainer as trainer_module
from streamproc.worker.follower import SnapshotFollower
from streamproc.worker.trainer import MODEL_EVENT_SCHEMA, MODEL_EVENTS_TOPIC, TrainerLoop
from tests.fakes import (
    MemoryLabelTopic,
    MemoryServedLog,
    MemorySnapshotTopic,
    RecordingSender,
    ScriptedLease,
)

SCOPE = "app/shop"
LABELS = "labels"
START_MS = 1_774_746_000_000
LOGREG = ModelSpec(name="logreg", pipeline="StandardScaler | LogisticRegression")
MODELS = Models(
    inputs=ModelInputs(numeric=["v"]),
    labels=Labels(topic=LABELS),
    champion=LOGREG,
    snapshots=Snapshots(every_labels=4, every="1h"),
)


@dataclass
class Fakes:
    """Everything a trainer process talks to, shared by the processes of one test."""

    serde: AvroSerde
    snapshots: MemorySnapshotTopic
    labels: MemoryLabelTopic
    served: MemoryServedLog
    sender: RecordingSender

    def serve(self, count: int, start: int = 0) -> None:
        """Events e<start>… scored a second apart; v is 1.0 for a fraud, 0.0 otherwise."""
        for i in range(start, start + count):
            x = ServedX({"v": float(_fraud(i))}, {}, START_MS + i * 1000, 0)
            self.served.x[f"e{i}"] = x.dump()
        self.served.newest_ms[0] = START_MS + (start + count) * 1000

    def label(self, *numbers: int) -> None:
        """The labels of these events, known half a second after each."""
        for i in numbers:
            record = {
                "event_id": f"e{i}",
                "is_fraud": _fraud(i),
                "occurred_at": START_MS + i * 1000 + 500,
            }
            value = self.serde.encode(LABELS, "shop.OrderOutcome", record)
            self.labels.append(0, f"e{i}".encode(), value)

    def header(self) -> dict[str, Any] | None:
        data = self.snapshots.latest(models_key(SCOPE))
        return None if data is None else read_header(data)


def _fraud(i: int) -> bool:
    return random.Random(i).random() < 0.5  # noqa: S311 - test data


@pytest.fixture
def fakes(serde: AvroSerde, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fakes]:
    found = Fakes(
        serde, MemorySnapshotTopic(), MemoryLabelTopic(LABELS), MemoryServedLog(), RecordingSender()
    )
    monkeypatch.setattr(trainer_module, "SnapshotTopic", found.snapshots.opener())
    monkeypatch.setattr(trainer_module, "PartitionReader", found.labels.reader)
    monkeypatch.setattr(trainer_module, "BatchSender", lambda _kafka, **_: found.sender)
    yield found


@dataclass
class Process:
    """One trainer process: its loop, its lease, its follower of the snapshot topic."""

    loop: TrainerLoop
    lease: ScriptedLease
    follower: SnapshotFollower
    metrics: StageMetrics

    def learned(self) -> float:
        value = self.metrics.registry.get_sample_value(
            "streamproc_labels_total", {"outcome": "learned"}
        )
        return value or 0.0


def _process(
    fakes: Fakes,
    epoch: int,
    models: Models = MODELS,
    batch_size: int = 4,
    scored_topic: str | None = None,
) -> Process:
    step = PredictStep(models, fakes.serde)
    metrics = StageMetrics()
    follower = SnapshotFollower(SCOPE, MemorySnapshotTopic(fakes.snapshots.log), step, metrics)
    lease = ScriptedLease(epoch)
    loop = TrainerLoop(
        SCOPE,
        step,
        fakes.serde,
        KafkaConnection("unused:9092"),
        "group",
        fakes.served,  # type: ignore[arg-type]
        lease,  # type: ignore[arg-type]
        follower,
        metrics,
        lease_ms=30,  # asks again every 10 ms once the lease is lost
        batch_size=batch_size,
        scored_topic=scored_topic,
    )
    return Process(loop, lease, follower, metrics)


async def _until(condition: Callable[[], object], what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _stopped(task: asyncio.Task[None]) -> None:
    """The process killed: no goodbye, no last snapshot."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_labels_are_learned_from_the_x_their_event_was_served(fakes: Fakes) -> None:
    fakes.serve(200)
    del fakes.served.x["e7"]  # never logged: its label waits for it, held
    fakes.label(*range(200))
    process = _process(fakes, epoch=1, batch_size=200)
    task = asyncio.create_task(process.loop.run())
    try:
        await _until(lambda: (h := fakes.header()) and h["learned"] == 199, "a snapshot of 199")
    finally:
        await _stopped(task)
    header = fakes.header()
    assert header is not None
    assert (header["epoch"], header["version"], header["held"]) == (1, 1, 1)
    assert header["label_offsets"] == {"0": 200}  # the held one too: a snapshot holds it
    data = fakes.snapshots.latest(models_key(SCOPE))
    assert data is not None
    model = load_state(data, MODELS)[0].models["logreg"]
    # the only link between a label and v is the x logged for its event id
    assert probability(model, {"v": 1.0}) > 0.6 > 0.4 > probability(model, {"v": 0.0})
    assert read_header(fakes.snapshots.latest(serving_key(SCOPE)) or b"")["version"] == 1


async def test_a_snapshot_is_published_every_few_labels_with_the_count_learned(
    fakes: Fakes,
) -> None:
    fakes.serve(12)
    fakes.label(*range(12))
    task = asyncio.create_task(_process(fakes, epoch=1).loop.run())
    try:
        await _until(lambda: (h := fakes.header()) and h["version"] == 3, "three snapshots")
    finally:
        await _stopped(task)
    headers = [read_header(v) for k, v in fakes.snapshots.log if k == models_key(SCOPE)]
    assert [(h["version"], h["learned"], h["label_offsets"]) for h in headers] == [
        (1, 4, {"0": 4}),
        (2, 8, {"0": 8}),
        (3, 12, {"0": 12}),
    ]


async def test_a_lost_lease_stops_learning_and_the_process_asks_for_it_again(
    fakes: Fakes,
) -> None:
    fakes.serve(20)
    fakes.label(*range(4))
    process = _process(fakes, epoch=1)
    task = asyncio.create_task(process.loop.run())
    try:
        await _until(lambda: fakes.header() is not None, "the first snapshot")
        process.lease.epoch = 0  # another process holds it now
        await _until(lambda: fakes.labels.open_readers == 0, "the label reader closed")
        fakes.label(*range(4, 12))
        asked = process.lease.holds
        await _until(lambda: process.lease.holds >= asked + 5, "the lease asked for again")
        assert process.learned() == 4
        assert fakes.labels.opened_at == [{}]  # not read again without the lease
        assert [k for k, _ in fakes.snapshots.log].count(models_key(SCOPE)) == 1
    finally:
        await _stopped(task)


async def test_a_broker_giving_no_metadata_for_a_while_is_ridden_through(fakes: Fakes) -> None:
    """As a broker restarting does: the scored topic's partitions unknown twice (CI saw
    the worker exit 3 on it); the trainer tries again, each reader closed, then learns."""
    fakes.serve(20)
    fakes.label(*range(6))
    fakes.labels.metadata_outages = 2
    process = _process(fakes, epoch=1, scored_topic="scored")
    task = asyncio.create_task(process.loop.run())
    try:
        await _until(lambda: process.learned() == 6, "six labels learned")
        assert len(fakes.labels.opened_at) == 3
        assert fakes.labels.open_readers == 1  # the two that failed were closed
        assert not task.done()
    finally:
        await _stopped(task)


async def test_a_restart_goes_on_from_the_last_snapshot_and_learns_no_label_twice(
    fakes: Fakes,
) -> None:
    fakes.serve(20)
    fakes.label(*range(6))
    first = _process(fakes, epoch=1)
    task = asyncio.create_task(first.loop.run())
    try:  # four labels, a snapshot, then two more learned that no snapshot holds
        await _until(lambda: first.learned() == 6, "six labels learned")
    finally:
        await _stopped(task)
    at_kill = fakes.header()
    assert at_kill is not None and (at_kill["version"], at_kill["learned"]) == (1, 4)

    second = _process(fakes, epoch=2)  # the lease expired; the next holder's epoch
    task = asyncio.create_task(second.loop.run())
    try:
        await _until(lambda: len(fakes.labels.opened_at) == 2, "the restarted reader")
        fakes.label(*range(6, 10))
        await _until(lambda: (h := fakes.header()) and h["epoch"] == 2, "a snapshot of epoch 2")
    finally:
        await _stopped(task)
    assert fakes.labels.opened_at[1] == {0: 4}  # from the snapshot's label offsets
    final = fakes.header()
    assert final is not None
    # labels 4 and 5 learned again after the kill, since the snapshot did not hold them
    assert (final["version"], final["learned"], final["label_offsets"]) == (2, 10, {"0": 10})
    assert second.learned() == 6


async def test_a_better_challenger_is_promoted_on_the_topic_and_in_a_model_event(
    fakes: Fakes,
) -> None:
    models = MODELS.model_copy(
        update={
            # a tree that predicts its leaf's majority class: no better than a coin before
            # its first split, against a regression that learns v at once
            "champion": ModelSpec(
                name="tree",
                pipeline="HoeffdingTreeClassifier",
                params={"HoeffdingTreeClassifier": {"leaf_prediction": "mc"}},
            ),
            "challengers": [LOGREG],
            "promotion": PromotionRule(window=50, margin=0.1),
            "snapshots": Snapshots(every_labels=20, every="1h"),
        }
    )
    fakes.serve(160)
    fakes.label(*range(160))
    process = _process(fakes, epoch=1, models=models, batch_size=20)
    task = asyncio.create_task(process.loop.run())
    try:
        await _until(lambda: fakes.snapshots.latest(champion_key(SCOPE)), "a champion choice")
        await _until(lambda: (h := fakes.header()) and h["learned"] == 160, "every label")
    finally:
        await _stopped(task)
    choice = ChampionChoice.load(fakes.snapshots.latest(champion_key(SCOPE)) or b"")
    assert (choice.champion, choice.pinned, choice.by, choice.previous) == (
        "logreg",
        False,
        "promotion rule",
        ["tree"],
    )
    assert process.follower.choice == choice  # applied at once, not when read back
    events = [
        fakes.serde.decode(r.value, MODEL_EVENT_SCHEMA)
        for r in fakes.sender.sent
        if r.topic == MODEL_EVENTS_TOPIC
    ]
    assert [(e["kind"], e["subject"], e["pipeline"]) for e in events] == [
        ("promotion", "logreg", SCOPE)
    ]
    final = fakes.header()
    assert final is not None and final["champion"] == "logreg"  # the snapshots' too


async def test_an_operators_pinned_choice_reaches_the_trainers_next_snapshot(
    fakes: Fakes,
) -> None:
    models = MODELS.model_copy(
        update={"challengers": [LOGREG.model_copy(update={"name": "other"})]}
    )
    fakes.serve(8)
    fakes.label(*range(4))
    process = _process(fakes, epoch=1, models=models)
    fakes.snapshots.publish(
        champion_key(SCOPE), ChampionChoice("other", True, "operator", 0, ["logreg"]).dump()
    )
    await process.follower.poll()  # what the follower's loop does every interval
    task = asyncio.create_task(process.loop.run())
    try:
        await _until(lambda: fakes.header() is not None, "a snapshot")
    finally:
        await _stopped(task)
    header = fakes.header()
    assert header is not None and (header["champion"], header["pinned"]) == ("other", True)
