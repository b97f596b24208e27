"""Scenario: the shop-orders scenario's raw traffic, and its ground truth (docs/scenario.md).

Deterministic for a seed. Three steps: plan the orders people mean to place (times, amounts,
countries, bursts: `plan`), work out each order's canonical values and true fraud probability
in event time and render what each source would publish, with its retries, resubmitted forms,
NULLs and broken records (`render`), then draw the labels (`outcomes`). `world` holds the facts
the reference declaration must match; `truth` what each record really is; `files` the JSON
lines. The truth is the generator's own knowledge, never the clean stage's output.
"""

from __future__ import annotations

import random

from streamproc.scenario.shop.config import GeneratorConfig
from streamproc.scenario.shop.files import read_truth, write_scenario
from streamproc.scenario.shop.outcomes import draw_outcomes
from streamproc.scenario.shop.plan import draw_people, plan_orders
from streamproc.scenario.shop.render import producer_key, render_records, upgrade_some
from streamproc.scenario.shop.truth import Kind, Scenario, Truth, fraud_probability, roc_auc
from streamproc.scenario.shop.world import (
    HOME_COUNTRY,
    HOUR_MS,
    MINUTE_MS,
    RATES_TO_EUR,
    RESUBMISSION_WINDOW_MS,
    TAX_RATES,
    TILL_ZONE,
    UNLISTED_RATES_TO_EUR,
    UNLISTED_TAX_RATES,
)

__all__ = [
    "HOME_COUNTRY",
    "HOUR_MS",
    "MINUTE_MS",
    "RATES_TO_EUR",
    "RESUBMISSION_WINDOW_MS",
    "TAX_RATES",
    "TILL_ZONE",
    "UNLISTED_RATES_TO_EUR",
    "UNLISTED_TAX_RATES",
    "GeneratorConfig",
    "Kind",
    "Scenario",
    "Truth",
    "fraud_probability",
    "generate",
    "producer_key",
    "read_truth",
    "roc_auc",
    "write_scenario",
]


def generate(config: GeneratorConfig) -> Scenario:
    rng = random.Random(config.seed)  # noqa: S311 (test data, not secrets)
    people = draw_people(rng, config)
    intents = plan_orders(rng, config, people)
    records = render_records(rng, config, intents)
    records.sort(key=lambda r: (r.arrival_ms, r.sequence))
    records = records[: config.events]
    truth = [r.truth for r in records]
    outcomes = draw_outcomes(rng, records)
    orders = [t for t in truth if t.kind == "order"]
    auc = roc_auc([t.fraud_probability or 0.0 for t in orders], [bool(t.is_fraud) for t in orders])
    upgrades = random.Random(f"{config.seed}/v2")  # noqa: S311 - apart from `rng`'s draws
    events = upgrade_some([r.event for r in records], config.v2_rate, upgrades)
    return Scenario(events, truth, outcomes, auc)
