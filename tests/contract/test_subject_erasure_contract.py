"""One suite for every store that keeps data per subject (dedupe memory, features, served x):
in memory and on Redis, single and cluster. Erasing a subject forgets it, and only it; on Redis
no key of it is left (a SCAN over the namespace)."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import pytest

from streamproc.adapters.memory import InMemoryFeatureStore, InMemorySeenStore
from streamproc.adapters.redis.client import AnyRedis
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.adapters.redis.stores import RedisFeatureStore, RedisSeenStore
from streamproc.config.pipeline import load_pipeline
from streamproc.core.dedupe import Claim, DedupeRules, Sighting
from streamproc.core.erasure import FeatureHashes, SubjectData, erase_subject
from streamproc.core.features.stage import FeatureStage
from streamproc.core.features.state import FeatureEvent
from streamproc.core.training import ServedX
from tests.conftest import REPO
from tests.contract.conftest import REDIS_KINDS, connect, drop
from tests.fakes import MemoryServedLog

RULES = DedupeRules(window_ms=600_000, id_ttl_ms=3_600_000, content_ttl_ms=3_600_000)
FEATURES = load_pipeline(REPO / "pipelines/shop_orders.yaml").features
T0 = 1_774_746_000_000
ERASED = "c*[1]?"  # glob characters: a SCAN pattern must take them literally
KEPT = ("c1", "cx[1]y", "c*[1]?x")  # each would match ERASED's pattern if it were not escaped
X = ServedX({"a": 1.0}, {"m": 0.5}, T0, 1)


@dataclass
class Stores:
    seen: InMemorySeenStore | RedisSeenStore
    features: InMemoryFeatureStore | RedisFeatureStore
    served: MemoryServedLog | RedisServedLog
    client: AnyRedis | None = None
    namespace: str = ""

    async def residue(self, entity: str) -> list[str]:
        """Every Redis key of the namespace that names `entity`; in memory, what the stores
        hold of it (the dedupe memory's entries counted by what erasing a copy finds)."""
        if self.client is None:
            assert isinstance(self.features, InMemoryFeatureStore)
            assert isinstance(self.served, MemoryServedLog)
            kept = [key for key in self.features.hashes if f"{{{entity}}}" in key]
            kept += [event_id for event_id in self.served.x if event_id.startswith(f"{entity}-")]
            kept += ["index"] * (entity in self.served.index)
            return kept + ["dedupe"] * await copy.deepcopy(self.seen).erase(entity)
        return [
            key.decode()
            async for key in self.client.scan_iter(match=f"{self.namespace}:*", count=10_000)
            if f"{{{entity}}}" in key.decode() or f":{entity}-" in key.decode()
        ]


@pytest.fixture(params=REDIS_KINDS)
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    async for each in _open(request):
        yield each


@pytest.fixture(params=[kind for kind in REDIS_KINDS if kind != "memory"])
async def redis_stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    """The Redis backends only: in memory nothing expires."""
    async for each in _open(request):
        yield each


async def _open(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        yield Stores(InMemorySeenStore(), InMemoryFeatureStore(), MemoryServedLog())
        return
    client = await connect(request.param, request)
    namespace = f"test:{uuid.uuid4().hex}"
    yield Stores(
        RedisSeenStore(client, namespace),
        RedisFeatureStore(client, f"{namespace}:features"),
        RedisServedLog(client, namespace),
        client,
        namespace,
    )
    await drop(client, namespace)


def _claim(entity: str, event_id: str, offset: int) -> Claim:
    return Claim(Sighting(event_id, 0, offset, T0), f"fp-{event_id}", entity)


async def _keep_data_of(stores: Stores, entities: tuple[str, ...]) -> None:
    """Each entity: two orders remembered, features applied, their x logged."""
    claims = [_claim(e, f"{e}-{i}", 10 * n + i) for n, e in enumerate(entities) for i in (0, 1)]
    assert [v.kind for v in await stores.seen.claim(claims, RULES)] == [None] * len(claims)
    events = [
        FeatureEvent(claim.group, 0, claim.sighting.offset, T0, {"amount_gross_eur": 9.0}, "e")
        for claim in claims
    ]
    await FeatureStage(FEATURES, stores.features).process(events, wall_ms=T0)
    served = [(claim.sighting.event_id, X) for claim in claims]
    entities_ids = {e: [f"{e}-0", f"{e}-1"] for e in entities}
    await stores.served.log(served, 3_600_000, {0: T0}, wall_ms=T0, entities=entities_ids)


async def test_erasing_a_subject_forgets_it_and_only_it(stores: Stores) -> None:
    await _keep_data_of(stores, (ERASED, *KEPT))
    assert await stores.residue(ERASED) != []
    features = FeatureHashes(FEATURES, stores.features)
    named: dict[str, SubjectData] = {
        "dedupe": stores.seen,
        "features": features,
        "served_x": stores.served,
    }
    deleted = await erase_subject([ERASED], named)
    assert deleted == {"dedupe": 4, "features": 1, "served_x": 2}  # two ids and fingerprints
    assert await stores.residue(ERASED) == []
    assert await erase_subject([ERASED], named) == {"dedupe": 0, "features": 0, "served_x": 0}

    ids = [f"{e}-{i}" for e in (ERASED, *KEPT) for i in (0, 1)]
    assert sorted(await stores.served.fetch(ids)) == sorted(ids[2:])
    [view] = FeatureStage(FEATURES, stores.features).views
    hashes = await stores.features.load([view.key(e) for e in (ERASED, *KEPT)])
    assert sorted(hashes) == sorted(view.key(e) for e in KEPT)
    # the erased subject's ids are forgotten, the others' remembered
    again = [_claim(e, f"{e}-0", 99) for e in (ERASED, *KEPT)]
    verdicts = await stores.seen.claim(again, RULES)
    assert [v.kind for v in verdicts] == [None, "retry", "retry", "retry"]


async def test_the_index_forgets_ids_whose_x_has_expired(redis_stores: Stores) -> None:
    """On Redis each x expires after its TTL: the index drops the ids older than that, so
    a subject active for years indexes only what is still kept."""
    log, client = redis_stores.served, redis_stores.client
    assert client is not None
    await log.log([("old", X)], 1_000, {}, wall_ms=T0, entities={"c": ["old"]})
    await log.log([("new", X)], 1_000, {}, wall_ms=T0 + 5_000, entities={"c": ["new"]})
    index = f"{redis_stores.namespace}:xi:{{c}}"
    assert await client.zrange(index, 0, -1) == [b"new"]
    assert 0 < await client.pttl(index) <= 1_000


async def test_the_dedupe_index_forgets_keys_that_have_expired(redis_stores: Stores) -> None:
    client = redis_stores.client
    assert client is not None
    short = DedupeRules(window_ms=600_000, id_ttl_ms=200, content_ttl_ms=100)
    await redis_stores.seen.claim([_claim("c", "old", 0)], short)
    index = f"{redis_stores.namespace}:dd:{{c}}:index"
    assert len(await client.zrange(index, 0, -1)) == 2  # the id key and the content key
    await asyncio.sleep(0.3)  # Redis' own clock decides what has expired
    await redis_stores.seen.claim([_claim("c", "new", 1)], short)
    members = cast(list[bytes], await client.zrange(index, 0, -1))
    assert sorted(m.decode().rsplit(":", 1)[-1] for m in members) == ["fp-new", "new"]
    assert 0 < await client.pttl(index) <= 200  # the longest-lived key's TTL
