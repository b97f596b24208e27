"""Core: the frozen records that flow between the steps of a stage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A record exactly as it was consumed from Kafka, with where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class OutRecord:
    """A record ready to send: topic, key, encoded value, headers and (kept) timestamp."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that could not be processed, with the reason code for the DLQ and metrics."""

    source: Envelope
    reason: str
    error: BaseException
    event_id: str | None = None  # when the record was read far enough to know it


# Where a clean event was read: "<partition>/<offset>" of the source topic. The feature step
# guards on it, so an event the clean stage sends twice (a replay after its crash) counts once.
SOURCE_HEADER = "streamproc.source"


def source_stamp(envelope: Envelope) -> bytes:
    """The SOURCE_HEADER value naming where `envelope` was read."""
    return f"{envelope.partition}/{envelope.offset}".encode()


def source_position(envelope: Envelope) -> tuple[int, int]:
    """The source position the clean stage stamped; a record without one (produced by
    another writer) is placed by its own position, in partitions of its own."""
    stamp = header(envelope.headers, SOURCE_HEADER)
    if stamp is not None:
        partition, _, offset = stamp.decode().partition("/")
        return int(partition), int(offset)
    return -1 - envelope.partition, envelope.offset


def header(headers: Headers, name: str) -> bytes | None:
    """The value of the first header called `name`, None when there is none."""
    for key, value in headers:
        if key == name:
            return value
    return None
