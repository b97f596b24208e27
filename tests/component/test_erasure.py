"""Erasure through the stages with in-memory stores: `erase` records the subject and sweeps
every store, a worker's follower learns it, and neither new orders nor a replay of old ones
keep anything under the subject's id again."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.adapters.kafka.erasures import ErasureTopic
from streamproc.adapters.memory import (
    InMemoryFeatureStore,
    InMemorySeenStore,
    InMemoryServedLog,
    InMemoryUnitStatsStore,
)
from streamproc.adapters.metrics import StageMetrics
from streamproc.config.pipeline import load_pipeline
from streamproc.core.erasure import ERASED_FLAG, Erasures, FeatureHashes, SubjectData
from streamproc.core.features.stage import FeatureStage
from streamproc.records import Envelope, OutRecord
from streamproc.stages.clean import CleanStage
from streamproc.stages.feature_step import FeatureStep
from streamproc.stages.predict import PredictStep
from streamproc.stages.scored import ScoredChain
from streamproc.tools.erase import erase
from streamproc.worker.erasures import ErasureFollower
from tests.builders import ORDER_SUBMITTED, order
from tests.conftest import REPO
from tests.fakes import MemorySnapshotTopic

SPEC = load_pipeline(REPO / "pipelines/shop_orders.yaml")
KEY = b"component-pii-key"
T0 = 1_774_746_000_000


@dataclass
class Deployment:
    """A worker's stages over in-memory stores, consulting one erased set."""

    serde: AvroSerde
    erased: set[str] = field(default_factory=set)
    seen: InMemorySeenStore = field(default_factory=InMemorySeenStore)
    features: InMemoryFeatureStore = field(default_factory=InMemoryFeatureStore)
    served: InMemoryServedLog = field(default_factory=InMemoryServedLog)

    def __post_init__(self) -> None:
        erasures = Erasures(KEY, self.erased)
        units = InMemoryUnitStatsStore()
        self.clean = CleanStage(SPEC, self.serde, self.seen, units, KEY, erasures=erasures)
        assert SPEC.models is not None
        step = FeatureStep.of_clean_orders(
            SPEC, self.serde, FeatureStage(SPEC.features, self.features), erasures
        )
        self.chain = ScoredChain(step, PredictStep(SPEC.models, self.serde), self.served)

    def stores(self) -> dict[str, SubjectData]:
        features = FeatureHashes(SPEC.features, self.features)
        return {"features": features, "dedupe": self.seen, "served_x": self.served}

    async def run(self, raw: list[Envelope]) -> tuple[list[Envelope], list[Envelope]]:
        """The clean records and the duplicate audit records of `raw`, then scored."""
        cleaned = await self.clean.process(raw)
        clean = [_as_read(out, i) for i, out in enumerate(cleaned.clean)]
        await self.chain.process(clean)
        return clean, [_as_read(out, i) for i, out in enumerate(cleaned.duplicates)]


def _as_read(out: OutRecord, offset: int) -> Envelope:
    return Envelope(out.topic, 0, offset, out.key, out.value, (), 1_000)


def _raw(serde: AvroSerde, orders: list[dict[str, object]], first: int = 0) -> list[Envelope]:
    topic = SPEC.source.topic
    return [
        Envelope(topic, 0, first + i, b"k", serde.encode(topic, ORDER_SUBMITTED, o), (), 1_000)
        for i, o in enumerate(orders)
    ]


def _orders(customer: str, count: int, start: int = 0) -> list[dict[str, object]]:
    return [
        order(
            event_id=f"{customer}-{i}",
            customer_id=customer,
            items=i + 1,  # no two alike: none a resubmission of another
            occurred_at=T0 + i * 60_000,
        )
        for i in range(start, start + count)
    ]


async def _kept_for(deployment: Deployment, entity: str) -> list[str]:
    """Every feature hash, dedupe entry and served x of `entity` left in the stores (the
    dedupe memory's entries counted by what an erasure of a copy finds)."""
    tag = f"{{{entity}}}"
    kept = [key for key in deployment.features.hashes if key.endswith(tag)]
    kept += ["dedupe"] * await copy.deepcopy(deployment.seen).erase(entity)
    indexed = deployment.served.index.get(entity, set())
    return kept + [f"x:{event_id}" for event_id in indexed if event_id in deployment.served.x]


async def test_an_erased_customer_leaves_nothing_and_a_replay_brings_nothing_back(
    serde: AvroSerde,
) -> None:
    worker = Deployment(serde)
    before = _raw(serde, [*_orders("C-1", 4), *_orders("C-2", 3)])
    clean_before, _ = await worker.run(before)
    assert await _kept_for(worker, "C-1")
    assert await _kept_for(worker, "C-2")

    topic = MemorySnapshotTopic()
    report = await erase("C-1", KEY, ErasureTopic(topic), worker.stores(), settle_s=0)
    assert await _kept_for(worker, "C-1") == []
    assert [eid for eid in worker.served.x if eid.startswith("C-1-")] == []
    assert report.deleted["served_x"] == 4
    assert report.deleted["features"] == 1 and report.deleted["dedupe"] > 0
    assert await _kept_for(worker, "C-2") != []  # the others' data stays
    assert [key for key, _ in topic.log] == [report.pseudonym]  # the id is not on the topic

    follower = ErasureFollower(ErasureTopic(topic), worker.erased, StageMetrics())
    await follower.poll()
    assert worker.erased == {report.pseudonym}

    # a new order of the erased customer: kept under the pseudonym, without name or e-mail
    [later], _ = await worker.run(_raw(serde, _orders("C-1", 1, start=9), first=100))
    clean = serde.decode(later.value)
    assert clean["entity_key"] == clean["customer_id"] == report.pseudonym
    assert later.key == report.pseudonym.encode()
    assert (clean["given_name"], clean["email_hash"]) == (None, None)
    assert ERASED_FLAG in clean["quality_flags"]
    assert await _kept_for(worker, report.pseudonym) != []

    # the raw log replayed: pseudonymised again; the old clean records replayed: dropped
    await worker.run(before)
    outcome = await worker.chain.process(clean_before)
    assert outcome.step.erased == 4
    assert await _kept_for(worker, "C-1") == []
    predicted = [serde.decode(p.value)["entity_key"] for p in outcome.predictions]
    assert "C-1" not in predicted and "C-2" in predicted


async def test_an_erased_subjects_duplicate_is_audited_under_its_pseudonym(
    serde: AvroSerde,
) -> None:
    worker = Deployment(serde)
    pseudonym = Erasures(KEY, set()).pseudonym("C-1")
    worker.erased.add(pseudonym)
    again = order(event_id="same", customer_id="C-1")
    _, duplicates = await worker.run(_raw(serde, [again, again]))
    assert [d.key for d in duplicates] == [pseudonym.encode()]  # not the producer's key
    assert serde.decode(duplicates[0].value)["entity_key"] == pseudonym


async def test_an_erased_guest_is_found_by_the_e_mail(serde: AvroSerde) -> None:
    worker = Deployment(serde)
    guest = [order(customer_id=None, email="Grace@Example.org", event_id="g-1")]
    [clean], _ = await worker.run(_raw(serde, guest))
    entity = serde.decode(clean.value)["entity_key"]
    assert await _kept_for(worker, entity)
    topic = ErasureTopic(MemorySnapshotTopic())
    await erase(entity, KEY, topic, worker.stores(), settle_s=0)
    assert worker.features.hashes == {} and worker.served.x == {}


async def test_a_worker_is_ready_once_it_has_read_every_erasure_and_follows_new_ones() -> None:
    topic = MemorySnapshotTopic()
    topic.publish("erased:old", b"{}")
    topic.publish("streamproc-other-key", b"{}")  # not an erasure: skipped
    erased: set[str] = set()
    metrics = StageMetrics()
    follower = ErasureFollower(ErasureTopic(topic), erased, metrics)
    following = asyncio.create_task(follower.follow(interval_s=0.01))
    await asyncio.wait_for(follower.ready.wait(), timeout=5)
    assert erased == {"erased:old"}
    topic.publish("erased:new", b"{}")
    for _ in range(500):
        if "erased:new" in erased:
            break
        await asyncio.sleep(0.01)
    assert erased == {"erased:old", "erased:new"}
    assert metrics.registry.get_sample_value("streamproc_erased_subjects") == 2
    following.cancel()
    await asyncio.gather(following, return_exceptions=True)
    assert not topic.open  # the consumer is closed when the worker stops
