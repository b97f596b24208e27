"""The worker's BatchSender: acked batches, a clear InfraError when acks do not come, and a
record Kafka refuses for itself returned alone while the rest of its batch is acked."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from streamproc.adapters.kafka import dlq
from streamproc.adapters.kafka.admin import KafkaAdmin, end_offsets
from streamproc.adapters.kafka.transactions import Transactions
from streamproc.config.kafka import KafkaConnection
from streamproc.config.topics import Plan, TopicSpec
from streamproc.errors import InfraError
from streamproc.records import OutRecord
from tests.integration.conftest import RUN_HEADER, Senders, Stack, read_run, recent_timestamp_ms

TOPIC = "shop.order.duplicates.v1"  # any declared topic: the records carry a run header
LIMIT = dlq.MAX_RECORD_BYTES


@contextmanager
def scratch_topic(
    stack: Stack, name: str, config: Mapping[str, str], partitions: int = 1
) -> Iterator[str]:
    """A topic of this test only, deleted after it (records of a megabyte stay out of the
    declared ones)."""
    spec = TopicSpec(name, partitions, 1, dict(config), Path(__file__))
    KafkaAdmin(stack.kafka).apply(Plan(create=[spec]))
    try:
        yield name
    finally:
        admin = AdminClient({"bootstrap.servers": stack.bootstrap})
        admin.delete_topics([name])[name].result(timeout=15)


async def test_a_batch_arrives_whole_with_keys_headers_and_timestamps(
    stack: Stack, senders: Senders
) -> None:
    run = uuid.uuid4().hex.encode()
    start = end_offsets(stack.kafka, TOPIC)
    stamped = recent_timestamp_ms()
    records = [
        OutRecord(TOPIC, f"k{i % 7}".encode(), f"v{i}".encode(), ((RUN_HEADER, run),), stamped + i)
        for i in range(300)
    ]
    await senders(stack.kafka).send(records)
    got = read_run(stack, start, run, len(records), timeout_s=30)
    assert sorted((m.key(), m.value(), m.timestamp()[1]) for m in got) == sorted(
        (r.key, r.value, r.timestamp_ms) for r in records
    )
    by_key: dict[bytes, list[int]] = {}
    for message in got:
        by_key.setdefault(message.key(), []).append(int(message.value()[1:]))
    assert all(values == sorted(values) for values in by_key.values()), "per-key order"


async def test_unacked_records_raise_infra_error(senders: Senders) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        sender = senders(KafkaConnection(nobody), ack_timeout_s=1.0)
        with pytest.raises(InfraError, match="1 records not acked"):
            await sender.send([OutRecord(TOPIC, b"k", b"v")])


async def test_records_of_a_replaced_producer_are_answered_at_once(senders: Senders) -> None:
    """A transactional producer is replaced after a stuck call: the batches it still held
    must learn at once that their records were purged, not wait out the ack timeout (the
    poll thread serves the new producer only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nobody = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        sender = senders(KafkaConnection(nobody), ack_timeout_s=60.0)
        submitted = await sender.submit(
            [OutRecord(TOPIC, b"k", f"v{i}".encode()) for i in range(3)]
        )
        sender.renew()
        with pytest.raises(InfraError, match="3 records abandoned with a replaced producer"):
            await asyncio.wait_for(submitted.refused(), 10)


async def test_a_record_over_the_limit_is_refused_and_the_rest_acked(
    stack: Stack, senders: Senders
) -> None:
    run = uuid.uuid4().hex.encode()
    with scratch_topic(stack, f"it-sender-{run.decode()}", {}) as topic:
        stamped = recent_timestamp_ms()
        small = [
            OutRecord(topic, b"k", f"v{i}".encode(), ((RUN_HEADER, run),), stamped)
            for i in range(10)
        ]
        huge = OutRecord(topic, b"k", b"x" * LIMIT, ((RUN_HEADER, run),), stamped)
        refused = await senders(stack.kafka).offer([*small[:5], huge, *small[5:]])
        assert list(refused) == [5]
        assert refused[5].reason == dlq.RECORD_TOO_LARGE
        assert f"refused a {dlq.wire_size(huge):,}-byte record for {topic}" in str(refused[5])
        got = read_run(stack, [TopicPartition(topic, 0, 0)], run, 11, timeout_s=5)
        assert [m.value() for m in got] == [r.value for r in small]


async def test_wire_size_is_what_the_producer_counts_at_most(
    stack: Stack, senders: Senders
) -> None:
    with scratch_topic(stack, f"it-sender-{uuid.uuid4().hex}", {}) as topic:
        at_limit = OutRecord(topic, b"key", b"x" * (LIMIT - 36 - 3))
        assert dlq.wire_size(at_limit) == LIMIT
        over = replace(at_limit, value=b"x" * (LIMIT - 36 - 2))
        refused = await senders(stack.kafka).offer([at_limit, over])
        assert list(refused) == [1]


async def test_a_record_the_broker_refuses_is_found_among_its_batch(
    stack: Stack, senders: Senders
) -> None:
    """The broker refuses a record batch whole when one record in it is over the topic's
    max.message.bytes: the sender finds that one, and the others are acked."""
    run = uuid.uuid4().hex.encode()
    config = {"max.message.bytes": "4000"}
    with scratch_topic(stack, f"it-sender-{run.decode()}", config) as topic:
        headers, stamped = ((RUN_HEADER, run),), recent_timestamp_ms()
        sizes = [300, 300, 300, 3_990, 300, 300, 300, 300]  # only k3 is over the limit alone
        records = [
            OutRecord(topic, f"k{i}".encode(), b"v" * size, headers, stamped)
            for i, size in enumerate(sizes)
        ]
        refused = await senders(stack.kafka).offer(records)
        assert list(refused) == [3]
        assert refused[3].reason == dlq.RECORD_TOO_LARGE
        assert str(refused[3]).startswith("the broker refused")
        got = read_run(stack, [TopicPartition(topic, 0, 0)], run, 8, timeout_s=5)
        assert sorted(m.key() for m in got) == [f"k{i}".encode() for i in range(8) if i != 3]


async def test_send_raises_infra_error_for_a_refused_record(stack: Stack, senders: Senders) -> None:
    with (
        scratch_topic(stack, f"it-sender-{uuid.uuid4().hex}", {}) as topic,
        pytest.raises(InfraError, match="1 records refused"),
    ):
        await senders(stack.kafka).send([OutRecord(topic, None, b"x" * LIMIT)])


async def test_a_fenced_transactional_producer_abandons_its_batch_and_is_replaced(
    stack: Stack, senders: Senders
) -> None:
    """A producer fenced by another with its transactional.id (as after its transaction
    timed out on Kafka < 4.0) raises from every poll: the thread serving its acks must live
    on, its batch must end at once (not wait out the ack timeout), and the next commit must
    replace it rather than commit."""
    transactional_id = f"it-fenced-{uuid.uuid4().hex[:8]}"
    sender = senders(stack.kafka, ack_timeout_s=60.0, transactional_id=transactional_id)
    driver = Transactions(sender.producer, 30.0, sender.renew, 30.0, sender.doomed)
    driver.start()
    record = OutRecord(TOPIC, b"k", b"v", timestamp_ms=recent_timestamp_ms())
    assert await asyncio.wait_for(sender.offer([record]), 30) == {}
    usurper = senders(stack.kafka, transactional_id=transactional_id)
    usurper.producer.init_transactions(30)  # fences `sender`'s producer
    submitted = await sender.submit([record, record])
    assert await asyncio.wait_for(submitted.refused(), 20) == {}
    assert sender.doomed()
    # known to be fatal now, produce() raises too (_FATAL): a batch sent before the next
    # commit is abandoned with the transaction, not an error that stops the worker
    later = await sender.submit([record])
    assert await asyncio.wait_for(later.refused(), 20) == {}
    assert not await asyncio.to_thread(driver.commit, [], None)
    assert not sender.doomed()
    assert await asyncio.wait_for(sender.offer([record]), 30) == {}
    assert await asyncio.to_thread(driver.commit, [], None)
