"""Online features: semantics on small cases, and equality with a plain recomputation on
generated traffic arriving out of order."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from streamproc.adapters.memory import InMemoryFeatureStore
from streamproc.config.pipeline import Features, PipelineSpec, load_pipeline
from streamproc.core.features.reader import FeatureReader
from streamproc.core.features.stage import FeatureStage
from streamproc.core.features.state import FeatureEvent, OffsetConflict
from streamproc.scenario.shop import GeneratorConfig, generate
from tests.conftest import REPO
from tests.features_reference import events_from_truth, recompute, same

MINUTE = 60_000
T0 = 1_774_656_000_000  # a bucket boundary for every declared bucket size


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


def _event(offset: int, at: int, amount: float | None = 10.0, **values: object) -> FeatureEvent:
    record = {"amount_gross_eur": amount, "country": "DE", **values}
    return FeatureEvent("c1", 0, offset, at, record, f"e{offset}")


async def _serve(features: Features, events: list[FeatureEvent]) -> list[dict[str, object]]:
    stage = FeatureStage(features, InMemoryFeatureStore())
    batch = await stage.process(events, wall_ms=0)
    return [{n: v.value for n, v in s.features.items()} for s in batch.served]


async def test_each_event_is_served_the_state_just_before_it(spec: PipelineSpec) -> None:
    events = [_event(0, T0, 10.0), _event(1, T0 + MINUTE, 30.0), _event(2, T0 + 2 * MINUTE, 5.0)]
    vectors = await _serve(spec.features, events)
    assert [v["amount_count_1h"] for v in vectors] == [0, 1, 2]
    assert vectors[0]["amount_mean_1h"] is None
    assert vectors[2]["amount_mean_1h"] == 20.0
    assert vectors[2]["amount_stddev_1h"] == 10.0
    assert (vectors[2]["amount_min_24h"], vectors[2]["amount_max_24h"]) == (10.0, 30.0)
    assert vectors[1]["seconds_since_last"] == 60.0
    assert vectors[2]["amount_vs_mean_7d"] == 5.0 / 20.0


async def test_windows_slide_over_whole_buckets(spec: PipelineSpec) -> None:
    # 1h over 5-minute buckets: at 61 min the bucket of minute 0 has left the window
    events = [_event(0, T0, 10.0), _event(1, T0 + 59 * MINUTE), _event(2, T0 + 61 * MINUTE)]
    vectors = await _serve(spec.features, events)
    assert vectors[1]["amount_count_1h"] == 1
    assert vectors[2]["amount_count_1h"] == 1  # minute 59 only
    assert vectors[2]["amount_count_24h"] == 2


async def test_missing_values_are_not_zeros(spec: PipelineSpec) -> None:
    events = [_event(0, T0, None), _event(1, T0 + MINUTE, 10.0)]
    stage = FeatureStage(spec.features, InMemoryFeatureStore())
    served = (await stage.process(events, wall_ms=0)).served
    assert served[1].features["amount_count_1h"].value == 0
    assert served[1].features["amount_mean_1h"].status == "missing"
    assert served[1].features["seconds_since_last"].status == "fresh"
    assert served[0].features["seconds_since_last"].status == "missing"


async def test_usual_and_distinct_values(spec: PipelineSpec) -> None:
    countries = ["DE", "FR", "DE", "AT"]
    events = [_event(i, T0 + i * MINUTE, country=c) for i, c in enumerate(countries)]
    vectors = await _serve(spec.features, [*events, _event(9, T0 + 9 * MINUTE)])
    assert vectors[-1]["usual_country"] == "DE"
    assert vectors[-1]["countries"] == 3
    assert vectors[2]["usual_country"] == "DE"  # a tie (DE, FR) goes to the first by name


async def test_age_and_staleness_follow_the_views_timestamp(spec: PipelineSpec) -> None:
    nine_days = 9 * 24 * 60 * MINUTE
    stage = FeatureStage(spec.features, InMemoryFeatureStore())
    served = (await stage.process([_event(0, T0), _event(1, T0 + nine_days)], 0)).served
    feature = served[1].features["usual_country"]
    assert (feature.status, feature.age_ms) == ("stale", nine_days)


async def test_a_replayed_batch_changes_nothing(spec: PipelineSpec) -> None:
    store = InMemoryFeatureStore()
    stage = FeatureStage(spec.features, store)
    events = [_event(i, T0 + i * MINUTE, 10.0 + i) for i in range(20)]
    await stage.process(events, wall_ms=1)
    before = {key: dict(fields) for key, fields in store.hashes.items()}
    replay = await stage.process(events, wall_ms=2)
    assert store.hashes == before
    assert (replay.replayed, replay.writes) == (20, 0)


async def test_late_events_are_counted_and_applied_or_diverted(spec: PipelineSpec) -> None:
    # the second is 3 h behind the first, and lateness is 1 h
    events = [_event(0, T0 + 3 * 60 * MINUTE), _event(1, T0), _event(2, T0 + 181 * MINUTE)]
    applied = await FeatureStage(spec.features, InMemoryFeatureStore()).process(events, 0)
    assert applied.late == 1
    assert applied.served[2].features["amount_count_24h"].value == 2
    divert = spec.features.model_copy(update={"late": "divert"})
    diverted = await FeatureStage(divert, InMemoryFeatureStore()).process(events, 0)
    assert diverted.late == 1
    assert diverted.served[2].features["amount_count_24h"].value == 1


async def test_a_write_from_a_stale_read_is_refused(spec: PipelineSpec) -> None:
    store = InMemoryFeatureStore()
    stage = FeatureStage(spec.features, store)
    await stage.process([_event(0, T0)], 0)
    stale = await store.load(sorted(store.hashes))
    await stage.process([_event(1, T0 + MINUTE)], 0)  # someone else moved the mark
    store_before = dict(store.hashes)

    class Replaying(InMemoryFeatureStore):
        async def load(self, keys: object) -> dict[str, dict[str, str]]:
            return stale

    zombie = Replaying()
    zombie.hashes = store.hashes
    with pytest.raises(OffsetConflict):
        await FeatureStage(spec.features, zombie).process([_event(2, T0 + 2 * MINUTE)], 0)
    assert store.hashes == store_before


async def test_online_features_equal_a_plain_recomputation_out_of_order(
    spec: PipelineSpec,
) -> None:
    scenario = generate(GeneratorConfig(events=12_000, seed=31))
    events = events_from_truth(scenario.truth)
    rng = random.Random(5)  # arrival up to 30 minutes off event time: out of order, not late
    events.sort(key=lambda e: e.occurred_at_ms + rng.randrange(30 * MINUTE))
    events = [
        FeatureEvent(e.entity, 0, offset, e.occurred_at_ms, e.values, e.event_id)
        for offset, e in enumerate(events)
    ]
    assert len(events) >= 10_000
    stage = FeatureStage(spec.features, InMemoryFeatureStore())
    served = []
    for start in range(0, len(events), 500):
        batch = await stage.process(events[start : start + 500], wall_ms=0)
        assert batch.late == 0
        served.extend(batch.served)
    [view] = spec.features.views
    expected = recompute(view, events)
    wrong = [
        (s.event.offset, name, want, s.features[name].value)
        for s, vector in zip(served, expected, strict=True)
        for name, want in vector.items()
        if not same(want, s.features[name].value)
    ]
    assert wrong == []
    assert sum(1 for s in served if s.features["amount_count_1h"].value >= 2) > 20


async def test_an_event_sent_twice_counts_once(spec: PipelineSpec) -> None:
    # the clean stage re-sends its output after a crash: the same source position again
    first = _event(0, T0, 10.0)
    stage = FeatureStage(spec.features, InMemoryFeatureStore())
    batch = await stage.process([first, _event(1, T0), first, _event(2, T0 + MINUTE)], 0)
    assert batch.replayed == 1
    assert batch.served[3].features["amount_count_1h"].value == 2


class CountingStore(InMemoryFeatureStore):
    """Counts round trips: one load per get_many, whatever the number of entities."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, str]]:
        self.loads += 1
        return await super().load(keys)


async def test_the_read_path_reads_many_entities_in_one_round_trip(spec: PipelineSpec) -> None:
    store = CountingStore()
    events = [
        FeatureEvent(f"c{i % 3}", 0, i, T0 + i * MINUTE, {"amount_gross_eur": 1.0 + i}, f"e{i}")
        for i in range(9)
    ]
    await FeatureStage(spec.features, store).process(events, wall_ms=1_000)
    store.loads = 0
    reader = FeatureReader(spec.features, store)
    vectors = await reader.get_many(["c0", "c1", "c2", "nobody"], wall_ms=2_000)
    assert store.loads == 1
    assert vectors["c0"]["amount_count_24h"].value == 3  # at its newest event, inclusive
    assert vectors["c0"]["amount_count_24h"].age_ms == 0
    assert vectors["nobody"]["amount_mean_24h"].status == "missing"
    at_later = await reader.get("c0", wall_ms=2_000, at_ms=T0 + 26 * 60 * MINUTE)
    assert at_later["amount_count_24h"].value == 0  # the window has moved past them


async def test_the_ttl_is_enforced_at_read_time_by_the_last_write(spec: PipelineSpec) -> None:
    store = InMemoryFeatureStore()
    await FeatureStage(spec.features, store).process([_event(0, T0)], wall_ms=0)
    reader = FeatureReader(spec.features, store)
    eight_days = 8 * 24 * 60 * MINUTE
    fresh = await reader.get("c1", wall_ms=eight_days)
    stale = await reader.get("c1", wall_ms=eight_days + 1)
    assert fresh["usual_country"].status == "fresh"
    assert (stale["usual_country"].status, stale["usual_country"].value) == ("stale", "DE")


@pytest.mark.parametrize(("cache_size", "loads"), [(20_000, 1), (0, 3)])
async def test_without_a_cache_every_batch_reads_its_entities_and_serves_the_same(
    spec: PipelineSpec, cache_size: int, loads: int
) -> None:
    store = CountingStore()
    stage = FeatureStage(spec.features, store, cache_size)
    counts = []
    for start in (0, 2, 4):
        batch = await stage.process([_event(i, T0 + i * MINUTE) for i in (start, start + 1)], 0)
        counts += [s.features["amount_count_1h"].value for s in batch.served]
    assert counts == [0, 1, 2, 3, 4, 5]
    assert store.loads == loads


async def test_a_stale_cache_is_caught_by_the_guard_and_the_batch_recomputed(
    spec: PipelineSpec,
) -> None:
    """After a rebalance another worker wrote the entity; this one's cached state is old."""
    store = InMemoryFeatureStore()
    here, there = FeatureStage(spec.features, store), FeatureStage(spec.features, store)
    await here.process([_event(i, T0 + i * MINUTE) for i in range(3)], 0)
    await there.process([_event(i, T0 + i * MINUTE) for i in range(3, 6)], 0)
    batch = await here.process([_event(6, T0 + 6 * MINUTE)], 0)
    assert batch.served[0].features["amount_count_1h"].value == 6
    replay = await there.process([_event(6, T0 + 6 * MINUTE)], 0)  # its cache is old too
    assert (replay.replayed, replay.writes) == (1, 0)


async def test_a_stage_serves_only_what_is_consumed_with_the_same_values(
    spec: PipelineSpec,
) -> None:
    """The worker serves what x is built from; a ratio still divides by its mean, served or
    not, and since_last always comes (it carries the features' age)."""
    assert spec.models is not None
    consumed = spec.models.inputs.names()
    rng = random.Random(3)
    events = [
        _event(i, T0 + i * MINUTE, rng.uniform(5, 50), country=rng.choice(["DE", "FR"]))
        for i in range(40)
    ]
    full = FeatureStage(spec.features, InMemoryFeatureStore())
    lean = FeatureStage(spec.features, InMemoryFeatureStore(), serve=consumed)
    everything = (await full.process(events, wall_ms=0)).served
    served = (await lean.process(events, wall_ms=0)).served
    [view] = spec.features.views
    expected = (consumed & set(view.feature_names())) | {view.since_last}
    assert "amount_vs_mean_7d" in expected and "amount_mean_7d" not in expected
    for whole, part in zip(everything, served, strict=True):
        assert set(part.features) == expected
        assert part.features == {name: whole.features[name] for name in expected}
