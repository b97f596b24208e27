"""The real stack for integration tests: uses the running Kafka and Redis, or starts them.

With CI=true a stack that cannot be reached fails the session instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import KafkaAdmin, end_offsets, start_group_at
from streamproc.adapters.kafka.producer import BatchSender, make_producer
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.kafka import KafkaConnection
from streamproc.config.topics import load_topic_specs, plan_changes
from streamproc.scenario.shop import producer_key
from tests.builders import ORDER_SUBMITTED
from tests.conftest import REPO, unavailable

HERE = Path(__file__).parent
BASH = shutil.which("bash") or "bash"
RAW_ORDERS = "shop.order.v1"
CLEAN_ORDERS = "shop.order.clean.v1"
OUTCOMES = "shop.order_outcome.v1"
RUN_HEADER = "test.run"  # producers in tests mark their records, readers keep only theirs
# The type Producer.produce takes for headers; a list is invariant, so a list[tuple[str, bytes]]
# is not one.
ProducerHeaders = list[tuple[str, str | bytes | None]]
PII_KEY = "integration-test-pii-key"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Stack:
    bootstrap: str
    redis_url: str

    @property
    def kafka(self) -> KafkaConnection:
        """The broker as streamproc's Kafka clients take it (plaintext, as the stack runs)."""
        return KafkaConnection(self.bootstrap)


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


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    bootstrap = os.environ.get("STREAMPROC_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    redis_url = os.environ.get("STREAMPROC_REDIS_URL", "redis://127.0.0.1:6379/0")
    started_here = False
    if not (_kafka_up(bootstrap) and _redis_up(redis_url)):
        script = [BASH, str(REPO / "stack/stack.sh")]
        # A probe that timed out under load is not a stack that is down: stop at the end only
        # what this session started, never a stack that was already running.
        was_running = subprocess.run([*script, "status"], capture_output=True).returncode == 0  # noqa: S603
        result = subprocess.run([*script, "up"], capture_output=True, text=True)  # noqa: S603
        if result.returncode != 0:
            unavailable(f"could not start the stack: {result.stderr.strip()[-2000:]}")
        started_here = not was_running
    if not _kafka_up(bootstrap):
        unavailable(f"Kafka is not reachable at {bootstrap}")
    if not _redis_up(redis_url):
        unavailable(f"Redis is not reachable at {redis_url}")
    specs = load_topic_specs(REPO / "topics")
    admin = KafkaAdmin(KafkaConnection(bootstrap))
    admin.apply(plan_changes(specs, admin.read_state(specs)))
    yield Stack(bootstrap, redis_url)
    if started_here:
        subprocess.run([BASH, str(REPO / "stack/stack.sh"), "down"], check=False)  # noqa: S603


@contextmanager
def own_topic(stack: Stack, folder: Path, prefix: str, declaration: str) -> Iterator[str]:
    """A topic of one test, declared in `folder` (its topics folder) by `declaration` (the YAML
    after the name), created, and deleted after (with its DLQ, when it declares one)."""
    name = f"{prefix}.{uuid.uuid4().hex[:10]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(f"name: {name}\n{declaration}")
    specs = load_topic_specs(folder)
    admin = KafkaAdmin(stack.kafka, timeout_s=60)
    admin.apply(plan_changes(specs, admin.read_state(specs)))
    try:
        yield name
    finally:
        client = AdminClient({"bootstrap.servers": stack.bootstrap})
        for deleted in client.delete_topics([spec.name for spec in specs]).values():
            deleted.result(30)


def produce_raw_orders(
    stack: Stack, serde: AvroSerde, orders: Sequence[Mapping[str, Any]], run: bytes | None = None
) -> None:
    """Send raw orders as the shop's producers do (keyed by customer, idempotent, murmur2),
    tagged with `run` for read_run; waits for every ack."""
    producer = make_producer(stack.kafka)
    headers: ProducerHeaders = [(RUN_HEADER, run)] if run is not None else []
    for order in orders:
        value = serde.encode(RAW_ORDERS, ORDER_SUBMITTED, order)
        producer.produce(RAW_ORDERS, value, producer_key(order), headers=headers)
        producer.poll(0)
    assert producer.flush(30) == 0


def read_run(
    stack: Stack, start: list[TopicPartition], run: bytes, expected: int, timeout_s: float
) -> list[Any]:
    """Records from `start` on that carry this run's `test.run` header, until `expected`
    have come or time is up."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.bootstrap,
            "group.id": f"it-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign(start)
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                assert message.error() is None, message.error()
                if (RUN_HEADER, run) in (message.headers() or []):
                    found.append(message)
    finally:
        consumer.close()
    return found


def recent_timestamp_ms() -> int:
    """A record timestamp an hour ago, with odd milliseconds. Topics delete by record time: the
    broker's retention check (30 s after start, then every 5 minutes) removes records stamped
    further back than retention.ms, even ones produced a second ago."""
    return (int(time.time()) - 3_600) * 1_000 + 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def metric(exposition: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus text exposition, 0 when absent."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    braces = rf"\{{{re.escape(wanted)}\}}" if labels else ""
    match = re.search(rf"^{name}{braces} (\S+)$", exposition, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    metrics_url: str
    log: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:  # noqa: S310
            text: str = response.read().decode()
            return text

    def health(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of /healthz, beside /metrics on the worker's port."""
        url = self.metrics_url.removesuffix("/metrics") + "/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            return response.status, json.loads(response.read())

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of /readyz (200 ready, 503 with the reasons)."""
        url = self.metrics_url.removesuffix("/metrics") + "/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def counter(self, name: str, **labels: str) -> float:
        return metric(self.metrics(), name, **labels)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def new_group(stack: Stack) -> str:
    """A consumer group that starts at the end of the raw, clean and label topics: this test
    only."""
    group = f"it-{uuid.uuid4().hex[:12]}"
    for topic in (RAW_ORDERS, CLEAN_ORDERS, OUTCOMES):
        start_group_at(stack.kafka, group, end_offsets(stack.kafka, topic))
    return group


def start_worker(stack: Stack, group: str, folder: Path, **env_overrides: str) -> Worker:
    """A `streamproc worker` of `group` (its Redis namespace too), serving /metrics."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_APP_ID": group,
        "STREAMPROC_REDIS_URL": stack.redis_url,
        "STREAMPROC_REDIS_NAMESPACE": group,
        "STREAMPROC_PII_KEY": PII_KEY,
        "STREAMPROC_PIPELINE": str(REPO / "pipelines/shop_orders.yaml"),
        "STREAMPROC_WEB_PORT": str(port),
        "STREAMPROC_DATA_DIR": str(folder / "state"),
        "STREAMPROC_SCHEMAS_DIR": str(REPO / "schemas"),
        "STREAMPROC_TOPICS_DIR": str(REPO / "topics"),
        **env_overrides,
    }
    log = folder / "worker.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "streamproc.cli", "worker"], env=env, stdout=out, stderr=out
        )
    running = Worker(process, f"http://127.0.0.1:{port}/metrics", log)
    _STARTED.append(running)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{running.log_tail()}")
        try:
            running.metrics()
            return running
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the worker did not serve /metrics in 60s:\n{running.log_tail()}")
            time.sleep(0.3)


# Every worker a test started: one a failed assertion left running would go on consuming the
# shared topics and skew the next tests' counts (seen: three times the expected records).
_STARTED: list[Worker] = []


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    yield
    while _STARTED:
        worker = _STARTED.pop()
        if worker.process.poll() is None:
            stop_worker(worker)


Senders = Callable[..., BatchSender]  # the `senders` fixture: BatchSender's arguments


@pytest.fixture
def senders() -> Iterator[Senders]:
    """Makes BatchSenders, closed after the test: one left open serves librdkafka in its
    thread for the rest of the session, and once its broker is gone logs every reconnect to
    a stream pytest has closed (a traceback printed in that thread as the main one parsed
    code tripped CPython 3.11's AST recursion check: "SystemError: AST constructor
    recursion depth mismatch" in a later test)."""
    made: list[BatchSender] = []

    def make(kafka: KafkaConnection, **options: Any) -> BatchSender:
        made.append(sender := BatchSender(kafka, **options))
        return sender

    yield make
    for sender in made:
        sender.close(timeout_s=1.0)


def stop_worker(worker: Worker) -> None:
    worker.process.terminate()
    try:
        worker.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()


@pytest.fixture
def worker(stack: Stack, tmp_path: Path) -> Iterator[Worker]:
    """A `streamproc worker` in a new consumer group that starts at the topics' ends."""
    group = new_group(stack)
    running = start_worker(stack, group, tmp_path)
    yield running
    stop_worker(running)
    delete_namespace(stack.redis_url, group)
