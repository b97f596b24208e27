"""A serving worker follows the trainer's snapshots through the serving record: it unpickles
the champion alone, switches champion on an operator's or the rule's choice without waiting
for a snapshot, and never goes back to an older trainer's models; stopped, it closes the topic
after the read in flight."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from streamproc.adapters.kafka import model_snapshots
from streamproc.adapters.kafka.snapshots import Keep, last_wins
from streamproc.adapters.metrics import StageMetrics
from streamproc.config.models import Labels, ModelInputs, Models, ModelSpec
from streamproc.core.learning import probability
from streamproc.core.training import TrainerState, dump_serving, fresh_state
from streamproc.stages.predict import PredictStep
from streamproc.worker.follower import SnapshotFollower
from tests.fakes import MemorySnapshotTopic

SCOPE = "app/shop"
MODELS = Models(
    inputs=ModelInputs(numeric=["v"]),
    labels=Labels(topic="labels"),
    champion=ModelSpec(name="logreg", pipeline="StandardScaler | LogisticRegression"),
    challengers=[ModelSpec(name="forest", pipeline="HoeffdingTreeClassifier")],
)


class HeldTopic(MemorySnapshotTopic):
    """A topic whose read waits to be let through, and that notes its reads and its close."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()
        self.let_through = threading.Event()
        self.calls: list[str] = []

    def read_new(self, prefix: str, keep: Keep = last_wins) -> dict[str, bytes]:
        self.reading.set()
        self.let_through.wait(10)
        self.calls.append("read")
        return super().read_new(prefix, keep)

    def close(self) -> None:
        self.calls.append("close")
        super().close()


def _trained(version: int, epoch: int = 1) -> tuple[TrainerState, bytes]:
    state = fresh_state(MODELS)
    state.version = version
    for i in range(200):  # v predicts the label: a trained model scores far from 0.5
        for model in state.models.values():
            model.learn_one({"v": float(i % 2)}, bool(i % 2))
    return state, dump_serving(state, SCOPE, epoch=epoch, taken_at_ms=0)


def _follower() -> tuple[MemorySnapshotTopic, PredictStep, SnapshotFollower]:
    topic = MemorySnapshotTopic()
    step = PredictStep(MODELS, codec=None)  # type: ignore[arg-type]
    follower = SnapshotFollower(SCOPE, topic, step, StageMetrics())
    return topic, step, follower


def _score(model: Any) -> float:
    return probability(model, {"v": 1.0})


async def test_the_worker_unpickles_and_serves_the_champion_alone() -> None:
    topic, step, follower = _follower()
    state, served = _trained(3)
    topic.publish(model_snapshots.serving_key(SCOPE), served)
    await follower.poll()
    assert (step.serving.version, step.serving.champion) == (3, "logreg")
    assert list(step.serving.models) == ["logreg"]
    assert _score(step.serving.models["logreg"]) == _score(state.models["logreg"]) > 0.6


async def test_a_new_champion_is_served_from_the_record_already_read() -> None:
    topic, step, follower = _follower()
    state, served = _trained(3)
    topic.publish(model_snapshots.serving_key(SCOPE), served)
    await follower.poll()
    choice = model_snapshots.ChampionChoice("forest", True, "operator", 0)
    topic.publish(model_snapshots.champion_key(SCOPE), choice.dump())
    await follower.poll()
    assert (step.serving.version, list(step.serving.models)) == (3, ["forest"])
    assert _score(step.serving.models["forest"]) == _score(state.models["forest"])


async def test_an_older_trainers_late_snapshot_is_not_served() -> None:
    topic, step, follower = _follower()
    topic.publish(model_snapshots.serving_key(SCOPE), _trained(2, epoch=2)[1])
    await follower.poll()
    topic.publish(model_snapshots.serving_key(SCOPE), _trained(9, epoch=1)[1])  # a zombie's
    await follower.poll()
    assert (step.serving.epoch, step.serving.version) == (2, 2)


async def test_models_of_another_declaration_are_not_served() -> None:
    topic, step, follower = _follower()
    state, _ = _trained(5)
    state.hashes["logreg"] = "declared-otherwise"
    topic.publish(model_snapshots.serving_key(SCOPE), dump_serving(state, SCOPE, 1, 0))
    await follower.poll()
    assert step.serving.version == 0  # untrained, until the trainer publishes this declaration


async def test_before_any_snapshot_the_choice_picks_among_the_untrained_models() -> None:
    topic, step, follower = _follower()
    choice = model_snapshots.ChampionChoice("forest", True, "operator", 0)
    topic.publish(model_snapshots.champion_key(SCOPE), choice.dump())
    await follower.poll()
    assert (step.serving.version, step.serving.champion) == (0, "forest")
    topic.publish(model_snapshots.serving_key(SCOPE), _trained(1)[1])
    await follower.poll()
    assert (step.serving.version, list(step.serving.models)) == (1, ["forest"])


async def test_a_stopped_follower_closes_the_topic_once_the_read_in_flight_is_done() -> None:
    topic = HeldTopic()
    step = PredictStep(MODELS, codec=None)  # type: ignore[arg-type]
    follower = SnapshotFollower(SCOPE, topic, step, StageMetrics())
    following = asyncio.create_task(follower.follow(0.01))
    assert await asyncio.to_thread(topic.reading.wait, 10)
    following.cancel()
    await asyncio.sleep(0.05)
    assert topic.calls == []  # the read still runs in its thread: the consumer stays open
    topic.let_through.set()
    with pytest.raises(asyncio.CancelledError):
        await following
    assert topic.calls == ["read", "close"]


async def test_a_follower_stopped_between_reads_closes_the_topic() -> None:
    topic = HeldTopic()
    topic.let_through.set()
    step = PredictStep(MODELS, codec=None)  # type: ignore[arg-type]
    follower = SnapshotFollower(SCOPE, topic, step, StageMetrics())
    following = asyncio.create_task(follower.follow(60))
    await asyncio.wait_for(follower.ready.wait(), 10)
    following.cancel()
    with pytest.raises(asyncio.CancelledError):
        await following
    assert topic.calls == ["read", "close"]
