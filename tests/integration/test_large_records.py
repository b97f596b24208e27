"""Records of one and three megabytes on the real broker. The worker used to crash-loop on one:
its clean order or dead letter was over the producer's 1,000,000-byte limit and the send
raised out of the batch. Now each goes to the DLQ (whole when the dead letter fits, else as a
reference to where it is) and the records after it are cleaned."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka import dlq
from streamproc.adapters.kafka.admin import end_offsets
from streamproc.adapters.kafka.delivery import deliver
from streamproc.adapters.redis.sweep import delete_namespace
from streamproc.errors import EventRejected
from streamproc.records import SOURCE_HEADER, Envelope, OutRecord, Rejection
from tests.builders import ORDER_SUBMITTED, order
from tests.conftest import REPO
from tests.integration.conftest import (
    RUN_HEADER,
    ProducerHeaders,
    Senders,
    Stack,
    Worker,
    new_group,
    read_run,
    recent_timestamp_ms,
    start_worker,
    stop_worker,
)
from tests.integration.test_batch_sender import scratch_topic

CLEAN = "shop.order.clean.v1"
RAW_LIMIT = 5_000_000  # this test's raw topic and producer take records of 3 MB
BLOB = "test.blob"
MB = 1_000_000


def test_huge_records_are_dead_lettered_and_the_worker_goes_on(
    stack: Stack, serde: AvroSerde, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex
    raw = f"it-large-{run}.order.v1"
    declared = (REPO / "pipelines/shop_orders.yaml").read_text()
    assert "source: {topic: shop.order.v1," in declared
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(declared.replace("topic: shop.order.v1,", f"topic: {raw},", 1))
    with (
        scratch_topic(stack, raw, {"max.message.bytes": str(RAW_LIMIT)}),
        scratch_topic(stack, dlq.dlq_topic(raw), {}),  # the broker's default limit, as declared
    ):
        group = new_group(stack)
        clean_start = end_offsets(stack.kafka, CLEAN)
        worker = start_worker(stack, group, tmp_path / "worker", STREAMPROC_PIPELINE=str(pipeline))
        try:
            _check(stack, serde, worker, raw, run, clean_start)
        finally:
            stop_worker(worker)
            delete_namespace(stack.redis_url, group)


def _records(serde: AvroSerde, raw: str, run: str) -> dict[bytes, tuple[bytes, bytes]]:
    """key -> (value, blob header) in the order sent: normal orders around huge records."""

    def valid(name: str, **fields: Any) -> bytes:
        fields = {"event_id": f"{run}-{name}", "customer_id": f"{run}-{name}", **fields}
        return serde.encode(raw, ORDER_SUBMITTED, order(**fields))

    normal = {f"ok-{i}".encode(): (valid(f"ok-{i}", amount=10.0 + i), b"") for i in range(10)}
    huge = {
        # a small valid order: its clean order keeps the input's headers, over the limit,
        # and its dead letter is too
        b"header-1mb": (valid("h1", amount=1.0), b"b" * MB),
        b"header-3mb": (valid("h3", amount=3.0), b"b" * 3 * MB),
        # rejected or cleaned as the clean stage sees fit: either way over the limit
        b"name-1mb": (valid("n1", amount=5.0, customer_name="Ada " + "L" * MB), b""),
        b"junk-3mb": (b"\x01" + b"j" * 3 * MB, b""),  # not_wire_format
    }
    keys = list(normal)
    return {
        **{key: normal[key] for key in keys[:5]},
        **huge,
        **{key: normal[key] for key in keys[5:]},
    }


def _check(  # noqa: PLR0913, PLR0917 - the test's fixtures and what it checks
    stack: Stack,
    serde: AvroSerde,
    worker: Worker,
    raw: str,
    run: str,
    clean_start: list[TopicPartition],
) -> None:
    records = _records(serde, raw, run)
    offsets = _produce(stack, raw, records, run.encode())
    normal = [key for key in records if key.startswith(b"ok-")]
    huge = {offsets[key]: key for key in records if key not in normal}

    clean = read_run(stack, clean_start, run.encode(), len(normal), timeout_s=45)
    assert worker.process.poll() is None, worker.log_tail()
    assert sorted(serde.decode(m.value(), "shop.OrderClean")["event_id"] for m in clean) == sorted(
        f"{run}-{key.decode()}" for key in normal
    ), worker.log_tail()

    dead = _read_all(stack, dlq.dlq_topic(raw), len(huge))
    by_key = {huge[int(dict(m.headers())[dlq.OFFSET])]: m for m in dead}
    assert sorted(by_key) == sorted(huge.values()), worker.log_tail()
    for key, message in by_key.items():
        headers = dict(message.headers())
        assert headers[dlq.TOPIC] == raw.encode()
        assert message.value() is None  # none fits the limit: each is a reference
        assert sum(len(name) + len(value) for name, value in headers.items()) < 16_000
        if key.startswith(b"header-"):
            assert headers[dlq.REASON] == dlq.RECORD_TOO_LARGE.encode()
            assert headers[dlq.DROPPED] == b"value,key,headers"
            assert message.key() is None
            assert f"for {CLEAN} (MSG_SIZE_TOO_LARGE" in headers[dlq.MESSAGE].decode()
        else:
            assert (message.key(), headers[dlq.DROPPED]) == (key, b"value")
    assert dict(by_key[b"junk-3mb"].headers())[dlq.REASON] == b"not_wire_format"

    # nothing lost: every input offset is in the clean topic or the DLQ, once
    positions = [m.headers()[-1] for m in clean]
    assert all(name == SOURCE_HEADER for name, _ in positions)
    cleaned = [int(value.split(b"/")[1]) for _, value in positions]
    assert sorted(cleaned + list(huge)) == sorted(offsets.values())

    reasons = Counter(dict(m.headers())[dlq.REASON].decode() for m in dead)
    _check_metrics(worker, raw, len(normal), reasons)


def _produce(
    stack: Stack, topic: str, records: dict[bytes, tuple[bytes, bytes]], run: bytes
) -> dict[bytes, int]:
    """Send in this order to one partition; the offset of each key."""
    producer = Producer({"bootstrap.servers": stack.bootstrap, "message.max.bytes": RAW_LIMIT})
    offsets: dict[bytes, int] = {}
    errors: list[Any] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            errors.append(error)
        offsets[message.key()] = message.offset()

    stamped = recent_timestamp_ms()
    for key, (value, blob) in records.items():
        headers: ProducerHeaders = [(RUN_HEADER, run), *([(BLOB, blob)] if blob else [])]
        producer.produce(
            topic, value, key, headers=headers, timestamp=stamped, on_delivery=delivered
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert (errors, len(offsets)) == ([], len(records))
    return offsets


def _read_all(stack: Stack, topic: str, expected: int, timeout_s: float = 15) -> list[Any]:
    """A topic of this test from its start (its references carry no run header)."""
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"it-{uuid.uuid4()}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=100, timeout=0.5):
                assert message.error() is None, message.error()
                found.append(message)
    finally:
        consumer.close()
    return found


def _check_metrics(worker: Worker, raw: str, normal: int, reasons: Counter[str]) -> None:
    """Counted once the batch's sends are acked: a moment after its records can be read."""
    expected: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {
        ("streamproc_records_consumed_total", (("topic", raw),)): normal + reasons.total(),
        ("streamproc_records_produced_total", (("topic", CLEAN),)): normal,
        **{
            ("streamproc_dead_letters_total", (("reason", reason), ("topic", raw))): count
            for reason, count in reasons.items()
        },
    }
    deadline = time.monotonic() + 10
    while True:
        got = {(name, labels): worker.counter(name, **dict(labels)) for name, labels in expected}
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == expected


async def test_an_output_too_large_dead_letters_its_source_whole_when_it_fits(
    stack: Stack, senders: Senders
) -> None:
    """The clean order of a 400 KB record keys by a long id and holds it twice: over the
    limit, while the record itself fits a dead letter."""
    raw = f"it-large-{uuid.uuid4().hex}.order.v1"
    with (
        scratch_topic(stack, f"{raw}.clean", {}) as out,
        scratch_topic(stack, dlq.dlq_topic(raw), {}),
    ):
        batch = [Envelope(raw, 0, offset, b"k", b"v" * 400_000, (), 7) for offset in (41, 42)]
        outputs = [
            OutRecord(out, b"e" * 400_000, b"c" * 800_000, ((SOURCE_HEADER, b"0/42"),), 7),
            OutRecord(out, b"e", b"c", ((SOURCE_HEADER, b"0/41"),), 7),
        ]
        rejected = Rejection(
            Envelope(raw, 0, 43, b"k", b"x" * 2 * MB, (), 7),
            "invalid_country",
            EventRejected("invalid_country", "X" * 2 * MB),
        )
        refused = await deliver(senders(stack.kafka), batch, outputs, [rejected], True)
        assert list(refused) == [0]
        assert (refused[0].source, refused[0].reason) == (batch[1], dlq.RECORD_TOO_LARGE)
        dead = {int(dict(m.headers())[dlq.OFFSET]): m for m in _read_all(stack, f"{raw}.dlq", 2)}
        assert sorted(dead) == [42, 43]
        whole, reference = dead[42], dead[43]
        assert (whole.key(), whole.value()) == (b"k", b"v" * 400_000)
        assert dict(whole.headers())[dlq.REASON] == dlq.RECORD_TOO_LARGE.encode()
        assert dlq.DROPPED not in dict(whole.headers())
        assert (reference.key(), reference.value()) == (b"k", None)
        assert dict(reference.headers())[dlq.REASON] == b"invalid_country"
        assert [m.value() for m in _read_all(stack, out, 1)] == [b"c"]


async def test_a_dead_letter_the_dlq_topic_refuses_goes_as_a_reference(
    stack: Stack, senders: Senders
) -> None:
    """A DLQ topic with a lower max.message.bytes than the producer's refuses a dead letter
    on delivery: the worker sends where the record is instead."""
    raw = f"it-large-{uuid.uuid4().hex}.order.v1"
    with scratch_topic(stack, dlq.dlq_topic(raw), {"max.message.bytes": "2000"}) as topic:
        source = Envelope(raw, 3, 99, b"k", b"v" * 3_000, (), 7)
        rejected = Rejection(source, "truncated", EventRejected("truncated", "ends early"))
        refused = await deliver(senders(stack.kafka), [source], [], [rejected], True)
        assert refused == {}
        [message] = _read_all(stack, topic, 1)
        headers = dict(message.headers())
        assert (message.key(), message.value()) == (None, None)
        assert (headers[dlq.REASON], headers[dlq.DROPPED]) == (b"truncated", b"value,key,headers")
        assert (headers[dlq.PARTITION], headers[dlq.OFFSET]) == (b"3", b"99")
