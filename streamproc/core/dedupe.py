"""Core: duplicate detection: exact (same event id) and content (same fingerprint, in a window).

The store remembers the first record seen per event id and per fingerprint, with where it was
read (partition, offset). A record that meets itself again (Kafka replays after a crash) is not
its own duplicate, so reprocessing a batch gives the same verdicts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamproc.avro_records import DuplicateKind

_SEPARATOR = "\x1f"


@dataclass(frozen=True, slots=True)
class Sighting:
    """A record as the store remembers it."""

    event_id: str
    partition: int
    offset: int
    occurred_at_ms: int

    def same_record(self, other: Sighting) -> bool:
        return (self.partition, self.offset) == (other.partition, other.offset)

    def encode(self) -> str:
        return f"{self.partition}|{self.offset}|{self.occurred_at_ms}|{self.event_id}"

    @classmethod
    def decode(cls, text: str) -> Sighting:
        partition, offset, occurred_at, event_id = text.split("|", 3)
        return cls(event_id, int(partition), int(offset), int(occurred_at))


@dataclass(frozen=True, slots=True)
class Claim:
    """One record asking: have you seen my id, or my content within the window?"""

    sighting: Sighting
    fingerprint: str | None
    group: str  # what its keys are stored by (the entity, else the event id): one cluster slot


@dataclass(frozen=True, slots=True)
class DedupeVerdict:
    """First seen (no kind), or a retry (same event id) or resubmission (same content) of the
    record `first`."""

    kind: DuplicateKind | None = None
    first: Sighting | None = None


FIRST_SEEN = DedupeVerdict()


@dataclass(frozen=True, slots=True)
class DedupeRules:
    """How long ids and contents are remembered, and how near in event time the same content
    must come again to be a resubmission."""

    window_ms: int
    id_ttl_ms: int
    content_ttl_ms: int


class SeenStore(Protocol):
    """Remembers sightings; `claim` answers a whole batch in one round trip, in order."""

    async def claim(self, claims: Sequence[Claim], rules: DedupeRules) -> list[DedupeVerdict]: ...


def fingerprint(clean: Mapping[str, Any], fields: Sequence[str]) -> str | None:
    """A digest of the normalized content; None when the entity is unknown (cannot compare).

    Stable under field order, and under case and whitespace of text values.
    """
    if clean.get("entity_key") is None:
        return None
    parts = [f"{name}={_canonical(clean.get(name))}" for name in sorted(fields)]
    return hashlib.sha256(_SEPARATOR.join(parts).encode()).hexdigest()[:32]


def _canonical(value: object) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    return str(value)


def judge(
    claim: Claim,
    by_id: Sighting | None,
    by_content: Sighting | None,
    rules: DedupeRules,
) -> tuple[DedupeVerdict, bool, bool]:
    """The verdict for one claim given what the store holds, and which keys to (re)write.

    Returns (verdict, write the id key, write the content key). The Redis script applies the
    same rules in Lua; the in-memory store uses this function directly.
    """
    mine = claim.sighting
    if by_id is not None and not by_id.same_record(mine):
        return DedupeVerdict("retry", by_id), False, False
    if claim.fingerprint is None:
        return FIRST_SEEN, by_id is None, False
    if (
        by_content is not None
        and not by_content.same_record(mine)
        and abs(mine.occurred_at_ms - by_content.occurred_at_ms) <= rules.window_ms
    ):
        return DedupeVerdict("resubmission", by_content), by_id is None, False
    return FIRST_SEEN, by_id is None, True
