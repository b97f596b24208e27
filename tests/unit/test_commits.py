"""The offsets a commit policy hands to the consumer, with and without the Redis state's epoch
as their metadata (a process without Redis state, like the pass-through bench, has none)."""

from __future__ import annotations

from typing import Any

from streamproc.adapters.kafka.commits import AutoCommits
from streamproc.adapters.kafka.positions import FetchedBatch, Positions
from streamproc.records import Envelope

TOPIC = "t"


class _StoringConsumer:
    def __init__(self) -> None:
        self.stored: list[Any] = []

    def store_offsets(self, offsets: list[Any]) -> None:
        self.stored.extend(offsets)


def _finished(positions: Positions, offsets: range) -> None:
    records = [Envelope(TOPIC, 0, offset, None, b"") for offset in offsets]
    batch = positions.hand_over(FetchedBatch(TOPIC, records, {0: positions.epoch((TOPIC, 0))}))
    positions.begin(batch)
    positions.finish(batch)


def _stored(epoch: str | None) -> list[tuple[str, int, int, str | None]]:
    positions = Positions()
    positions.assign([(TOPIC, 0)])
    _finished(positions, range(0, 4))
    consumer = _StoringConsumer()
    AutoCommits(positions, 1.0, 1.0, lambda: epoch).tick(consumer)  # type: ignore[arg-type]
    return [(p.topic, p.partition, p.offset, p.metadata) for p in consumer.stored]


def test_offsets_carry_the_state_epoch_as_metadata() -> None:
    assert _stored("epoch-1") == [(TOPIC, 0, 4, "epoch-1")]


def test_offsets_without_an_epoch_are_committed_without_metadata() -> None:
    assert _stored(None) == [(TOPIC, 0, 4, None)]
