"""Schema evolution on the real broker and Redis: one raw topic holds shop.OrderSubmitted v1
and v2 records; the worker cleans the same order to the same record whichever version wrote
it, dedupes across versions, and a replay of the log (a second worker, its own app id and Redis
namespace, from the earliest offset) writes exactly what the live run wrote.

Each pair is one order written once as v1 and once as v2, under two event ids, the second
logged two hours after the first: past the content dedupe's time to live (1 h of log time), so
both are cleaned, and their clean records must differ in the event id only. Some pairs carry
what only one version can say (v1's amount_includes_tax, against the source's habit; v2's
coupon_code): neither reaches the clean record."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.admin import KafkaAdmin, end_offsets
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.config.topics import load_topic_specs, plan_changes
from streamproc.scenario.shop import producer_key
from tests.builders import ORDER_SUBMITTED, order, v1_of, v2_of
from tests.conftest import REPO
from tests.integration.conftest import (
    PII_KEY,
    RUN_HEADER,
    ProducerHeaders,
    Stack,
    read_run,
    start_worker,
    stop_worker,
)
from tests.integration.replay_support import cli

PAIRS = 24
HOUR_MS = 3_600_000
CLEAN_ORDER = "shop.OrderClean"


class Log:
    """The topics of one test run (one partition each: one order of processing, so the
    replay's output can be held to the live run's record by record), and its pipeline."""

    def __init__(self, folder: Path, run: str) -> None:
        prefix = f"it.evolution.{run}"
        self.app = f"it-evolution-{run}"
        self.raw, self.clean = f"{prefix}.order", f"{prefix}.order.clean"
        self.duplicates = f"{prefix}.order.duplicates"
        self.topics = folder / "topics"
        self.topics.mkdir(parents=True)
        declarations = {
            self.raw: f"value_schema: {ORDER_SUBMITTED}\ndlq: {{retention_ms: 86400000}}\n",
            self.clean: "value_schema: shop.OrderClean\n",
            f"{self.clean}.dlq": "",
            f"{self.clean}.late": "value_schema: shop.OrderClean\n",
            self.duplicates: "value_schema: shop.OrderDuplicate\n",
        }
        for name, rest in declarations.items():
            (self.topics / f"{name}.yaml").write_text(
                f"name: {name}\npartitions: 1\nretention_ms: 86400000\n{rest}"
            )
        declared = yaml.safe_load((REPO / "pipelines/shop_orders.yaml").read_text())
        declared["source"]["topic"] = self.raw
        declared["sink"]["topic"] = self.clean
        declared["duplicates"]["topic"] = self.duplicates
        del declared["models"]  # clean records and features are what this test is about
        self.pipeline = folder / "pipeline.yaml"
        self.pipeline.write_text(yaml.safe_dump(declared))

    def create(self, stack: Stack) -> None:
        specs = load_topic_specs(self.topics)
        admin = KafkaAdmin(stack.kafka, timeout_s=60)
        admin.apply(plan_changes(specs, admin.read_state(specs)))

    def delete(self, stack: Stack) -> None:
        """The topics, v2's too, and the Redis namespace (v2's under it)."""
        client = AdminClient({"bootstrap.servers": stack.bootstrap})  # alive until all are done
        prefix = self.raw.removesuffix(".order")
        names = [t for t in client.list_topics(timeout=30).topics if t.startswith(prefix)]
        for deleted in client.delete_topics(names).values():
            deleted.result(30)
        delete_namespace(stack.redis_url, self.app)


@pytest.fixture
def log(stack: Stack, tmp_path: Path) -> Iterator[Log]:
    created = Log(tmp_path, uuid.uuid4().hex[:10])
    created.create(stack)
    yield created
    created.delete(stack)


def _unstated(clean: dict[str, Any]) -> dict[str, Any]:
    status = {k: v for k, v in clean["field_status"].items() if k != "amount_includes_tax"}
    return {**clean, "field_status": status}


def _v1_order(run: str, i: int) -> dict[str, Any]:
    """The i-th order of the run, as a v1 producer of its source writes it."""
    common = {"event_id": f"{run}-{i}-a", "amount": 20.0 + i, "items": 1 + i % 4}
    kind = i % 4
    if kind == 0:  # web, a known customer
        return order(**common, customer_id=f"{run}-c{i}")
    if kind == 1:  # web, a guest, keyed by the e-mail; its v1 form says net, against the habit
        return order(
            **common, customer_id=None, email=f" Guest.{run}.{i}@Example.org ",
            amount_includes_tax=False,
        )  # fmt: skip
    if kind == 2:  # app, session in ms
        return order(
            **common, source="app", customer_id=f"{run}-c{i}", occurred_at=1_774_746_000 + i,
            amount_includes_tax=None, tax_rate=0.19, currency="USD", app_version=4,
            session_duration=45_000.0 + i, customer_name="ada lovelace",
        )  # fmt: skip
    return order(  # pos: local wall time, net, no customer
        **common, source="pos", customer_id=None, email=None, country=None,
        occurred_at=f"2026-03-29 0{i % 10}:15:00", tz="Europe/Berlin", amount_includes_tax=False,
        tax_rate=0.19, session_duration=None, customer_name="LOVELACE, Ada", payment_method="cash",
    )  # fmt: skip


def _pairs(run: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(first written, twin) per order: v1 then v2 for even i, v2 then v1 for odd i; every
    sixth v2 carries a coupon, which v1 cannot."""
    pairs = []
    for i in range(PAIRS):
        v1 = _v1_order(run, i)
        v2 = v2_of(v1, event_id=f"{run}-{i}-b", coupon_code="SPRING" if i % 6 == 3 else None)
        pairs.append((v1, v2) if i % 2 == 0 else (v2, v1_of(v2, event_id=f"{run}-{i}-a")))
    return pairs


def _produce(stack: Stack, serde: AvroSerde, topic: str, run: str) -> list[tuple[str, str]]:
    """The log: the first of each pair, a retry and a resubmission across versions, then the
    twins two hours (of log time) later. Returns the (first, twin) event ids."""
    pairs = _pairs(run)
    base = (int(time.time()) - 4 * 3_600) * 1_000 + 7  # within the topics' retention
    retry = v2_of(pairs[0][0])  # the same event id, now from a v2 producer
    resubmitted = v1_of(pairs[1][0], event_id=f"{run}-1-resubmitted")  # a new id, same order
    timed = [(p[0], base + i) for i, p in enumerate(pairs)]
    timed += [(retry, base + PAIRS), (resubmitted, base + PAIRS + 1)]
    timed += [(p[1], base + 2 * HOUR_MS + i) for i, p in enumerate(pairs)]
    producer = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True})
    headers: ProducerHeaders = [(RUN_HEADER, run.encode())]
    for record, stamp in timed:
        value = serde.encode(topic, ORDER_SUBMITTED, record)
        producer.produce(topic, value, producer_key(record), headers=headers, timestamp=stamp)
    assert producer.flush(30) == 0
    return [(first["event_id"], twin["event_id"]) for first, twin in pairs]


def _live(stack: Stack, log: Log, folder: Path, run: str, expected: tuple[int, int]) -> list[Any]:
    """A worker (v1) of the log's app id over the whole log: its clean records and duplicate
    audits, as messages, in log order."""
    starts = {topic: end_offsets(stack.kafka, topic) for topic in (log.clean, log.duplicates)}
    worker = start_worker(
        stack, log.app, folder,
        STREAMPROC_PIPELINE=str(log.pipeline), STREAMPROC_TOPICS_DIR=str(log.topics),
    )  # fmt: skip
    try:
        clean = read_run(stack, starts[log.clean], run.encode(), expected[0], timeout_s=45)
        audits = read_run(stack, starts[log.duplicates], run.encode(), expected[1], timeout_s=10)
        assert (len(clean), len(audits)) == expected, worker.log_tail()
    finally:
        stop_worker(worker)
    return [*clean, *audits]


def _replayed(
    stack: Stack, log: Log, folder: Path, run: str, expected: tuple[int, int]
) -> list[Any]:
    """`streamproc replay` of the log into v2 of the same app: v2's clean records and audits."""
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": stack.bootstrap,
        "STREAMPROC_REDIS_URL": stack.redis_url,
        "STREAMPROC_APP_ID": log.app,
        "STREAMPROC_REDIS_NAMESPACE": log.app,
        "STREAMPROC_PII_KEY": PII_KEY,
        "STREAMPROC_PIPELINE": str(log.pipeline),
        "STREAMPROC_TOPICS_DIR": str(log.topics),
        "STREAMPROC_DATA_DIR": str(folder),
    }
    done = cli(env, "replay", "--namespace", "v2", "--until-caught-up", "--interval", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "caught up" in done.stdout
    clean, audits = (
        read_run(stack, [TopicPartition(f"{topic}.v2", 0, 0)], run.encode(), n, timeout_s=10)
        for topic, n in ((log.clean, expected[0]), (log.duplicates, expected[1]))
    )
    return [*clean, *audits]


def test_v1_and_v2_records_clean_alike_live_and_under_replay(
    stack: Stack, serde: AvroSerde, catalog: SchemaCatalog, log: Log, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    pairs = _produce(stack, serde, log.raw, run)
    expected = (2 * PAIRS, 2)
    raw = read_run(stack, [TopicPartition(log.raw, 0, 0)], run.encode(), 2 * PAIRS + 2, 10)
    written = {int.from_bytes(message.value()[1:5], "big") for message in raw}
    assert written == {v.fingerprint_id for v in catalog.versions(ORDER_SUBMITTED)}

    live = _live(stack, log, tmp_path / "live", run, expected)
    clean = {
        record["event_id"]: (message.key(), record)
        for message in live[: expected[0]]
        for record in [serde.decode(message.value(), CLEAN_ORDER)]
    }
    for first, twin in pairs:
        (first_key, a), (twin_key, b) = clean[first], clean[twin]
        # the same clean order but for its id, and what the v1 web order states and v2
        # cannot: that its amount includes tax (the habit, which v2's order defaults to)
        assert _unstated({**a, "event_id": twin}) == _unstated(b), (a, b)
        if a["entity_key"]:
            assert first_key == twin_key
    audits = [serde.decode(m.value(), "shop.OrderDuplicate") for m in live[expected[0] :]]
    assert sorted((a["kind"], a["first_event_id"]) for a in audits) == sorted(
        [("retry", pairs[0][0]), ("resubmission", pairs[1][0])]
    )
    guest = clean[pairs[1][0]][1]  # its v2 twin came first: the source's habit
    assert guest["amount_gross_eur"] == pytest.approx(21.0)
    assert guest["field_status"]["amount_includes_tax"] == "defaulted"

    replay = _replayed(stack, log, tmp_path / "replay", run, expected)
    assert [(m.key(), m.value(), m.headers(), m.timestamp()) for m in replay] == [
        (m.key(), m.value(), m.headers(), m.timestamp()) for m in live
    ]
    assert end_offsets(stack.kafka, f"{log.raw}.dlq")[0].offset == 0
