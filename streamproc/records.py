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
