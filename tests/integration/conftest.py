"""The real stack for integration tests: uses the running Kafka and Redis, or starts them.

With CI=true a stack that cannot be reached fails the session instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streamproc.adapters.kafka import KafkaAdmin
from streamproc.topology import load_topic_specs, plan_changes
from tests.conftest import REPO

HERE = Path(__file__).parent
BASH = shutil.which("bash") or "bash"
RAW_ORDERS = "shop.order.v1"
PII_KEY = "integration-test-pii-key"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    redis_url: str


def _kafka_up(bootstrap: str) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: integration tests must not skip)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    bootstrap = os.environ.get("STREAMPROC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    redis_url = os.environ.get("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")
    started_here = False
    if not (_kafka_up(bootstrap) and _redis_up(redis_url)):
        result = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [BASH, str(REPO / "stack/stack.sh"), "up"], capture_output=True, text=True
        )
        if result.returncode != 0:
            _unavailable(f"could not start the stack: {result.stderr.strip()[-2000:]}")
        started_here = True
    if not _kafka_up(bootstrap):
        _unavailable(f"Kafka is not reachable at {bootstrap}")
    if not _redis_up(redis_url):
        _unavailable(f"Redis is not reachable at {redis_url}")
    specs = load_topic_specs(REPO / "topics")
    admin = KafkaAdmin(bootstrap)
    admin.apply(plan_changes(specs, admin.read_state(specs)))
    yield Stack(bootstrap, redis_url)
    if started_here:
        subprocess.run([BASH, str(REPO / "stack/stack.sh"), "down"], check=False)  # noqa: S603


def end_offsets(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Each partition of `topic` at its high watermark: where the next record will land."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "it-offsets"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p))[1])
            for p in sorted(partitions)
        ]
    finally:
        consumer.close()


def commit_group_at(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    """Start a consumer group at `offsets`, so it skips what earlier runs left in the topic."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    metrics_url: str
    log: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:  # noqa: S310
            text: str = response.read().decode()
            return text

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture
def worker(stack: Stack, tmp_path: Path) -> Iterator[Worker]:
    """A `streamproc worker` in a new consumer group that starts at the raw topic's end."""
    port = free_port()
    group = f"it-{uuid.uuid4().hex[:12]}"
    commit_group_at(stack.bootstrap, group, end_offsets(stack.bootstrap, RAW_ORDERS))
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_REDIS_URL": stack.redis_url,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "STREAMPROC_PII_KEY": PII_KEY,
        "STREAMPROC_PIPELINE": str(REPO / "pipelines/shop_orders.yaml"),
        "STREAMPROC_WEB_PORT": str(port),
        "STREAMPROC_DATA_DIR": str(tmp_path / "state"),
        "STREAMPROC_SCHEMAS_DIR": str(REPO / "schemas"),
        "STREAMPROC_TOPICS_DIR": str(REPO / "topics"),
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "streamproc.cli", "worker"], env=env, stdout=out, stderr=out
        )
    running = Worker(process, f"http://127.0.0.1:{port}/metrics", log)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{running.log_tail()}")
        try:
            running.metrics()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the worker did not serve /metrics in 60s:\n{running.log_tail()}")
            time.sleep(0.3)
    yield running
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
