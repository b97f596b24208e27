"""Core: erasure of a data subject (GDPR art. 17): its pseudonym, the check the stages make per
record, the pseudonymised clean order, and the sweep over the stores that keep its data.

A subject is an entity key (the shop: a customer id, or `guest:` and the keyed hash of a
guest's e-mail). What is recorded of an erasure, and held in memory by the workers, is only the
subject's pseudonym: a keyed HMAC that the PII key recomputes from the entity key, and nothing
turns back into it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Protocol

from streamproc.avro_records import OrderClean
from streamproc.config.pipeline import Features
from streamproc.core.features.view import entity_keys

ERASED_FLAG = "subject_erased"  # the quality flag of a clean order pseudonymised by erasure
PSEUDONYM_PREFIX = "erased:"
# Domain separation: the e-mail's keyed hash (canonical.keyed_hash) uses the same key.
_DOMAIN = b"streamproc.erasure\x1f"
_PSEUDONYM_HEX = 32  # 128 bits: no two subjects of a shop share one


class ErasedSet(Protocol):
    """The pseudonyms of the erased subjects, as far as this process has read them; an
    adapter fills it (the worker: from the erasure topic). A plain set is one."""

    def __contains__(self, pseudonym: object) -> bool: ...

    def __len__(self) -> int: ...


class SubjectData(Protocol):
    """Where data per subject is kept (features, dedupe memory, the served x)."""

    async def erase(self, entity: str) -> int:
        """Delete everything kept for `entity`; how many entries were deleted (the indexes
        that found them not counted)."""
        ...


class KeyDeleter(Protocol):
    """A store whose entries can be deleted by key (the feature store)."""

    async def delete(self, keys: Sequence[str]) -> int:
        """How many of `keys` there were."""
        ...


class FeatureHashes:
    """A subject's feature hashes (SubjectData): their keys follow from the declaration, so
    an erasure finds them without searching the store."""

    def __init__(self, features: Features, store: KeyDeleter) -> None:
        self._features = features
        self._store = store

    async def erase(self, entity: str) -> int:
        return await self._store.delete(entity_keys(self._features, entity))


class Erasures:
    """Which entity keys are erased: those whose pseudonym is in `erased`. One HMAC per asked
    record, and none while nothing is erased."""

    def __init__(self, pii_key: bytes, erased: ErasedSet) -> None:
        self._mac = hmac.new(pii_key, _DOMAIN, hashlib.sha256)
        self._erased = erased

    def pseudonym(self, entity: str) -> str:
        mac = self._mac.copy()  # the key and the domain are hashed in once
        mac.update(entity.encode())
        return PSEUDONYM_PREFIX + mac.hexdigest()[:_PSEUDONYM_HEX]

    def erased(self, entity: str | None) -> str | None:
        """The pseudonym of `entity` when it is erased, else None."""
        if not entity or not self._erased:
            return None
        pseudonym = self.pseudonym(entity)
        return pseudonym if pseudonym in self._erased else None


def pseudonymise(clean: OrderClean, pseudonym: str) -> None:
    """Rewrite a clean order of an erased subject in place: the pseudonym stands for its
    entity key and customer id (features and dedupe go on under it, never under the real
    ones); the name and the e-mail's hash, which would link it back, are dropped."""
    clean["entity_key"] = pseudonym
    if clean["customer_id"] is not None:
        clean["customer_id"] = pseudonym  # a guest stays a guest
    clean["given_name"] = clean["family_name"] = clean["email_hash"] = None
    clean["quality_flags"].append(ERASED_FLAG)


async def erase_subject(
    entities: Sequence[str], stores: Mapping[str, SubjectData]
) -> dict[str, int]:
    """Every store's data of each of `entities` deleted; keys deleted per store name."""
    deleted = dict.fromkeys(stores, 0)
    for entity in entities:
        for name, store in stores.items():
            deleted[name] += await store.erase(entity)
    return deleted
