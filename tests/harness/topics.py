"""What the fault harness reads from Kafka: offsets (log start, last stable, committed by a
group), a group's members, and a topic's records between two offsets, read_committed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from confluent_kafka import Consumer, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streamproc.adapters.kafka.client_logs import client_config
from streamproc.config.kafka import KafkaConnection
from streamproc.records import Headers

Offsets = dict[int, int]  # partition -> offset
_TIMEOUT_S = 30
_T = TypeVar("_T")


def retrying(ask: Callable[[], _T], timeout_s: float = 60) -> _T:
    """`ask` again while Kafka answers with an error, for up to `timeout_s`: a broker just
    back from a fault knows its partitions' leaders a little later (an error that lasts is
    raised at the end)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ask()
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@dataclass(frozen=True, slots=True)
class Record:
    """A record as read back: where it is, and what it holds."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


def partitions(bootstrap: str, topic: str) -> list[int]:
    admin = AdminClient(client_config(KafkaConnection(bootstrap)))
    return sorted(admin.list_topics(topic, timeout=_TIMEOUT_S).topics[topic].partitions)


def _list_offsets(bootstrap: str, topic: str, spec: OffsetSpec) -> Offsets:
    asked = {TopicPartition(topic, p): spec for p in partitions(bootstrap, topic)}

    def ask() -> Offsets:
        # A client of its own each time: in CI one client answered "Failed to query
        # partition leaders: No leaders found" after the broker came back from SIGSTOP
        # (fault case 5) until the retries ran out, while the broker's log shows it leading
        # every partition throughout: what it knew was the client's own, so it starts anew.
        admin = AdminClient(client_config(KafkaConnection(bootstrap)))
        futures = admin.list_offsets(
            asked, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=_TIMEOUT_S
        )
        return {tp.partition: f.result(_TIMEOUT_S).offset for tp, f in futures.items()}

    return retrying(ask)


def stable_ends(bootstrap: str, topic: str) -> Offsets:
    """Each partition's last stable offset: the end a read_committed reader reaches (the
    high watermark when no transaction is open)."""
    return _list_offsets(bootstrap, topic, OffsetSpec.latest())  # type: ignore[no-untyped-call]


_MARKER_READ_S = 1.5  # a local broker answers a fetch at once; this is a generous bound


def consumed_ends(bootstrap: str, topic: str, committed: Offsets) -> Offsets:
    """Each partition's last stable offset, or `committed` where only transaction markers lie
    between the two (a commit marker takes an offset, and no reader ever gets it: a group
    that read everything commits the offset before it). A read_committed reader started at
    `committed` gets a record there within moments, or there is none."""
    ends = stable_ends(bootstrap, topic)
    behind = {p: committed[p] for p, end in ends.items() if p in committed and committed[p] < end}
    if not behind:
        return ends
    consumer = Consumer(client_config(KafkaConnection(bootstrap), **{"group.id": "harness-ends"}))
    consumer.assign([TopicPartition(topic, p, offset) for p, offset in behind.items()])
    holding: set[int] = set()
    deadline = time.monotonic() + _MARKER_READ_S
    try:
        while time.monotonic() < deadline and len(holding) < len(behind):
            for message in consumer.consume(500, timeout=0.1):
                partition, offset = message.partition(), message.offset()
                if partition is None or offset is None or message.error() is not None:
                    continue
                if offset < ends[partition]:
                    holding.add(partition)  # a record the group has not consumed
    finally:
        consumer.close()
    return {p: committed[p] if p in behind and p not in holding else e for p, e in ends.items()}


def log_starts(bootstrap: str, topic: str) -> Offsets:
    """Each partition's first offset still kept (retention or deleted records move it)."""
    return _list_offsets(bootstrap, topic, OffsetSpec.earliest())  # type: ignore[no-untyped-call]


def committed(bootstrap: str, group: str, topic: str) -> Offsets:
    """The offsets `group` committed on `topic`; a partition it never committed is absent."""
    consumer = Consumer(client_config(KafkaConnection(bootstrap), **{"group.id": group}))
    asked = [TopicPartition(topic, p) for p in partitions(bootstrap, topic)]
    try:
        found = retrying(lambda: consumer.committed(asked, timeout=_TIMEOUT_S))
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def group_members(bootstrap: str, group: str) -> int:
    """How many consumers the group has now."""
    admin = AdminClient(client_config(KafkaConnection(bootstrap)))

    def ask() -> int:
        [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
        return len(future.result(10).members)

    return retrying(ask)


def read_between(
    bootstrap: str, topic: str, start: Mapping[int, int], end: Mapping[int, int]
) -> dict[int, list[Record]]:
    """Per partition, the committed records from `start` up to `end` (exclusive), in order.
    Raises when a partition's end is not reached in time."""
    consumer = Consumer(
        client_config(
            KafkaConnection(bootstrap),
            **{
                "group.id": f"faults-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",  # a start retention deleted: from what is kept
            },
        )
    )
    wanted = {p: end[p] for p in end if end[p] > start.get(p, 0)}
    found: dict[int, list[Record]] = {p: [] for p in end}
    if not wanted:
        return found
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in wanted])
    deadline = time.monotonic() + _TIMEOUT_S
    try:
        while _behind(consumer, topic, wanted):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read up to {wanted} in {_TIMEOUT_S} s")
            for message in consumer.consume(5_000, 0.2):
                if message.error() is None:  # an error is a partition's EOF: position decides
                    _keep(found, wanted, message)
    finally:
        consumer.close()
    return found


def _keep(found: dict[int, list[Record]], wanted: Mapping[int, int], message: Any) -> None:
    """Keep a record below its partition's end, once (a partition's offsets only grow)."""
    partition, offset = int(message.partition()), int(message.offset())
    kept = found[partition]
    if offset < wanted.get(partition, 0) and (not kept or offset > kept[-1].offset):
        headers = cast(Headers, tuple(message.headers() or ()))
        kept.append(Record(partition, offset, message.key(), message.value(), headers))


def _behind(consumer: Consumer, topic: str, wanted: Mapping[int, int]) -> bool:
    """Whether some partition's position is short of its end (control records of
    transactions take offsets too: the position, not the last record, says how far)."""
    positions = consumer.position([TopicPartition(topic, p) for p in wanted])
    return any(tp.offset < wanted[tp.partition] for tp in positions)
