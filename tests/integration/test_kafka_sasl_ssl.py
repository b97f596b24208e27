"""Kafka over SASL_SSL (SCRAM-SHA-512 over TLS) on a broker of the test's own: every kind of
client streamproc makes reaches it from the settings alone, a worker runs on it, and each way
of getting the security wrong stops the command or the worker within seconds, with a message
that says what to fix and never the password."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ScramMechanism, UserScramCredentialDeletion
from pydantic import SecretStr

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import KafkaAdmin, end_offsets, start_group_at
from streamproc.adapters.kafka.client_logs import KafkaRefused
from streamproc.adapters.kafka.producer import BatchSender, produce_all, produce_records
from streamproc.adapters.kafka.reader import PartitionReader
from streamproc.adapters.kafka.snapshots import SnapshotTopic
from streamproc.config.settings import Settings
from streamproc.config.topics import Plan, TopicSpec
from streamproc.records import Envelope, OutRecord
from streamproc.scenario.shop import producer_key
from tests.builders import ORDER_SUBMITTED, order
from tests.conftest import REPO
from tests.harness.processes import RedisServer
from tests.harness.sasl_broker import SaslSslBroker
from tests.harness.tls import make_ca
from tests.integration.conftest import PII_KEY, Stack, free_port, start_worker, stop_worker

USER, PASSWORD = "streamproc", "correct-horse-battery-7f3a"
LEAVING, LEAVING_PASSWORD = "leaving", "soon-gone-password-51c8"
WRONG_PASSWORD = "not-the-password-91c2"  # noqa: S105 - a test value, searched for in logs
SECRETS = (PASSWORD, LEAVING_PASSWORD, WRONG_PASSWORD)
FAIL_WITHIN_S = 30.0  # the most a refused worker or command may take to exit
RAW, CLEAN = "shop.order.v1", "shop.order.clean.v1"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslSslBroker]:
    folder = tmp_path_factory.mktemp("sasl-kafka")
    running = SaslSslBroker(folder, users={USER: PASSWORD, LEAVING: LEAVING_PASSWORD}).start()
    yield running
    running.kill()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    running = RedisServer(tmp_path_factory.mktemp("sasl-redis")).start()
    yield running
    running.kill()


def _settings(broker: SaslSslBroker, **overrides: object) -> Settings:
    """The settings a deployment would give, as values; what every client is built from."""
    given: dict[str, object] = {
        "kafka_bootstrap": broker.sasl_bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": USER,
        "kafka_sasl_password": SecretStr(PASSWORD),
        "kafka_ssl_ca_location": broker.ca.cert_path,
        **overrides,
    }
    return Settings(**given)  # type: ignore[arg-type]


def _env(broker: SaslSslBroker, **overrides: str) -> dict[str, str]:
    """The same as STREAMPROC_* variables, for a `streamproc` process."""
    return {
        "STREAMPROC_KAFKA_BOOTSTRAP": broker.sasl_bootstrap,
        "STREAMPROC_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMPROC_KAFKA_SASL_USERNAME": USER,
        "STREAMPROC_KAFKA_SASL_PASSWORD": PASSWORD,
        "STREAMPROC_KAFKA_SSL_CA_LOCATION": str(broker.ca.cert_path),
        "STREAMPROC_TOPICS_DIR": str(REPO / "topics"),
        "STREAMPROC_SCHEMAS_DIR": str(REPO / "schemas"),
        **overrides,
    }


def _streamproc(
    env: Mapping[str, str], *args: str, timeout_s: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a `streamproc` command to its end; its result and how long it took."""
    started = time.monotonic()
    given = {**os.environ, **env}
    result = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", *args],
        env={key: value for key, value in given.items() if value != ""},  # "": unset
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return result, time.monotonic() - started


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"a password leaked: {text[-2000:]}"


@pytest.fixture(scope="module")
def declared_topics(broker: SaslSslBroker) -> None:
    """The declared topics, created by `streamproc topics apply` over SASL_SSL."""
    result, _ = _streamproc(_env(broker), "topics", "apply")
    assert result.returncode == 0, result.stderr
    _assert_no_secret(result.stdout, result.stderr)


async def test_every_kind_of_client_works_over_sasl_ssl_from_the_settings(
    broker: SaslSslBroker,
) -> None:
    kafka = _settings(broker).kafka_connection()
    assert kafka.properties()["bootstrap.servers"] == broker.sasl_bootstrap  # no PLAINTEXT
    topic, snapshots = f"sasl-{uuid.uuid4().hex[:8]}", f"sasl-snapshots-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdmin(kafka, timeout_s=15)
    admin.apply(
        Plan(create=[TopicSpec(name, 2, 1, {}, Path(__file__)) for name in (topic, snapshots)])
    )
    assert {topic, snapshots} <= set(admin.list_topic_names())

    sender = BatchSender(kafka)
    await sender.send([OutRecord(topic, b"k%d" % i, b"batch-%d" % i) for i in range(50)])
    sender.close()
    assert produce_records(kafka, [(topic, b"k%d" % i, b"tool-%d" % i, None) for i in range(50)])
    assert sum(p.offset for p in end_offsets(kafka, topic)) == 100

    reader = PartitionReader(kafka, topic, {}, group=f"sasl-reader-{uuid.uuid4().hex[:8]}")
    read: list[Envelope] = []
    deadline = time.monotonic() + 30
    while len(read) < 100 and time.monotonic() < deadline:
        read.extend(reader.read(500, 0.5))
    reader.close()
    assert sorted(e.value or b"" for e in read) == sorted(
        [b"batch-%d" % i for i in range(50)] + [b"tool-%d" % i for i in range(50)]
    )

    start_group_at(kafka, "sasl-group", end_offsets(kafka, topic))  # a commit as a group
    publisher, follower = SnapshotTopic(kafka, snapshots), SnapshotTopic(kafka, snapshots)
    publisher.publish("p/models", b"state")
    assert follower.read_new("p/") == {"p/models": b"state"}
    publisher.close()
    follower.close()


def test_a_worker_cleans_orders_over_sasl_ssl(
    broker: SaslSslBroker,
    redis_server: RedisServer,
    declared_topics: None,
    serde: AvroSerde,
    tmp_path: Path,
) -> None:
    kafka = _settings(broker).kafka_connection()
    group = f"sasl-{uuid.uuid4().hex[:8]}"
    stack = Stack(broker.sasl_bootstrap, redis_server.url)
    worker = start_worker(stack, group, tmp_path, **_env(broker))
    orders = [  # unique content: none is a resubmission of another
        order(event_id=f"{group}-{i}", customer_id=f"c{i % 5}", items=i + 1, amount=10.0 + i)
        for i in range(20)
    ]
    produce_all(
        kafka,
        RAW,
        [(producer_key(o), serde.encode(RAW, ORDER_SUBMITTED, o), None) for o in orders],
    )
    reader = PartitionReader(kafka, CLEAN, {}, group=f"{group}-reader")
    cleaned: list[str] = []
    deadline = time.monotonic() + 90
    while len(cleaned) < len(orders) and time.monotonic() < deadline:
        batch = reader.read(500, 0.5)
        cleaned.extend(serde.decode(e.value or b"", "shop.OrderClean")["event_id"] for e in batch)
    reader.close()
    metrics = worker.metrics()
    stop_worker(worker)

    assert sorted(cleaned) == sorted(o["event_id"] for o in orders), worker.log_tail()
    assert worker.process.returncode == 0, worker.log_tail()
    _assert_no_secret(metrics, worker.log.read_text(errors="replace"))


def test_a_wrong_password_is_refused_at_once_by_every_client(broker: SaslSslBroker) -> None:
    kafka = _settings(broker, kafka_sasl_password=SecretStr(WRONG_PASSWORD)).kafka_connection()
    for attempt in (
        lambda: KafkaAdmin(kafka, timeout_s=60).list_topic_names(),
        lambda: produce_records(kafka, [("any", None, b"v", None)]),
        lambda: PartitionReader(kafka, "any", {}, group="sasl-refused"),
    ):
        started = time.monotonic()
        with pytest.raises(KafkaRefused) as refused:
            attempt()
        assert time.monotonic() - started < 10, "retried instead of failing"
        assert "Kafka refused the login" in str(refused.value)
        assert "STREAMPROC_KAFKA_SASL_PASSWORD" in str(refused.value)
        _assert_no_secret(str(refused.value), repr(kafka))


def test_a_certificate_from_another_ca_is_refused_at_once(
    broker: SaslSslBroker, tmp_path: Path
) -> None:
    other = make_ca(tmp_path, "another CA")
    kafka = _settings(broker, kafka_ssl_ca_location=other.cert_path).kafka_connection()
    started = time.monotonic()
    with pytest.raises(KafkaRefused) as refused:
        KafkaAdmin(kafka, timeout_s=60).list_topic_names()
    assert time.monotonic() - started < 10
    assert "certificate verify failed" in str(refused.value)
    assert "STREAMPROC_KAFKA_SSL_CA_LOCATION" in str(refused.value)


@dataclass(frozen=True)
class Misconfigured:
    """A worker's security settings gone wrong: how it must exit, and what it must say."""

    overrides: dict[str, str]  # "": unset; {other_ca}: a CA that signed nothing of the broker's
    exit_code: int
    says: str


MISCONFIGURED = {
    "wrong password": Misconfigured(
        {"STREAMPROC_KAFKA_SASL_PASSWORD": WRONG_PASSWORD}, 2, "Kafka refused the login"
    ),
    "another CA": Misconfigured(
        {"STREAMPROC_KAFKA_SSL_CA_LOCATION": "{other_ca}"}, 2, "certificate verify failed"
    ),
    "plaintext to the TLS port": Misconfigured(
        {
            "STREAMPROC_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "STREAMPROC_KAFKA_SASL_USERNAME": "",
            "STREAMPROC_KAFKA_SASL_PASSWORD": "",
            "STREAMPROC_KAFKA_SSL_CA_LOCATION": "",
            "STREAMPROC_KAFKA_TIMEOUT_S": "5",
        },
        3,
        "does its listener speak STREAMPROC_KAFKA_SECURITY_PROTOCOL",
    ),
}


@pytest.mark.parametrize("case", list(MISCONFIGURED))
def test_a_worker_with_wrong_security_exits_at_once_saying_what_to_fix(
    broker: SaslSslBroker, redis_server: RedisServer, tmp_path: Path, case: str
) -> None:
    wrong = MISCONFIGURED[case]
    other_ca = make_ca(tmp_path / "other", "another CA").cert_path
    env = {
        **_env(broker),
        **{key: value.format(other_ca=other_ca) for key, value in wrong.overrides.items()},
        "STREAMPROC_REDIS_URL": redis_server.url,
        "STREAMPROC_PII_KEY": PII_KEY,
        "STREAMPROC_PIPELINE": str(REPO / "pipelines/shop_orders.yaml"),
        "STREAMPROC_DATA_DIR": str(tmp_path / "state"),
        "STREAMPROC_WEB_PORT": str(free_port()),
    }
    result, took_s = _streamproc(env, "worker", timeout_s=FAIL_WITHIN_S + 30)

    assert result.returncode == wrong.exit_code, f"{case}: {result.stderr[-3000:]}"
    assert took_s < FAIL_WITHIN_S, f"{case}: exited after {took_s:.0f} s"
    assert wrong.says in result.stderr, f"{case}: {result.stderr[-3000:]}"
    _assert_no_secret(result.stdout, result.stderr)


def test_a_worker_whose_user_is_deleted_exits_once_reauthentication_fails(
    broker: SaslSslBroker,
    redis_server: RedisServer,
    declared_topics: None,
    tmp_path: Path,
) -> None:
    group = f"sasl-leaving-{uuid.uuid4().hex[:8]}"
    env = {
        **_env(broker),
        "STREAMPROC_KAFKA_SASL_USERNAME": LEAVING,
        "STREAMPROC_KAFKA_SASL_PASSWORD": LEAVING_PASSWORD,
    }
    worker = start_worker(Stack(broker.sasl_bootstrap, redis_server.url), group, tmp_path, **env)
    deadline = time.monotonic() + 30
    while "assigned shop." not in worker.log.read_text(errors="replace"):  # it consumes
        assert worker.process.poll() is None and time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.2)

    deleted_at = time.monotonic()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # PLAINTEXT: the operator
    deletion = UserScramCredentialDeletion(LEAVING, ScramMechanism.SCRAM_SHA_512)
    for future in admin.alter_user_scram_credentials([deletion]).values():
        future.result(timeout=15)
    try:
        worker.process.wait(timeout=FAIL_WITHIN_S)
    except subprocess.TimeoutExpired:
        stop_worker(worker)
        pytest.fail(f"still running {FAIL_WITHIN_S:.0f} s after its user was deleted")
    took_s = time.monotonic() - deleted_at

    log = worker.log.read_text(errors="replace")
    assert worker.process.returncode == 2, worker.log_tail()
    assert "Kafka refused the login" in log, worker.log_tail()
    assert took_s < FAIL_WITHIN_S
    _assert_no_secret(log)
