"""Core: duplicate detection: exact (same event id) and content (same fingerprint, in a window).

The store remembers the first record seen per event id and per fingerprint, with where it was
read (partition, offset). A record that meets itself again (Kafka replays after a crash) is not
its own duplicate, so reprocessing a batch gives the same verdicts.

How long an id or a content is remembered is measured between the records' Kafka timestamps
(when each was logged), not by the clock of the process that reads them: a replay of the log
a week later, at a thousand times the pace, gives the verdicts the live run gave. The stores'
own expiry (Redis' PX) only frees memory, at least as late.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamproc.avro_records import DuplicateKind

_SEPARATOR = "\x1f"


_VERSION = "v2"  # a sighting with its log time; one without (written before) has no prefix


@dataclass(frozen=True, slots=True)
class Sighting:
    """A record as the store remembers it: its id, where it was read, its event time and when
    it was logged (its Kafka timestamp; None for one remembered before log times were)."""

    event_id: str
    partition: int
    offset: int
    occurred_at_ms: int
    logged_at_ms: int | None = None

    def same_record(self, other: Sighting) -> bool:
        return (self.partition, self.offset) == (other.partition, other.offset)

    def within(self, other: Sighting, ttl_ms: int) -> bool:
        """Whether the two were logged at most `ttl_ms` apart (unknown: yes, as before)."""
        if self.logged_at_ms is None or other.logged_at_ms is None:
            return True
        return abs(self.logged_at_ms - other.logged_at_ms) <= ttl_ms

    def encode(self) -> str:
        where = f"{self.partition}|{self.offset}|{self.occurred_at_ms}"
        if self.logged_at_ms is None:
            return f"{where}|{self.event_id}"
        return f"{_VERSION}|{where}|{self.logged_at_ms}|{self.event_id}"

    @classmethod
    def decode(cls, text: str) -> Sighting:
        if text.startswith(f"{_VERSION}|"):
            _, partition, offset, occurred_at, logged_at, event_id = text.split("|", 5)
            return cls(event_id, int(partition), int(offset), int(occurred_at), int(logged_at))
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

    Returns (verdict, write the id key, write the content key). A sighting logged longer ago
    than its time to live is forgotten: the claim takes its place. The Redis script applies
    the same rules in Lua; the in-memory store uses this function directly.
    """
    mine = claim.sighting
    if by_id is not None and by_id.same_record(mine):
        by_id_kept = True
    elif by_id is not None and by_id.within(mine, rules.id_ttl_ms):
        return DedupeVerdict("retry", by_id), False, False
    else:
        by_id_kept = False  # none, or forgotten
    if claim.fingerprint is None:
        return FIRST_SEEN, not by_id_kept, False
    if (
        by_content is not None
        and not by_content.same_record(mine)
        and abs(mine.occurred_at_ms - by_content.occurred_at_ms) <= rules.window_ms
        and by_content.within(mine, rules.content_ttl_ms)
    ):
        return DedupeVerdict("resubmission", by_content), not by_id_kept, False
    return FIRST_SEEN, not by_id_kept, True
