"""The scenario generator: deterministic, shaped like docs/scenario.md, and its truth consistent."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.avro_records import OrderSubmitted, OrderSubmittedV2
from streamproc.config.pipeline import load_pipeline
from streamproc.scenario.shop import (
    RATES_TO_EUR,
    RESUBMISSION_WINDOW_MS,
    TAX_RATES,
    UNLISTED_RATES_TO_EUR,
    UNLISTED_TAX_RATES,
    GeneratorConfig,
    Scenario,
    generate,
    read_truth,
    roc_auc,
    write_scenario,
)
from tests.conftest import REPO

N = 6_000


def _v1(event: OrderSubmitted | OrderSubmittedV2) -> OrderSubmitted:
    """The generator's records are v1, unless a v2_rate is given."""
    assert "items" in event
    return cast(OrderSubmitted, event)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(GeneratorConfig(events=N, seed=11))


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic(
    scenario: Scenario,
) -> None:
    again = generate(GeneratorConfig(events=N, seed=11))
    assert again.events == scenario.events
    assert again.truth == scenario.truth
    assert again.outcomes == scenario.outcomes
    other = generate(GeneratorConfig(events=N, seed=12))
    assert other.events[0]["event_id"] != scenario.events[0]["event_id"]


def test_exactly_the_records_asked_for_each_with_its_truth(scenario: Scenario) -> None:
    assert len(scenario.events) == len(scenario.truth) == N
    assert [e["event_id"] for e in scenario.events] == [t.event_id for t in scenario.truth]


def test_each_source_writes_with_its_own_habits(scenario: Scenario) -> None:
    by_source: dict[str, list[Mapping[str, object]]] = {"web": [], "app": [], "pos": []}
    for event, truth in zip(scenario.events, scenario.truth, strict=True):
        if truth.kind == "order":
            by_source[str(event["source"])].append(event)
    web, app, pos = by_source["web"], by_source["app"], by_source["pos"]
    assert all(isinstance(e["occurred_at"], int) and e["occurred_at"] > 10**12 for e in web)
    assert all(isinstance(e["occurred_at"], int) and e["occurred_at"] < 10**10 for e in app)
    assert all(isinstance(e["occurred_at"], str) for e in pos)
    assert all(e["amount_includes_tax"] is True and e["tax_rate"] is None for e in web)
    assert all(e["amount_includes_tax"] is None and e["tax_rate"] is not None for e in app)
    assert all(e["amount_includes_tax"] is False and e["email"] is None for e in pos)
    assert {e["currency"] for e in app} == {"EUR", "USD"}
    assert all("," in str(e["customer_name"]) for e in pos)
    assert {e["app_version"] for e in app} == {4, 5}
    assert any(e["email"] != str(e["email"]).strip().lower() for e in web if e["email"])


def test_rates_and_shares_are_near_the_configured_ones(scenario: Scenario) -> None:
    kinds = Counter(t.kind for t in scenario.truth)
    sources = Counter(
        e["source"]
        for e, t in zip(scenario.events, scenario.truth, strict=True)
        if t.kind == "order"
    )
    assert 0.5 * 0.02 < kinds["retry"] / sources["app"] < 2 * 0.02
    assert 0.5 * 0.03 < kinds["resubmission"] / sources["web"] < 2 * 0.03
    unknown_to_the_shop = sum(
        1
        for e, t in zip(scenario.events, scenario.truth, strict=True)
        if t.reason == "unknown_tax_rate" or e["currency"] in UNLISTED_RATES_TO_EUR
    )
    assert 0.5 * 0.005 < (kinds["invalid"] - unknown_to_the_shop) / N < 2 * 0.005
    guests = sum(1 for e in scenario.events if e["source"] == "web" and e["customer_id"] is None)
    assert 0.5 * 0.15 < guests / sources["web"] < 2 * 0.15


def test_duplicates_follow_what_they_duplicate(scenario: Scenario) -> None:
    position = {t.event_id: i for i, t in enumerate(scenario.truth) if t.kind == "order"}
    for i, (event, truth) in enumerate(zip(scenario.events, scenario.truth, strict=True)):
        if truth.duplicate_of is None:
            continue
        first = scenario.events[position[truth.duplicate_of]]
        assert position[truth.duplicate_of] < i
        if truth.kind == "retry":
            assert event == first
        else:
            assert event["event_id"] != first["event_id"]
            assert (event["amount"], _v1(event)["items"]) == (first["amount"], _v1(first)["items"])
            assert (event["customer_id"], event["email"]) == (first["customer_id"], first["email"])
            gap = int(event["occurred_at"]) - int(first["occurred_at"])
            assert 0 < gap <= RESUBMISSION_WINDOW_MS


def test_invalid_records_say_why(scenario: Scenario) -> None:
    reasons = Counter(t.reason for t in scenario.truth if t.kind == "invalid")
    assert set(reasons) <= {
        "invalid_amount",
        "invalid_items",
        "unknown_currency",
        "unknown_timezone",
        "invalid_time",
        "unknown_tax_rate",
        "invalid_duration",
        "invalid_tax_rate",
        "text_too_long",
    }
    assert len(reasons) >= 3


def test_tills_that_missed_the_clock_change_write_times_in_the_gap() -> None:
    scenario = generate(GeneratorConfig(events=20_000, seed=7))
    gap = [t for t in scenario.truth if t.canonical and "tz_gap" in t.canonical["flags"]]
    assert gap
    berlin = ZoneInfo("Europe/Berlin")
    for truth in gap:
        event = scenario.events[scenario.truth.index(truth)]
        wall = datetime.fromisoformat(str(event["occurred_at"])).replace(tzinfo=berlin)
        assert wall.replace(fold=0).utcoffset() != wall.replace(fold=1).utcoffset()


def test_the_pipeline_declaration_knows_the_shops_rates_and_nothing_unlisted() -> None:
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    assert spec.money.tax_rates == TAX_RATES
    assert spec.money.rates_to_eur == RATES_TO_EUR
    assert not set(UNLISTED_TAX_RATES) & set(spec.money.tax_rates)
    assert not set(UNLISTED_RATES_TO_EUR) & set(spec.money.rates_to_eur)


def test_the_declaration_covers_europe() -> None:
    eu = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE"
    spec = load_pipeline(REPO / "pipelines/shop_orders.yaml")
    assert set(eu.split()) | {"IS", "LI", "NO", "GB", "CH"} == set(spec.money.tax_rates)
    for currency in ["EUR", "USD", "GBP", "CHF", "SEK", "DKK", "NOK", "PLN", "CZK", "HUF"]:
        assert currency in spec.money.rates_to_eur


def test_traffic_reaches_past_what_the_declaration_knows() -> None:
    scenario = generate(GeneratorConfig(events=20_000, seed=7))
    countries = {t.canonical["country"] for t in scenario.truth if t.canonical}
    currencies = {e["currency"] for e in scenario.events}
    reasons = Counter(t.reason for t in scenario.truth if t.kind == "invalid")
    assert len(countries) >= 25  # most of Europe, and app orders shipped further
    assert countries & set(UNLISTED_TAX_RATES)  # the app states the rate: clean
    assert {"GBP", "CHF", "SEK", "PLN", "HUF"} <= currencies
    assert currencies & set(UNLISTED_RATES_TO_EUR)
    assert reasons["unknown_tax_rate"] >= 5 and reasons["unknown_currency"] >= 5


def test_fraud_follows_the_true_probabilities(scenario: Scenario) -> None:
    orders = [t for t in scenario.truth if t.kind == "order"]
    probabilities = [t.fraud_probability or 0.0 for t in orders]
    frauds = sum(bool(t.is_fraud) for t in orders)
    assert abs(frauds - sum(probabilities)) < 4 * sum(probabilities) ** 0.5
    assert 0.7 < scenario.bayes_auc < 0.95


def test_labels_come_after_their_orders_and_some_never(scenario: Scenario) -> None:
    orders = {t.event_id: t for t in scenario.truth if t.kind == "order"}
    assert 0.9 * len(orders) < len(scenario.outcomes) < len(orders)
    for outcome in scenario.outcomes:
        order = orders[outcome["event_id"]]
        assert order.canonical is not None
        assert outcome["occurred_at"] > order.canonical["occurred_at_ms"]
        assert outcome["is_fraud"] == order.is_fraud


def test_written_files_read_back(scenario: Scenario, tmp_path: Path) -> None:
    events, truth, outcomes = write_scenario(scenario, tmp_path / "orders.jsonl")
    assert [json.loads(line) for line in events.read_text().splitlines()] == scenario.events
    assert read_truth(truth) == scenario.truth
    assert len(outcomes.read_text().splitlines()) == len(scenario.outcomes)


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=40))
def test_roc_auc_is_the_share_of_positive_negative_pairs_ranked_right(
    pairs: list[tuple[int, bool]],
) -> None:
    scores = [float(score) for score, _ in pairs]
    labels = [label for _, label in pairs]
    positives = [s for s, label in zip(scores, labels, strict=True) if label]
    negatives = [s for s, label in zip(scores, labels, strict=True) if not label]
    if not positives or not negatives:
        return
    wins = sum(
        1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)
    )
    assert roc_auc(scores, labels) == pytest.approx(wins / (len(positives) * len(negatives)))


def test_roc_auc_of_a_perfect_and_a_random_ranking() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    rng = random.Random(1)
    labels = [rng.random() < 0.3 for _ in range(20_000)]
    assert abs(roc_auc([rng.random() for _ in labels], labels) - 0.5) < 0.02


def test_a_share_of_v2_producers_changes_nothing_but_the_shape(scenario: Scenario) -> None:
    mixed = generate(GeneratorConfig(events=N, seed=11, v2_rate=0.3))
    assert mixed.truth == scenario.truth and mixed.outcomes == scenario.outcomes
    v2 = [e for e in mixed.events if "item_count" in e]
    assert 0.25 < len(v2) / N < 0.35
    assert any(e.get("coupon_code") for e in v2)
    for before, after in zip(scenario.events, mixed.events, strict=True):
        if "item_count" in after:
            assert "amount_includes_tax" not in after
            unchanged = {
                k: v for k, v in before.items() if k not in {"items", "amount_includes_tax"}
            }
            assert {**unchanged, "item_count": _v1(before)["items"]} == {
                k: v for k, v in after.items() if k != "coupon_code"
            }
        else:
            assert after == before
    assert generate(GeneratorConfig(events=N, seed=11, v2_rate=0.3)).events == mixed.events
