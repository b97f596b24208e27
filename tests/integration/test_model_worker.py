"""Online learning through the real worker, broker and Redis: predictions for every clean
order, labels learned as event time reaches them, and a SIGKILL of the trainer's worker from
which the model is restored without learning any label twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.adapters.kafka.model_snapshots import (
    SNAPSHOTS_TOPIC,
    forget_models,
    models_key,
    read_latest,
)
from streamproc.adapters.kafka.producer import produce_all
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.core.training import read_header
from streamproc.scenario.shop import GeneratorConfig, generate
from streamproc.tools.demo import produce_scenario
from tests.builders import ORDER_SUBMITTED
from tests.conftest import REPO
from tests.integration.conftest import (
    OUTCOMES,
    RAW_ORDERS,
    Stack,
    Worker,
    new_group,
    start_worker,
    stop_worker,
)

PREDICTIONS = "shop.order_prediction.v1"
EVENTS = 4_000


def _pipeline(folder: Path) -> Path:
    """The shop pipeline with snapshots every 150 labels: several before the kill."""
    declared = yaml.safe_load((REPO / "pipelines/shop_orders.yaml").read_text())
    declared["models"]["snapshots"] = {"every_labels": 150, "every": "2s"}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(declared))
    return path


def _wait(condition: Any, what: str, worker: Worker, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited while waiting for {what}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            # the trainer's label outcomes say where the missing labels went
            labels = [line for line in worker.metrics().splitlines() if "labels_total{" in line]
            pytest.fail(
                f"timed out waiting for {what}:\n" + "\n".join([*labels, worker.log_tail()])
            )
        time.sleep(0.3)


class Snapshots:
    """The newest snapshot header of a deployment, read incrementally from the topic."""

    def __init__(self, stack: Stack, scope: str) -> None:
        self._topic = SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC)
        self._scope = scope
        self._newest: dict[str, Any] | None = None

    def header(self) -> dict[str, Any] | None:
        found = read_latest(self._topic, self._scope).get(models_key(self._scope))
        if found is not None:
            self._newest = read_header(found)
        return self._newest

    def close(self) -> None:
        forget_models(self._topic, self._scope)
        self._topic.close()


def _predictions(
    stack: Stack, start: list[TopicPartition], ids: set[str], serde: AvroSerde, timeout_s: float
) -> list[dict[str, Any]]:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": "it-predictions",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(start)
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while seen < ids and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.5):
                record = serde.decode(message.value(), "shop.OrderPrediction")
                if record["event_id"] in ids:
                    found.append(record)
                    seen.add(record["event_id"])
    finally:
        consumer.close()
    return found


def test_the_model_learns_delayed_labels_and_survives_a_sigkill(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    scenario = generate(GeneratorConfig(events=EVENTS, seed=43))
    group = new_group(stack)
    snapshots = Snapshots(stack, f"{group}/shop_orders")
    predictions_start = end_offsets(stack.kafka, PREDICTIONS)
    env = {"STREAMPROC_PIPELINE": str(_pipeline(tmp_path)), "STREAMPROC_WORKER_ID": "it-trainer"}
    half = len(scenario.events) // 2
    first, second = (
        replace(scenario, events=scenario.events[part], truth=scenario.truth[part])
        for part in (slice(None, half), slice(half, None))
    )
    encode = lambda event: serde.encode(RAW_ORDERS, ORDER_SUBMITTED, event)  # noqa: E731
    worker = start_worker(stack, group, tmp_path / "first", **env)
    try:
        produce_scenario(stack.kafka, RAW_ORDERS, first, encode)
        produce_all(
            stack.kafka,
            OUTCOMES,
            (
                (o["event_id"].encode(), serde.encode(OUTCOMES, "shop.OrderOutcome", o), None)
                for o in scenario.outcomes
            ),
        )
        _wait(
            lambda: (header := snapshots.header()) is not None and header["learned"] >= 300,
            "a snapshot with 300 labels learned",
            worker,
        )
        worker.process.kill()  # SIGKILL: no goodbye, no last snapshot
        worker.process.wait()
        at_kill = snapshots.header()
        assert at_kill is not None

        worker = start_worker(stack, group, tmp_path / "second", **env)
        produce_scenario(stack.kafka, RAW_ORDERS, second, encode)
        orders = {t.event_id for t in scenario.truth if t.kind == "order"}
        predicted = _predictions(stack, predictions_start, orders, serde, timeout_s=180)
        # Every order is scored, those in flight at the kill too: a batch's input offsets are
        # committed only once its outputs are acked, so the restarted worker reads again what
        # the killed one had not finished, on both topics; the seen store knows a record met
        # again at its own offset (not a duplicate), and the served-x log keeps the first x.
        # Such an order may be scored twice (its prediction acked, its offset not committed
        # yet): at least once, never lost; `_predictions` keeps the first of each.
        missing = orders - {p["event_id"] for p in predicted}
        assert not missing, f"{len(missing)} of {len(orders)} orders never scored"
        # Every label whose time the stream reached, learned once.
        watermark = max(p["occurred_at"] for p in predicted)
        expected = sum(1 for o in scenario.outcomes if o["occurred_at"] <= watermark)
        _wait(
            lambda: (header := snapshots.header()) is not None and header["learned"] >= expected,
            f"a snapshot with all {expected} due labels learned",
            worker,
        )
        final = snapshots.header()
        assert final is not None
        assert final["learned"] == expected  # more would be a label learned twice
        assert final["version"] > at_kill["version"]
        assert final["epoch"] >= at_kill["epoch"]  # a new epoch once the lease had expired
        assert "restored v" in worker.log.read_text()
        # Predictions resumed after the restart, with the restored models or newer ones.
        later = {t.event_id for t in second.truth if t.kind == "order"}
        resumed = [p for p in predicted if p["event_id"] in later]
        assert resumed and min(p["model_version"] for p in resumed) >= at_kill["version"]
        assert final["scores"]["logreg"]["roc_auc"] > 0.58  # learned (untrained: 0.5)
    finally:
        stop_worker(worker)
        delete_namespace(stack.redis_url, group)
        snapshots.close()


def _cli(group: str, *args: str) -> str:
    env = {**os.environ, "STREAMPROC_APP_ID": group}
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", "model", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_operator_promotes_and_rolls_back_and_the_worker_serves_the_choice(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    group = new_group(stack)
    start = end_offsets(stack.kafka, PREDICTIONS)
    worker = start_worker(stack, group, tmp_path, STREAMPROC_FOLLOW_INTERVAL_S="0.2")
    try:
        served_by = []
        for seed, action in ((51, ("promote", "hat")), (52, ("rollback",)), (53, None)):
            scenario = generate(GeneratorConfig(events=300, seed=seed))
            encode = lambda event: serde.encode(RAW_ORDERS, ORDER_SUBMITTED, event)  # noqa: E731
            produce_scenario(stack.kafka, RAW_ORDERS, scenario, encode)
            orders = {t.event_id for t in scenario.truth if t.kind == "order"}
            predicted = _predictions(stack, start, orders, serde, timeout_s=120)
            assert {p["event_id"] for p in predicted} == orders
            served_by.append({p["model_name"] for p in predicted})
            if action is not None:
                _cli(group, *action)
                time.sleep(1.5)  # the worker follows the snapshot topic every 0.2 s
        assert served_by == [{"logreg"}, {"hat"}, {"logreg"}]
        listed = json.loads(_cli(group, "list", "--json"))
        assert listed["choice"]["champion"] == "logreg" and listed["choice"]["pinned"]
        assert worker.counter("streamproc_model_serving", model="logreg") == 1.0
    finally:
        stop_worker(worker)
        delete_namespace(stack.redis_url, group)
        forget_models(SnapshotTopic(stack.kafka, SNAPSHOTS_TOPIC), f"{group}/shop_orders")


def test_a_trainer_only_process_trains_what_inference_only_workers_serve(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    """STREAMPROC_INFERENCE=false: the process consumes nothing and learns; the worker with
    STREAMPROC_TRAINER=false scores every order and swaps in the trainer's snapshots."""
    scenario = generate(GeneratorConfig(events=1_500, seed=47))
    group = new_group(stack)
    snapshots = Snapshots(stack, f"{group}/shop_orders")
    start = end_offsets(stack.kafka, PREDICTIONS)
    pipeline = str(_pipeline(tmp_path))
    common = {"STREAMPROC_PIPELINE": pipeline, "STREAMPROC_FOLLOW_INTERVAL_S": "0.2"}
    inference = start_worker(
        stack, group, tmp_path / "inference", STREAMPROC_TRAINER="false", **common
    )
    trainer = start_worker(
        stack, group, tmp_path / "trainer", STREAMPROC_INFERENCE="false", **common
    )
    try:
        encode = lambda event: serde.encode(RAW_ORDERS, ORDER_SUBMITTED, event)  # noqa: E731
        produce_scenario(stack.kafka, RAW_ORDERS, scenario, encode)
        labels = [
            (o["event_id"].encode(), serde.encode(OUTCOMES, "shop.OrderOutcome", o), None)
            for o in scenario.outcomes
        ]
        produce_all(stack.kafka, OUTCOMES, labels)
        _wait(
            lambda: (header := snapshots.header()) is not None and header["learned"] >= 300,
            "a snapshot with 300 labels learned",
            trainer,
        )
        orders = {t.event_id for t in scenario.truth if t.kind == "order"}
        predicted = _predictions(stack, start, orders, serde, timeout_s=120)
        assert {p["event_id"] for p in predicted} == orders
        consumed = "streamproc_records_consumed_total"
        assert inference.counter(consumed, topic=RAW_ORDERS) >= len(scenario.events)
        assert trainer.counter(consumed, topic=RAW_ORDERS) == 0
        assert trainer.counter("streamproc_labels_total", outcome="learned") >= 300
        assert inference.counter("streamproc_labels_total", outcome="learned") == 0
        for process, role in ((inference, "worker"), (trainer, "trainer")):
            status, report = process.health()
            assert (status, report["status"], report["role"]) == (200, "ok", role)
            assert process.readiness() == (200, {"ready": True, "reasons": []})
        # each process reports the lag of what it reads: the orders, and the labels
        for process, topic in ((inference, RAW_ORDERS), (trainer, OUTCOMES)):
            series = f'streamproc_consumer_lag{{partition="0",topic="{topic}"}}'
            reported = lambda w=process, s=series: s in w.metrics()  # noqa: E731
            _wait(reported, f"{series} reported", process, 30)

        more = generate(GeneratorConfig(events=300, seed=48))  # scored after the swap
        produce_scenario(stack.kafka, RAW_ORDERS, more, encode)
        later = {t.event_id for t in more.truth if t.kind == "order"}
        rescored = _predictions(stack, start, later, serde, timeout_s=120)
        assert rescored and min(p["model_version"] for p in rescored) > 0

        trainer.process.terminate()  # what an orchestrator sends: a clean stop, at once
        assert trainer.process.wait(timeout=15) == 0, trainer.log_tail()
    finally:
        stop_worker(inference)
        stop_worker(trainer)
        delete_namespace(stack.redis_url, group)
        snapshots.close()
