"""Tool: erase a data subject: record the erasure on the erasure topic (workers pseudonymise
the subject's later orders, and a replay brings nothing back), then delete its data from the
stores twice: at once, and again once every worker has read the erasure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from streamproc.adapters.kafka.admin import TopicLister
from streamproc.adapters.kafka.erasures import ERASURES_TOPIC, ErasureTopic
from streamproc.config.pipeline import PipelineSpec
from streamproc.config.tabular import TabularSpec
from streamproc.core.erasure import Erasures, SubjectData, erase_subject
from streamproc.core.normalize import Normalizer
from streamproc.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What an erasure did: whose, under which pseudonym, keys deleted per store, how long."""

    entity_key: str
    pseudonym: str
    deleted: dict[str, int]
    seconds: float


def subject_entity(
    declared: PipelineSpec | TabularSpec, pii_key: bytes, subject: str, field: str | None
) -> str:
    """The entity key of `subject`, a value of the raw `field` (default: the first part of the
    shop pipeline's entity key, its customer id); a tabular pipeline's entity key as it is."""
    if isinstance(declared, TabularSpec):
        if declared.entity_key is None or field not in (None, declared.entity_key):
            raise ConfigError(
                f"{declared.name}: erasure is by the entity key field "
                f"({declared.entity_key or 'none is declared'}), not by {field!r}"
            )
        return subject
    parts = [part.field for part in declared.entity_key]
    field = field or parts[0]
    entity = Normalizer(declared, pii_key).subject_entity(field, subject)
    if entity is None:
        raise ConfigError(
            f"{declared.name}: no entity key for {field} = {subject!r} "
            f"(the entity key is built from {', '.join(parts)}; an e-mail must be valid)"
        )
    return entity


def require_erasure_topic(admin: TopicLister) -> None:
    if ERASURES_TOPIC not in admin.list_topic_names():
        raise ConfigError(
            f"topic missing in Kafka: {ERASURES_TOPIC}; create it with `streamproc topics apply`"
        )


async def erase(
    entity: str,
    pii_key: bytes,
    topic: ErasureTopic,
    stores: Mapping[str, SubjectData],
    settle_s: float,
) -> ErasureReport:
    """Record, then sweep, wait `settle_s`, sweep again. A worker that had not read the
    erasure yet may have written for the subject meanwhile; after it has, it keeps nothing of
    it. The data kept under the pseudonym (orders since an earlier erasure) goes as well."""
    started = time.perf_counter()
    pseudonym = Erasures(pii_key, set()).pseudonym(entity)
    await asyncio.to_thread(topic.record, pseudonym, int(time.time() * 1000))
    entities = [entity, pseudonym]
    deleted = await erase_subject(entities, stores)
    await asyncio.sleep(settle_s)
    again = await erase_subject(entities, stores)
    total = {name: count + again[name] for name, count in deleted.items()}
    return ErasureReport(entity, pseudonym, total, time.perf_counter() - started)
