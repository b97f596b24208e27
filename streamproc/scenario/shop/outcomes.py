"""Scenario: the labels: whether an order was fraud, arriving minutes to days after it."""

from __future__ import annotations

import math
import random

from streamproc.avro_records import OrderOutcome
from streamproc.scenario.shop.render import Record
from streamproc.scenario.shop.world import HOUR_MS, MINUTE_MS


def draw_outcomes(rng: random.Random, records: list[Record]) -> list[OrderOutcome]:
    """A label per order, minutes to days later; one in twenty never comes."""
    outcomes: list[OrderOutcome] = []
    for record in records:
        truth = record.truth
        if truth.kind != "order" or rng.random() < 0.05 or truth.canonical is None:
            continue
        if truth.is_fraud is None:  # an order's truth always knows it
            continue
        delay = min(rng.lognormvariate(math.log(6 * HOUR_MS), 1.5), 7 * 24 * HOUR_MS)
        outcomes.append(
            {
                "event_id": truth.event_id,
                "is_fraud": truth.is_fraud,
                "occurred_at": truth.canonical["occurred_at_ms"] + max(MINUTE_MS, int(delay)),
            }
        )
    outcomes.sort(key=lambda o: o["occurred_at"])
    return outcomes
