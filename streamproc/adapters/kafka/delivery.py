"""Adapter: a processed batch's way out: its outputs and dead letters go to librdkafka at once,
and their acks are awaited later, so the worker processes the next batch meanwhile.

An output Kafka refuses for itself (too large, say) costs its own record only: its source goes
to the DLQ under the refusal's reason, and is returned by the output's index to be counted. A
dead letter refused in turn (a DLQ topic with a lower limit) goes again as a bare reference; a
reference refused too is an InfraError, as the record would be lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from streamproc.adapters.kafka.dlq import dead_letter, reference
from streamproc.adapters.kafka.producer import BatchSender, Submitted
from streamproc.errors import InfraError
from streamproc.records import SOURCE_HEADER, Envelope, OutRecord, Rejection, source_stamp

log = logging.getLogger(__name__)


class Delivery:
    """One batch's outputs and dead letters, handed to librdkafka; `refused` waits for them."""

    def __init__(  # noqa: PLR0913, PLR0917 - only start() calls it, handing over what it built
        self,
        sender: BatchSender,
        batch: Sequence[Envelope],
        records: list[OutRecord],
        letters: list[Rejection | None],
        submitted: Submitted,
        positions: bool,
    ) -> None:
        self._sender = sender
        self._batch = batch
        self._records = records
        self._letters = letters
        self._submitted = submitted
        self._positions = positions

    @classmethod
    async def start(
        cls,
        sender: BatchSender,
        batch: Sequence[Envelope],
        outputs: Sequence[OutRecord],
        rejections: Sequence[Rejection],
        positions: bool,
    ) -> Delivery:
        """Hand `outputs`, then `rejections` as dead letters, to librdkafka. `positions`: the
        outputs name their source's offset (the clean stage's header)."""
        records = [*outputs, *(dead_letter(rejection) for rejection in rejections)]
        letters: list[Rejection | None] = [*([None] * len(outputs)), *rejections]
        submitted = await sender.submit(records)
        return cls(sender, batch, records, letters, submitted, positions)

    async def refused(self) -> dict[int, Rejection]:
        """Once every record is acked (then the batch may be committed): the outputs Kafka
        refused, by index, as the rejections of their sources (already dead-lettered)."""
        refused: dict[int, Rejection] = {}
        records, letters, submitted = self._records, self._letters, self._submitted
        while records:
            denied = await submitted.refused()
            again: list[OutRecord] = []
            again_letters: list[Rejection | None] = []
            for index, error in denied.items():
                record, rejection = records[index], letters[index]
                log.warning("%s: %s", error.reason, error)
                if rejection is None:  # outputs are in the first round only: index is theirs
                    source = _source(self._batch, record, self._positions)
                    rejection = Rejection(source, error.reason, error)
                    refused[index] = rejection
                    again.append(dead_letter(rejection))
                elif record != (bare := reference(rejection)):
                    again.append(bare)
                else:
                    raise InfraError(f"{record.topic} refuses even a bare dead letter: {error}")
                again_letters.append(rejection)
            records, letters = again, again_letters
            if records:
                submitted = await self._sender.submit(records)
        return refused


async def deliver(
    sender: BatchSender,
    batch: Sequence[Envelope],
    outputs: Sequence[OutRecord],
    rejections: Sequence[Rejection],
    positions: bool,
) -> dict[int, Rejection]:
    """Send and wait: Delivery.start, then Delivery.refused."""
    return await (await Delivery.start(sender, batch, outputs, rejections, positions)).refused()


def delivered(
    refused: Mapping[int, Rejection], first: list[OutRecord], second: list[OutRecord]
) -> tuple[list[OutRecord], list[OutRecord]]:
    """The two output lists a Delivery was given as one, less what it returned as refused."""
    kept = [r for i, r in enumerate([*first, *second]) if i not in refused]
    kept_first = len(first) - sum(1 for i in refused if i < len(first))
    return kept[:kept_first], kept[kept_first:]


def _source(batch: Sequence[Envelope], record: OutRecord, positions: bool) -> Envelope:
    """The input `record` was made from, looked up for a refused one only. A clean order
    names its source's position; a duplicate's audit, a late order and a prediction keep
    its key and timestamp. Not found: a reference holding what the output kept."""
    stamp = dict(record.headers).get(SOURCE_HEADER) if positions else None
    if stamp:
        for envelope in batch:
            if source_stamp(envelope) == stamp:
                return envelope
    for envelope in batch:
        if (envelope.key, envelope.timestamp_ms) == (record.key, record.timestamp_ms):
            return envelope
    return Envelope(batch[0].topic, -1, -1, record.key, None, (), record.timestamp_ms)
