"""A worker's memory stays bounded across snapshot cycles: the trainer's snapshot consumer
does not go on buffering what is published after its restore, the snapshot consumers fetch
nothing between reads, and a snapshot's megabytes are not copied to read its header or to
unpickle it (benchmarks/memory_bench.py measures the RSS)."""

from __future__ import annotations

import threading
import tracemalloc
from typing import Any

import pytest

from streamproc.adapters.kafka import model_snapshots, snapshots
from streamproc.adapters.metrics import StageMetrics
from streamproc.config.kafka import KafkaConnection
from streamproc.config.models import Labels, ModelInputs, Models, ModelSpec
from streamproc.core.training import (
    Label,
    dump_serving,
    dump_state,
    fresh_state,
    load_served_model,
    load_state,
    read_header,
)
from streamproc.stages.predict import PredictStep
from streamproc.worker import follower as follower_module
from streamproc.worker import trainer as trainer_module
from tests.fakes import MemorySnapshotTopic

SCOPE = "app/shop"
MODELS = Models(
    inputs=ModelInputs(numeric=["v"]),
    labels=Labels(topic="labels"),
    champion=ModelSpec(name="logreg", pipeline="StandardScaler | LogisticRegression"),
)


def _snapshot(version: int, padding: int = 0) -> bytes:
    state = fresh_state(MODELS)
    state.version = version
    if padding:  # a snapshot of some size: one held label with a long id
        event_id = "x" * padding
        state.held[event_id] = (Label(event_id, True, 0, 0, 0), 0)
    return dump_state(state, SCOPE, epoch=1, taken_at_ms=0)


async def test_the_trainers_snapshot_consumer_buffers_nothing_after_its_restore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = MemorySnapshotTopic()
    monkeypatch.setattr(trainer_module, "SnapshotTopic", topic.opener())
    monkeypatch.setattr(trainer_module, "BatchSender", lambda _bootstrap, **_: None)
    step = PredictStep(MODELS, codec=None)  # type: ignore[arg-type]
    metrics = StageMetrics()
    follower = follower_module.SnapshotFollower(
        SCOPE, MemorySnapshotTopic(topic.log), step, metrics
    )
    unused: Any = None  # the served log and the lease: restore needs neither
    loop = trainer_module.TrainerLoop(
        SCOPE,
        step,
        unused,
        KafkaConnection("unused:9092"),
        "group",
        unused,
        unused,
        follower,
        metrics,
    )
    key = model_snapshots.models_key(SCOPE)
    topic.publish(key, _snapshot(3))

    trainer = await loop._restore()
    assert trainer.state.version == 3
    snapshot = _snapshot(4, padding=10_000)
    for _ in range(100):  # the trainer's own snapshots, one per cycle
        topic.publish(key, snapshot)
    assert loop._snapshots.buffered_bytes == 0  # type: ignore[attr-defined]

    again = await loop._restore()  # a lease taken again: the newest snapshot, read anew
    assert again.state.version == 4
    assert loop._snapshots.buffered_bytes == 0  # type: ignore[attr-defined]


async def test_the_follower_loads_every_snapshot_in_one_thread_then_frees_the_old_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One thread: one malloc arena reused by every snapshot (glibc keeps an arena per thread
    that allocates), and the freed models handed back once per swap, not per poll."""
    topic = MemorySnapshotTopic()
    loaded_in: set[str] = set()
    releases: list[int] = []

    def loading(data: bytes, name: str, models: Models) -> Any:
        loaded_in.add(threading.current_thread().name)
        return load_served_model(data, name, models)

    monkeypatch.setattr(follower_module, "load_served_model", loading)
    monkeypatch.setattr(follower_module, "release_freed_memory", lambda: releases.append(1))
    step = PredictStep(MODELS, codec=None)  # type: ignore[arg-type]
    follower = follower_module.SnapshotFollower(SCOPE, topic, step, StageMetrics())
    for version in range(1, 41):
        state = fresh_state(MODELS)
        state.version = version
        served = dump_serving(state, SCOPE, epoch=1, taken_at_ms=0)
        topic.publish(model_snapshots.serving_key(SCOPE), served)
        await follower.poll()
        await follower.poll()  # nothing new: nothing loaded, nothing to release
    assert step.serving.version == 40
    # the snapshot thread, whatever else keeps the default executor's threads busy
    assert [name.rpartition("_")[0] for name in loaded_in] == ["streamproc-snapshots"]
    assert len(releases) == 40


def test_the_snapshot_consumer_fetches_only_while_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka fetches ahead (64 MB by default) whether or not the application reads: an
    idle follower's consumer queued every snapshot published. Its partitions are paused
    between reads, and resumed for each read."""
    calls: list[str] = []

    class Metadata:
        topics = {"snapshots": type("Topic", (), {"partitions": {0: None}})()}

    class FakeConsumer:
        def __init__(self, config: dict[str, Any]) -> None:
            calls.append("open")

        def list_topics(self, _topic: str, timeout: float) -> Metadata:
            return Metadata()

        def assign(self, _partitions: list[Any]) -> None:
            pass

        def resume(self, partitions: list[Any]) -> None:
            calls.append(f"resume {[p.partition for p in partitions]}")

        def pause(self, partitions: list[Any]) -> None:
            calls.append(f"pause {[p.partition for p in partitions]}")

        def get_watermark_offsets(self, partition: Any, timeout: float) -> tuple[int, int]:
            calls.append("read")
            return 0, 0  # an empty topic: read to its end at once

    monkeypatch.setattr(snapshots, "Consumer", FakeConsumer)
    topic = snapshots.SnapshotTopic(KafkaConnection("unused:9092"), "snapshots")
    assert topic.read_new("app/") == {}
    assert topic.read_new("app/") == {}
    assert calls == ["open", *["resume [0]", "read", "pause [0]"] * 2]


def _peak_bytes(work: Any, *args: Any) -> int:
    tracemalloc.start()
    try:
        work(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_snapshot_is_not_copied_to_read_its_header_or_to_load_it() -> None:
    size = 4_000_000
    data = _snapshot(5, padding=size)
    assert len(data) > size
    assert _peak_bytes(read_header, data) < 100_000
    state, _ = load_state(data, MODELS)
    assert state.version == 5 and len(next(iter(state.held))) == size
    # the long id (one string: key and label share it), and no copy of the pickle besides
    assert _peak_bytes(load_state, data, MODELS) < size * 1.5
