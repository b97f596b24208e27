"""Redis over TLS, as the service's ACL user (tests/harness/redis_acl.py, docs/security.md).

A redis-server of the test's own, TLS only, with certificates from a CA the test makes: the
stores work as the user and every command of its ACL is needed; anything else is refused
without breaking the client; a plaintext client, a wrong CA, a missing client certificate
and a wrong password fail at once with an error that says so and never shows the password.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from confluent_kafka import Consumer, KafkaException, TopicPartition
from redis.exceptions import NoPermissionError

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.adapters.kafka.producer import produce_all
from streamproc.adapters.redis.client import ACL_HINT, redis_client
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.adapters.redis.stores import RedisFeatureStore
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.cli.common import EXIT_INFRA
from streamproc.config.connections import TlsFiles
from streamproc.config.kafka import KafkaConnection
from streamproc.config.pipeline import load_pipeline
from streamproc.config.topics import load_topic_specs, plan_changes
from streamproc.core.features.stage import FeatureStage
from streamproc.core.features.state import EntityWrite, FeatureEvent
from streamproc.errors import InfraError
from streamproc.scenario.shop import GeneratorConfig, generate
from streamproc.tools.demo import produce_scenario
from tests.builders import ORDER_SUBMITTED
from tests.conftest import REPO
from tests.harness.processes import KafkaBroker, RedisServer
from tests.harness.redis_acl import (
    CLEANUP_COMMANDS,
    SERVICE_COMMANDS,
    create_service_user,
    reader_acl_rules,
    use_every_store,
)
from tests.harness.tls import CA, make_ca, redis_tls_args
from tests.integration.conftest import (
    OUTCOMES,
    RAW_ORDERS,
    Stack,
    Worker,
    start_worker,
    stop_worker,
)

NAMESPACE = "svc"  # the service's key prefix: its user may touch `svc:*` only
FAILS_WITHIN_S = 10.0
WORKER_EVENTS = 1_500  # a TLS or ACL failure is an answer, never a wait
T = TypeVar("T")


@dataclass(frozen=True)
class TlsRedis:
    """The server, the CA its certificate chains to, a client certificate from that CA, and
    an admin connection (the default user) to create users and read the ACL log."""

    server: RedisServer
    ca: CA
    client_cert: tuple[Path, Path]
    admin: redis.Redis

    def url(self, user: str, password: str) -> str:
        return f"rediss://{user}:{password}@127.0.0.1:{self.server.port}/0"

    def tls(self, client_cert: bool = True) -> TlsFiles:
        cert, key = self.client_cert if client_cert else (None, None)
        return TlsFiles(self.ca.cert_path, cert, key)

    def new_user(
        self, commands: tuple[str, ...] = SERVICE_COMMANDS, keys_under: str = NAMESPACE
    ) -> tuple[str, str]:
        """A service user of its own (name, password), with `commands` on `keys_under:*`."""
        user, password = f"svc-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        create_service_user(self.admin, user, password, keys_under, commands)
        return user, password

    def denials(self, user: str) -> list[str]:
        """What the ACL log says `user` was refused: 'reason object' per entry."""
        entries = self.admin.acl_log()
        return [f"{e['reason']} {e['object']}" for e in entries if e["username"] == user]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    folder = tmp_path_factory.mktemp("redis-tls")
    ca = make_ca(folder / "ca")
    cert, key = ca.issue(folder / "server", ["127.0.0.1", "localhost"])
    client_cert = ca.issue(folder / "client", ["streamproc"])
    server = RedisServer(folder / "redis", redis_tls_args(ca, cert, key), tls=True).start()
    admin = redis.Redis.from_url(
        server.url,
        ssl_ca_certs=str(ca.cert_path),
        ssl_certfile=str(client_cert[0]),
        ssl_keyfile=str(client_cert[1]),
    )
    try:
        yield TlsRedis(server, ca, client_cert, admin)
    finally:
        admin.close()
        server.kill()


async def within(call: Awaitable[T]) -> T:
    return await asyncio.wait_for(call, FAILS_WITHIN_S)


async def test_every_store_works_as_the_service_user_over_tls_with_nothing_refused(
    tls_redis: TlsRedis,
) -> None:
    user, password = tls_redis.new_user()
    tls_redis.admin.script_flush()  # so the scripts are loaded (SCRIPT LOAD) as the user
    client = redis_client(tls_redis.url(user, password), tls=tls_redis.tls())
    try:
        await within(use_every_store(client, NAMESPACE))
    finally:
        await client.aclose()
    assert tls_redis.denials(user) == []


def test_a_cleanup_user_deletes_its_namespace_over_tls_and_nothing_else(
    tls_redis: TlsRedis,
) -> None:
    namespace = f"{NAMESPACE}:demo-{uuid.uuid4().hex[:8]}"
    tls_redis.admin.mset({f"{namespace}:a": 1, f"{namespace}:b": 2, f"{namespace}-not:c": 3})
    user, password = tls_redis.new_user(CLEANUP_COMMANDS, keys_under=namespace)
    deleted = delete_namespace(tls_redis.url(user, password), namespace, tls=tls_redis.tls())
    assert deleted == 2
    assert tls_redis.admin.exists(f"{namespace}:a", f"{namespace}:b", f"{namespace}-not:c") == 1
    assert tls_redis.denials(user) == []


@pytest.mark.parametrize("command", SERVICE_COMMANDS)
async def test_each_command_of_the_acl_is_needed(tls_redis: TlsRedis, command: str) -> None:
    user, password = tls_redis.new_user(tuple(c for c in SERVICE_COMMANDS if c != command))
    tls_redis.admin.script_flush()
    client = redis_client(tls_redis.url(user, password), tls=tls_redis.tls())
    try:
        with pytest.raises(InfraError) as refused:
            await within(use_every_store(client, NAMESPACE))
    finally:
        await client.aclose()
    assert ACL_HINT in str(refused.value)  # Redis' words inside a script name no command
    assert tls_redis.denials(user) == [f"command {command}"]
    assert password not in str(refused.value)


async def test_the_user_is_refused_beyond_its_commands_and_keys_and_its_client_keeps_working(
    tls_redis: TlsRedis,
) -> None:
    user, password = tls_redis.new_user()
    client = redis_client(tls_redis.url(user, password), tls=tls_redis.tls())
    try:
        await within(use_every_store(client, NAMESPACE))
        refused = [
            client.flushall(),
            client.keys("*"),
            client.config_get("*"),
            client.get("other:key"),
            client.set("other:key", "1"),
            client.eval("return 1", 0),
            client.acl_setuser(user, commands=["+@all"]),
        ]
        for call in refused:
            with pytest.raises(NoPermissionError):
                await within(call)
        outside = RedisFeatureStore(client, "other")  # a script's keys are checked too
        with pytest.raises(InfraError, match="Redis user's ACL"):
            await within(outside.save([EntityWrite("k", {}, {"a": "1"}, [], 60_000)], 1))
        await within(use_every_store(client, NAMESPACE))  # same client, same connections
    finally:
        await client.aclose()
    assert tls_redis.admin.exists("other:key", "other:k") == 0
    assert any(d.startswith("key other:") for d in tls_redis.denials(user))


async def test_a_plaintext_client_at_the_tls_port_fails_at_once(tls_redis: TlsRedis) -> None:
    user, password = tls_redis.new_user()
    plain = f"redis://{user}:{password}@127.0.0.1:{tls_redis.server.port}/0"
    client = redis_client(plain)
    try:
        with pytest.raises(InfraError, match="Redis feature read failed") as failed:
            await within(RedisFeatureStore(client, NAMESPACE).load(["k"]))
    finally:
        await client.aclose()
    assert "the URL must be rediss://" in str(failed.value)
    assert password not in str(failed.value)


async def test_a_server_certificate_from_another_ca_is_refused_by_name(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    user, password = tls_redis.new_user()
    other = make_ca(tmp_path / "other-ca", "some other CA")
    client = redis_client(tls_redis.url(user, password), tls=TlsFiles(other.cert_path))
    try:
        with pytest.raises(InfraError, match="certificate verify failed") as failed:
            await within(RedisFeatureStore(client, NAMESPACE).load(["k"]))
    finally:
        await client.aclose()
    assert "not signed by the CA given" in str(failed.value)
    assert password not in str(failed.value)


async def test_a_server_that_requires_client_certificates_refuses_a_client_without(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    ca = tls_redis.ca
    cert, key = ca.issue(tmp_path / "server", ["127.0.0.1"])
    strict = RedisServer(tmp_path / "redis", redis_tls_args(ca, cert, key, "yes"), tls=True)
    strict.start()
    try:
        url = f"rediss://127.0.0.1:{strict.port}/0"
        with_cert = redis_client(url, tls=tls_redis.tls())
        without = redis_client(url, tls=tls_redis.tls(client_cert=False))
        try:
            assert await within(RedisFeatureStore(with_cert, NAMESPACE).load(["k"])) == {}
            with pytest.raises(InfraError, match="certificate") as failed:
                await within(RedisFeatureStore(without, NAMESPACE).load(["k"]))
        finally:
            await with_cert.aclose()
            await without.aclose()
    finally:
        strict.kill()
    assert "set STREAMPROC_REDIS_TLS_CERT" in str(failed.value)


async def test_a_wrong_password_fails_and_no_error_shows_the_password(
    tls_redis: TlsRedis,
) -> None:
    user, _ = tls_redis.new_user()
    wrong = f"wrong-{uuid.uuid4().hex}"
    url = tls_redis.url(user, wrong)
    client = redis_client(url, tls=tls_redis.tls())
    try:
        with pytest.raises(InfraError) as from_store:
            await within(RedisServedLog(client, NAMESPACE).fetch(["e1"]))
    finally:
        await client.aclose()
    with pytest.raises(InfraError) as from_tool:
        delete_namespace(url, NAMESPACE, tls=tls_redis.tls())
    for failed in (from_store, from_tool):
        assert "invalid username-password pair" in str(failed.value)
        assert wrong not in str(failed.value)
    assert f"rediss://{user}:***@" in str(from_tool.value)  # which account, not its secret


async def test_features_get_reads_as_a_read_only_user_over_tls_and_names_a_wrong_ca(
    tls_redis: TlsRedis, tmp_path: Path
) -> None:
    writer = tls_redis.new_user()
    client = redis_client(tls_redis.url(*writer), tls=tls_redis.tls())
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    stage = FeatureStage(spec.features, RedisFeatureStore(client, f"{NAMESPACE}:features"), 0)
    order = {"amount_gross_eur": 12.5, "session_duration_s": 30.0, "country": "DE"}
    try:
        await within(stage.process([FeatureEvent("cli-1", 0, 1, 1_000, order)], wall_ms=2_000))
    finally:
        await client.aclose()

    # the operator's user of docs/security.md: HGETALL on the feature hashes and the serving
    # pointer, nothing else
    user, password = f"reader-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    setuser = ("ACL", "SETUSER", user, "reset", "on", f">{password}")
    tls_redis.admin.execute_command(*setuser, *reader_acl_rules(NAMESPACE))  # type: ignore[no-untyped-call]
    read = _features_get(tls_redis.url(user, password), tls_redis.ca.cert_path, "cli-1")
    assert read.returncode == 0, read.stderr
    features = json.loads(read.stdout)["features"]
    assert features["last_country"]["value"] == "DE"
    assert features["amount_count_1h"]["value"] == 1
    assert tls_redis.denials(user) == []

    other = make_ca(tmp_path / "other-ca", "some other CA")
    refused = _features_get(tls_redis.url(user, password), other.cert_path, "cli-1")
    assert refused.returncode == EXIT_INFRA
    assert "infrastructure error" in refused.stderr
    assert "certificate verify failed" in refused.stderr
    assert password not in refused.stderr + refused.stdout


@pytest.mark.slow
def test_a_worker_runs_the_shop_pipeline_as_the_service_user_over_tls(
    tls_redis: TlsRedis, serde: AvroSerde, tmp_path: Path
) -> None:
    """The whole worker (clean stage, features, scores, trainer), on a broker of the test's
    own: the ACL is all it needs, and neither its log nor /metrics shows the password."""
    broker = KafkaBroker(tmp_path / "kafka").start()
    try:
        specs = load_topic_specs(REPO / "topics")
        admin = KafkaAdmin(KafkaConnection(broker.bootstrap))
        admin.apply(plan_changes(specs, admin.read_state(specs)))
        _wait_for_the_group_coordinator(broker.bootstrap, "it-tls")
        user, password = tls_redis.new_user(keys_under="deployment")
        cert, key = tls_redis.client_cert
        worker = start_worker(
            Stack(broker.bootstrap, tls_redis.url(user, password)),
            "it-tls",
            tmp_path / "worker",
            STREAMPROC_REDIS_NAMESPACE="deployment",
            STREAMPROC_REDIS_TLS_CA=str(tls_redis.ca.cert_path),
            STREAMPROC_REDIS_TLS_CERT=str(cert),
            STREAMPROC_REDIS_TLS_KEY=str(key),
            STREAMPROC_WORKER_ID="it-tls",
        )
        try:
            _feed_until_a_label_is_learned(worker, broker.bootstrap, serde)
            assert tls_redis.denials(user) == []
            log, metrics = worker.log.read_text(), worker.metrics()
            assert (
                f"Redis at rediss://{user}:***@127.0.0.1:{tls_redis.server.port}/0 (TLS, CA" in log
            )
            assert password not in log and password not in metrics
        finally:
            stop_worker(worker)  # before the broker: a worker that loses it stops loudly
    finally:
        broker.kill()


def _wait_for_the_group_coordinator(bootstrap: str, group: str) -> None:
    """A new broker loads its offsets topic for a while after it starts; a worker asking for
    its group's offsets meanwhile stops (NOT_COORDINATOR)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                consumer.committed([TopicPartition(OUTCOMES, 0)], timeout=5)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def _feed_until_a_label_is_learned(worker: Worker, bootstrap: str, serde: AvroSerde) -> None:
    """Orders, then their labels: a label learned has had every store's work done first
    (cleaned, deduplicated, featured, scored, its x logged, the watermark past it)."""
    scenario = generate(GeneratorConfig(events=WORKER_EVENTS, seed=5))
    encode = lambda event: serde.encode(RAW_ORDERS, ORDER_SUBMITTED, event)  # noqa: E731
    produce_scenario(KafkaConnection(bootstrap), RAW_ORDERS, scenario, encode)
    outcomes = (
        (o["event_id"].encode(), serde.encode(OUTCOMES, "shop.OrderOutcome", o), None)
        for o in scenario.outcomes
    )
    produce_all(KafkaConnection(bootstrap), OUTCOMES, outcomes)
    deadline = time.monotonic() + 180
    while worker.counter("streamproc_labels_total", outcome="learned") == 0:
        assert worker.process.poll() is None, worker.log_tail()
        assert time.monotonic() < deadline, f"nothing learned in 180 s\n{worker.log_tail()}"
        time.sleep(0.5)


def _features_get(url: str, ca: Path, entity: str) -> subprocess.CompletedProcess[str]:
    """`streamproc features get --json` as an operator runs it, with the TLS settings."""
    env = {
        **os.environ,
        "STREAMPROC_REDIS_URL": url,
        "STREAMPROC_REDIS_TLS_CA": str(ca),
        "STREAMPROC_REDIS_NAMESPACE": NAMESPACE,
        "STREAMPROC_PIPELINE": str(REPO / "pipelines/shop_orders.yaml"),
    }
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", "features", "get", "--json", entity],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
