"""Fakes for unit and component tests (the real adapters are tested in contract/integration)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamproc.adapters.kafka.snapshots import Keep, last_wins
from streamproc.adapters.memory import InMemoryServedLog
from streamproc.core.training import ServedX
from streamproc.errors import EventRejected, Unavailable
from streamproc.records import Envelope, OutRecord


class ExplodingCodec:
    """A codec whose decode fails with a bug-like error for one marked value."""

    def __init__(self, inner: Any, poison: bytes) -> None:
        self._inner = inner
        self._poison = poison

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]:
        if data == self._poison:
            raise RuntimeError("a bug in a step")
        decoded: dict[str, Any] = self._inner.decode(data, expected_name)
        return decoded

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes:
        encoded: bytes = self._inner.encode(topic, schema_name, record)
        return encoded


class HeldAcksSender:
    """A BatchSender whose broker acks only when the test says so: `submitted` holds every
    batch handed over; each batch's `refused()` waits for `acked`, then refuses nothing."""

    def __init__(self) -> None:
        self.submitted: list[list[OutRecord]] = []
        self.acked = asyncio.Event()

    async def submit(self, records: Sequence[OutRecord]) -> _HeldAcks:
        self.submitted.append(list(records))
        return _HeldAcks(self.acked)


class _HeldAcks:
    def __init__(self, acked: asyncio.Event) -> None:
        self._acked = acked

    async def refused(self) -> dict[int, EventRejected]:
        await self._acked.wait()
        return {}


class MemorySnapshotTopic:
    """SnapshotTopic in memory over a log that several clients may share (a trainer, a
    follower and an operator each open their own), with librdkafka's read-ahead: while the
    consumer is open, every record published is fetched into its queue, read or not
    (`buffered_bytes`); closed, the next read opens it anew at the topic's start."""

    def __init__(self, log: list[tuple[str, bytes]] | None = None) -> None:
        self.log = [] if log is None else log
        self.open = False
        self.position = 0

    def opener(self) -> Callable[[str, str], MemorySnapshotTopic]:
        """A stand-in for the SnapshotTopic class: each client it opens shares this log."""
        return lambda _bootstrap, _topic: MemorySnapshotTopic(self.log)

    def publish(self, key: str, value: bytes) -> None:
        self.log.append((key, value))

    def read_new(self, prefix: str, keep: Keep = last_wins) -> dict[str, bytes]:
        if not self.open:
            self.open, self.position = True, 0
        found: dict[str, bytes] = {}
        for key, value in self.log[self.position :]:
            if key.startswith(prefix) and (key not in found or keep(key, found[key], value)):
                found[key] = value
        self.position = len(self.log)
        return found

    def latest(self, key: str) -> bytes | None:
        """The last record published under `key` (what compaction would keep)."""
        return next((value for k, value in reversed(self.log) if k == key), None)

    @property
    def buffered_bytes(self) -> int:
        return sum(len(value) for _, value in self.log[self.position :]) if self.open else 0

    def close(self) -> None:
        self.open = False


class MemoryServedLog(InMemoryServedLog):
    """The served-x log with the trainer's side as well: the x of events by id, and the
    watermark (the slowest partition's newest event time scored; no idle partitions here)."""

    async def fetch(self, event_ids: Sequence[str]) -> dict[str, ServedX]:
        return {i: ServedX.load(self.x[i]) for i in event_ids if i in self.x}

    async def watermark(self, wall_ms: int, partitions: int | None = None) -> int | None:
        if partitions is not None and len(self.newest_ms) < partitions:
            return None  # the idle time since the first mark never passes here
        return min(self.newest_ms.values()) if self.newest_ms else None


class MemoryLabelTopic:
    """A label topic in memory, read through `reader`, a stand-in for PartitionReader: each
    reader starts at the offsets it is given (0 elsewhere); `opened_at` lists them. The
    next `metadata_outages` asks for a topic's partitions fail as a broker away fails them."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.records: dict[int, list[Envelope]] = {}
        self.opened_at: list[dict[int, int]] = []
        self.open_readers = 0
        self.metadata_outages = 0

    def append(self, partition: int, key: bytes, value: bytes) -> None:
        records = self.records.setdefault(partition, [])
        records.append(Envelope(self.topic, partition, len(records), key, value))

    def reader(
        self,
        _bootstrap: str,
        topic: str,
        start: dict[int, int],
        _group: str,
        _report_lag: object = None,
    ) -> _MemoryLabelReader:
        assert topic == self.topic
        self.opened_at.append(dict(start))
        self.open_readers += 1
        return _MemoryLabelReader(self, dict(start))


class _MemoryLabelReader:
    def __init__(self, topic: MemoryLabelTopic, start: dict[int, int]) -> None:
        self._topic = topic
        self._next = start
        self._at_end: dict[int, bool] = {}

    def read(self, max_records: int, timeout_s: float) -> list[Envelope]:
        found: list[Envelope] = []
        for partition, records in sorted(self._topic.records.items()):
            offset = self._next.get(partition, 0)
            taken = records[offset : offset + max_records - len(found)]
            found.extend(taken)
            self._next[partition] = offset + len(taken)
            self._at_end[partition] = self._next[partition] >= len(records)
        if not found:  # as a consumer waits for records, up to its timeout
            time.sleep(min(timeout_s, 0.01))
        return found

    @property
    def at_end(self) -> dict[int, bool]:
        """As PartitionReader's: the partitions the last read left at their end then."""
        return dict(self._at_end)

    def partition_count(self, topic: str) -> int:
        if self._topic.metadata_outages:
            self._topic.metadata_outages -= 1
            raise Unavailable("kafka", f"{topic}: no metadata: broker transport failure")
        return 1

    def close(self) -> None:
        self._topic.open_readers -= 1


class ScriptedLease:
    """The trainer lease: held at `epoch` (0: another holder has it); `holds` counts asks."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.holds = 0

    async def hold(self, ttl_ms: int) -> int:
        self.holds += 1
        return self.epoch


class RecordingSender:
    """A BatchSender whose every record is acked at once; `sent` keeps them in order."""

    def __init__(self) -> None:
        self.sent: list[OutRecord] = []

    async def send(self, records: Sequence[OutRecord]) -> None:
        self.sent.extend(records)
