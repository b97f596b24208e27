"""What the replay tests share: a shop deployment on topics of its own (the shared topics hold
every other test's records, and a replay reads its log from the start), the CLI, a running
replay, and reading a topic whole."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.topics import load_topic_specs, plan_changes
from streamproc.scenario.shop import GeneratorConfig, generate
from streamproc.tools.demo import live_records
from tests.builders import ORDER_SUBMITTED
from tests.conftest import REPO
from tests.integration.conftest import PII_KEY, Stack

SHOP_PREFIX = "shop.order"


@dataclass(frozen=True)
class OwnDeployment:
    """A deployment of the shop pipeline whose topics are named `<tag>.order...`."""

    tag: str
    group: str  # app id and Redis namespace
    folder: Path
    pipeline: Path
    env: dict[str, str]

    def topic(self, shop_name: str) -> str:
        return shop_name.replace(SHOP_PREFIX, f"{self.tag}.order", 1)

    def pipeline_with(self, name: str, *edits: tuple[str, str]) -> Path:
        """A copy of the pipeline with each (old, new) text replaced: a changed definition."""
        text = self.pipeline.read_text()
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new, 1)
        path = self.folder / name
        path.write_text(text)
        return path


@dataclass
class RunningReplay:
    process: subprocess.Popen[str]
    out: Path

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def wait_for(self, text: str, timeout_s: float = 240) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.lines():
                if text in line:
                    return line
            if self.process.poll() is not None:
                pytest.fail(f"replay exited {self.process.returncode}:\n" + "\n".join(self.lines()))
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} in {timeout_s} s:\n" + "\n".join(self.lines()[-20:]))
            time.sleep(0.5)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def own_deployment(stack: Stack, folder: Path) -> Iterator[OwnDeployment]:
    """Topics declared as the repo's, the shop's renamed; deleted after, with the Redis
    namespace and every version's topics."""
    tag = f"it{uuid.uuid4().hex[:8]}"
    group = f"it-{tag}"
    topics = folder / "topics"
    topics.mkdir(parents=True)
    for declared in (REPO / "topics").glob("*.yaml"):
        text = declared.read_text().replace(SHOP_PREFIX, f"{tag}.order")
        (topics / declared.name.replace(SHOP_PREFIX, f"{tag}.order")).write_text(text)
    pipeline = folder / "pipeline.yaml"
    text = (REPO / "pipelines/shop_orders.yaml").read_text().replace(SHOP_PREFIX, f"{tag}.order")
    own = (
        "models:\n"
        "  snapshots: {every_labels: 500, every: 2s}\n"  # often: tests read the models
        f"  predictions: {{topic: {tag}.order_prediction.v1, schema: shop.OrderPrediction}}\n"
    )
    pipeline.write_text(text.replace("models:\n", own, 1))
    specs = load_topic_specs(topics)
    admin = KafkaAdmin(stack.kafka, timeout_s=60)
    admin.apply(plan_changes(specs, admin.read_state(specs)))
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_REDIS_URL": stack.redis_url,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "STREAMPROC_PII_KEY": PII_KEY,
        "STREAMPROC_PIPELINE": str(pipeline),
        "STREAMPROC_TOPICS_DIR": str(topics),
        "STREAMPROC_SCHEMAS_DIR": str(REPO / "schemas"),
        "STREAMPROC_DATA_DIR": str(folder / "state"),
    }
    try:
        yield OwnDeployment(tag, group, folder, pipeline, env)
    finally:
        client = AdminClient({"bootstrap.servers": stack.bootstrap})
        mine = [t for t in client.list_topics(timeout=30).topics if t.startswith(f"{tag}.")]
        for deleted in client.delete_topics(mine).values() if mine else ():
            deleted.result(30)
        delete_namespace(stack.redis_url, group)


def replay_records(
    deployment: OwnDeployment, serde: AvroSerde, seed: int, events: int
) -> tuple[list[tuple[str, bytes | None, bytes, None]], set[str]]:
    """The scenario's orders and labels as a live shop sends them, event ids prefixed by the
    seed (a second load is no retry of the first); and the orders' event ids."""
    scenario = generate(GeneratorConfig(events=events, seed=seed))
    renamed: list[Any] = [{**e, "event_id": f"{seed}-{e['event_id']}"} for e in scenario.events]
    scenario = replace(
        scenario,
        events=renamed,
        outcomes=[{**o, "event_id": f"{seed}-{o['event_id']}"} for o in scenario.outcomes],
    )
    raw, labels = deployment.topic("shop.order.v1"), deployment.topic("shop.order_outcome.v1")
    records = live_records(
        (raw, lambda e: serde.encode(raw, ORDER_SUBMITTED, e)),
        (labels, lambda o: serde.encode(labels, "shop.OrderOutcome", o)),
        scenario,
    )
    return list(records), {e["event_id"] for e in scenario.events}


def cli(
    env: dict[str, str], *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def start_replay(env: dict[str, str], folder: Path, *args: str) -> RunningReplay:
    out = folder / f"replay-{uuid.uuid4().hex[:6]}.out"
    with out.open("w") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "streamproc.cli", "replay", "--interval", "1", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return RunningReplay(process, out)


def read_all(stack: Stack, topic: str, idle_s: float = 3.0) -> list[Any]:
    """Every committed record of `topic`, until none has come for `idle_s`."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"it-read-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[Any] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < idle_s:
            batch = consumer.consume(1000, timeout=0.5)
            if batch:
                quiet_since = time.monotonic()
            for message in batch:
                assert message.error() is None, message.error()
                found.append(message)
    finally:
        consumer.close()
    return found
