"""Adapter: a consumer's partitions kept in step by log time (the records' Kafka timestamps),
for a replay.

Why: a replay reads a backlog, and librdkafka fetches a topic's partitions at whatever pace
each fetch happens to take, hours of log time apart. The clean stage then writes each clean
partition a mix of the raw partitions in an order of that moment, the scored stream's event
time runs ahead of raw partitions not read yet, and a label falls due before its order is
scored: it is held, and learned later at a point that depends on timing, so two replays of
one log learned different models. In step, every partition of a topic is handed over no
further than `slack_ms` of log time past the slowest one still being read, and a batch
interleaves them by log time: a clean partition then grows in log-time order, give or take
the slack, and a label (a minute or more after its order) finds its order scored.

A partition read to its end (librdkafka's partition EOF) holds nothing back until it has
records again; a partition assigned and not heard of yet holds back all. Records held back
are not handed over, so never committed: a restart or a rebalance reads them again.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError

from streamproc.adapters.kafka.positions import Partition


class Message(Protocol):
    """What the aligner reads of a confluent-kafka Message."""

    def error(self) -> Any: ...

    def topic(self) -> Any: ...

    def partition(self) -> Any: ...

    def offset(self) -> Any: ...

    def timestamp(self) -> tuple[int, int]: ...


M = TypeVar("M", bound=Message)


@dataclass(slots=True)
class _Lane(Generic[M]):
    """One partition: what was fetched and not handed over yet, its latest log time fetched
    (None: nothing yet), and whether it was read to its end since."""

    held: deque[tuple[int, M]] = field(default_factory=deque)
    latest_ms: int | None = None
    ended: bool = False


class PartitionAligner(Generic[M]):
    """Keeps the records of each topic's partitions within `slack_ms` of log time of the
    slowest partition still being read. Used in the consumer's thread only."""

    def __init__(self, slack_ms: int) -> None:
        self._slack_ms = slack_ms
        self._lanes: dict[Partition, _Lane[M]] = {}

    def assign(self, partitions: Iterable[Partition]) -> None:
        for partition in partitions:
            self._lanes.setdefault(partition, _Lane[M]())

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """The partitions moved (or were lost): what was held of them goes, unhanded; their
        next owner reads it from the committed offset."""
        for partition in partitions:
            self._lanes.pop(partition, None)

    def add(self, messages: Iterable[M]) -> list[M]:
        """Takes fetched messages in; returns the errors among them but the ends of
        partitions, for the caller to deal with."""
        errors = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    lane = self._lanes.get((message.topic(), message.partition()))
                    if lane is not None:
                        lane.ended = True
                else:
                    errors.append(message)
                continue
            lane = self._lanes.get((message.topic(), message.partition()))
            if lane is None:  # fetched before a revoke: its next owner reads it again
                continue
            kind, stamp = message.timestamp()
            at_ms = stamp if kind != TIMESTAMP_NOT_AVAILABLE else lane.latest_ms or 0
            # a partition's log time only grows, but for a producer's own (CreateTime) clock
            lane.latest_ms = at_ms if lane.latest_ms is None else max(lane.latest_ms, at_ms)
            lane.ended = False
            lane.held.append((at_ms, message))
        return errors

    def release(self) -> list[M]:
        """The held records now within step, interleaved by log time (each partition's in
        its offset order)."""
        released: list[M] = []
        for lanes in self._by_topic().values():
            limit = self._limit(lanes)
            runs = [list(self._take(lane, limit)) for lane in lanes]
            released += [message for _, message in heapq.merge(*runs, key=lambda held: held[0])]
        return released

    def holding(self) -> set[Partition]:
        """The partitions with records held back: to pause, so that nothing more of them is
        fetched until the others catch up (the rest are to be read)."""
        return {partition for partition, lane in self._lanes.items() if lane.held}

    def _by_topic(self) -> dict[str, list[_Lane[M]]]:
        topics: dict[str, list[_Lane[M]]] = {}
        for (topic, _), lane in sorted(self._lanes.items()):
            topics.setdefault(topic, []).append(lane)
        return topics

    def _limit(self, lanes: Sequence[_Lane[M]]) -> int | None:
        """How far in log time a topic's records may go now (None: no limit, every
        partition read to its end)."""
        reading = [lane.latest_ms for lane in lanes if not lane.ended]
        if not reading:
            return None
        if None in reading:  # a partition not heard of yet may hold the earliest records
            return -(2**63)
        return min(at for at in reading if at is not None) + self._slack_ms

    @staticmethod
    def _take(lane: _Lane[M], limit: int | None) -> Iterator[tuple[int, M]]:
        """A lane's held records up to `limit`, in offset order: the first one past it stops
        the run (a producer's clock may step back; its later records wait with it)."""
        held = lane.held
        while held and (limit is None or held[0][0] <= limit):
            yield held.popleft()
