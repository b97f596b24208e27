"""The worker's Faust agents without a broker: a fetched batch handed onto an agent's channel,
as the consumer's thread hands it, is processed by its stage, its outputs reach the sender,
and its offsets become committable only once they are acked; a flow that fails stops the
process at once (exit 3), so the failed batch is neither finished nor committed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faust
import pytest

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.dlq import dlq_topic
from streamproc.adapters.kafka.positions import FetchedBatch, Partition, Positions
from streamproc.adapters.memory import (
    InMemoryFeatureStore,
    InMemorySeenStore,
    InMemoryServedLog,
    InMemoryUnitStatsStore,
)
from streamproc.adapters.metrics import StageMetrics
from streamproc.adapters.outage import Outages
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.config.settings import Settings
from streamproc.core.features.stage import FeatureStage
from streamproc.errors import Unavailable
from streamproc.records import Envelope, OutRecord
from streamproc.stages.clean import CleanStage
from streamproc.stages.feature_step import FeatureStep
from streamproc.stages.predict import PredictStep
from streamproc.stages.scored import ScoredChain
from streamproc.worker.app import batch_agents, clean_flow, scored_flow, worker_app
from streamproc.worker.fatal import EXIT_INFRA
from streamproc.worker.state import WorkerState
from tests.builders import ORDER_SUBMITTED, order
from tests.conftest import REPO
from tests.fakes import HeldAcksSender

RAW = "shop.order.v1"


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[faust.App]:
    app = worker_app(Settings(app_id="agents-test", data_dir=tmp_path))
    yield app
    # An agent's stream makes Faust create its Kafka consumer (never started: the worker's
    # Kafka layer is off), whose thread object opens an event loop of its own at once; a
    # worker's process ends with it, a test session would leak one per app.
    if app._consumer is not None:
        unstarted: Any = app._consumer  # the aiokafka driver's: ConsumerT does not name _thread
        unstarted._thread.thread_loop.close()


@pytest.fixture
def positions() -> Iterator[Positions]:
    positions = Positions()
    positions.assign([(RAW, 0)])
    yield positions


def _fetched(positions: Positions, topic: str, records: list[Envelope]) -> FetchedBatch:
    """A batch as the consumer's thread hands it over: numbered, with its assignment."""
    epochs = {r.partition: positions.epoch((topic, r.partition)) for r in records}
    return positions.hand_over(FetchedBatch(topic, records, epochs))


def _raw(serde: AvroSerde, records: list[dict[str, Any]], start: int) -> list[Envelope]:
    return [
        Envelope(RAW, 0, start + i, b"k", serde.encode(RAW, ORDER_SUBMITTED, r), (), 1000 + i)
        for i, r in enumerate(records)
    ]


async def _until(condition: Callable[[], object], what: str, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _committable(positions: Positions) -> dict[Partition, int]:
    """The offsets the consumer may commit, once there are any (each is handed out once)."""
    found: dict[Partition, int] = {}

    def taken() -> dict[Partition, int]:
        found.update(positions.take_committable())
        return found

    await _until(taken, "offsets to commit")
    return found


def _consumed(metrics: StageMetrics, topic: str) -> float | None:
    return metrics.registry.get_sample_value("streamproc_records_consumed_total", {"topic": topic})


def _state(metrics: StageMetrics, budget_s: float = 60.0) -> WorkerState:
    """A worker's state without Redis: outages ridden through for `budget_s`."""
    return WorkerState(Outages(budget_s, metrics), metrics)


async def _start(app: faust.App, topic: str) -> Any:
    """The agent of `topic`, started as the worker starts it (its flow control resumed)."""
    agent = app.agents[f"batches_of_{topic}"]
    app.flow_control.resume()
    await agent.start()
    return agent


async def test_a_batch_on_the_channel_is_cleaned_sent_and_committable_once_acked(
    app: faust.App, positions: Positions, spec: PipelineSpec, serde: AvroSerde
) -> None:
    stage = CleanStage(spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"key")
    sender = HeldAcksSender()
    metrics = StageMetrics()
    flows = {RAW: clean_flow(stage, sender, metrics, RAW, _state(metrics))}  # type: ignore[arg-type]
    channels = batch_agents(app, flows, positions, in_flight=2)
    agent = await _start(app, RAW)
    try:
        first = [order(customer_id="a"), order(amount=-1.0), order(customer_id="b")]
        second = [order(customer_id="c")]
        await channels[RAW].send(value=_fetched(positions, RAW, _raw(serde, first, 0)))
        await channels[RAW].send(value=_fetched(positions, RAW, _raw(serde, second, 3)))
        # both batches processed and handed to the sender while the first waits for its acks
        await _until(lambda: len(sender.submitted) == 2, "both batches sent")
        sent = [record for batch in sender.submitted for record in batch]
        clean = [r for r in sent if r.topic == spec.sink.topic]
        decoded = [serde.decode(r.value, spec.sink.schema_name) for r in clean]
        assert [d["event_id"] for d in decoded] == [first[0]["event_id"], *_ids(first[2:], second)]
        dead = [r for r in sent if r.topic == dlq_topic(RAW)]
        assert len(dead) == 1  # the negative amount, as a dead letter
        await asyncio.sleep(0.1)
        assert positions.take_committable() == {}  # nothing acked: nothing may be committed
        assert _consumed(metrics, RAW) is None  # a batch is counted once acked

        sender.acked.set()
        assert await _committable(positions) == {(RAW, 0): 4}
        await _until(lambda: _consumed(metrics, RAW) == 4, "the batches counted")
    finally:
        await agent.stop()


class _FlakySeenStore(InMemorySeenStore):
    """Redis out for the first `failures` calls (each raising Unavailable), then back."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.calls = 0
        self._failures = failures

    async def claim(self, claims: Any, rules: Any) -> Any:
        self.calls += 1
        if self.calls <= self._failures:
            raise Unavailable("redis", "Redis dedupe call failed: Connection refused")
        return await super().claim(claims, rules)


async def test_a_redis_outage_is_ridden_through_and_the_same_batch_processed_once_back(
    app: faust.App, positions: Positions, spec: PipelineSpec, serde: AvroSerde
) -> None:
    seen = _FlakySeenStore(failures=3)
    stage = CleanStage(spec, serde, seen, InMemoryUnitStatsStore(), b"key")
    sender = HeldAcksSender()
    sender.acked.set()
    metrics = StageMetrics()
    state = _state(metrics)
    flows = {RAW: clean_flow(stage, sender, metrics, RAW, state)}  # type: ignore[arg-type]
    channels = batch_agents(app, flows, positions, in_flight=1)
    agent = await _start(app, RAW)
    outage = {"dependency": "redis"}
    try:
        batch = [order(customer_id="a"), order(customer_id="b")]
        await channels[RAW].send(value=_fetched(positions, RAW, _raw(serde, batch, 0)))
        await _until(lambda: state.outages.active, "the outage noticed")
        assert metrics.registry.get_sample_value("streamproc_outage_active", outage) == 1
        assert state.not_ready() == [f"redis unavailable for {0:.0f} s"]
        assert await _committable(positions) == {(RAW, 0): 2}  # once Redis answered
        assert seen.calls == 4
        assert [len(b) for b in sender.submitted] == [2]  # sent once, after the outage
        assert metrics.registry.get_sample_value("streamproc_outage_active", outage) == 0
        assert metrics.registry.get_sample_value("streamproc_outages_total", outage) == 1
        assert not state.outages.active
    finally:
        await agent.stop()


def _ids(*batches: list[dict[str, Any]]) -> list[str]:
    return [str(record["event_id"]) for batch in batches for record in batch]


def _as_read(outputs: list[OutRecord], topic: str) -> list[Envelope]:
    """The clean stage's outputs as the scored agent reads them from the clean topic."""
    return [
        Envelope(topic, 0, offset, r.key, r.value, tuple(r.headers), r.timestamp_ms)
        for offset, r in enumerate(outputs)
    ]


async def test_clean_orders_on_the_scored_channel_are_predicted_and_their_x_logged(
    app: faust.App, positions: Positions, spec: PipelineSpec, serde: AvroSerde
) -> None:
    assert spec.models is not None
    cleaned = await CleanStage(
        spec, serde, InMemorySeenStore(), InMemoryUnitStatsStore(), b"key"
    ).process(_raw(serde, [order(customer_id=f"c{i % 2}", amount=10.0 + i) for i in range(5)], 0))
    assert len(cleaned.clean) == 5
    topic = spec.sink.topic
    positions.assign([(topic, 0)])
    served = InMemoryServedLog()
    chain = ScoredChain(
        FeatureStep.of_clean_orders(
            spec, serde, FeatureStage(spec.features, InMemoryFeatureStore())
        ),
        PredictStep(spec.models, serde),
        served,
    )
    sender = HeldAcksSender()
    metrics = StageMetrics()
    flows = {topic: scored_flow(chain, sender, metrics, topic, _state(metrics))}  # type: ignore[arg-type]
    channels = batch_agents(app, flows, positions, in_flight=1)
    agent = await _start(app, topic)
    try:
        await channels[topic].send(value=_fetched(positions, topic, _as_read(cleaned.clean, topic)))
        await _until(lambda: sender.submitted, "the predictions sent")
        predictions = [
            serde.decode(r.value, spec.models.predictions.schema_name)
            for r in sender.submitted[0]
            if r.topic == spec.models.predictions.topic
        ]
        ids = [serde.decode(r.value, spec.sink.schema_name)["event_id"] for r in cleaned.clean]
        assert [p["event_id"] for p in predictions] == ids
        assert sorted(served.x) == sorted(ids)  # the x each was served, for the label join
        assert positions.take_committable() == {}
        sender.acked.set()
        assert await _committable(positions) == {(topic, 0): 5}
    finally:
        await agent.stop()


# A worker with one agent whose flow raises, fed one batch: run in a process of its own,
# since what it must do is end that process.
_FAILING_WORKER = textwrap.dedent(
    """
    import asyncio, logging, sys
    from streamproc.adapters.kafka.positions import FetchedBatch, Positions
    from streamproc.records import Envelope
    from streamproc.config.settings import Settings
    from streamproc.worker.app import batch_agents, worker_app

    async def failing(batch):
        raise RuntimeError("a bug outside the processor")

    async def main():
        logging.basicConfig(level=logging.INFO)  # as the Faust worker sets logging up
        app = worker_app(Settings(app_id="agents-test", data_dir=sys.argv[1]))
        positions = Positions()
        positions.assign([("t", 0)])
        channels = batch_agents(app, {"t": failing}, positions, in_flight=1)
        app.flow_control.resume()
        await app.agents["batches_of_t"].start()
        batch = FetchedBatch("t", [Envelope("t", 0, 0, None, b"")], {0: positions.epoch(("t", 0))})
        await channels["t"].send(value=positions.hand_over(batch))
        await asyncio.sleep(10)
        print("still running; committable:", positions.take_committable())

    asyncio.run(main())
    """
)


def test_a_flow_that_raises_stops_the_worker_with_exit_3_before_anything_is_committed(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _FAILING_WORKER, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_INFRA, done.stdout + done.stderr
    assert "still running" not in done.stdout
    assert "worker stopping" in done.stderr
    assert "a bug outside the processor" in done.stderr
