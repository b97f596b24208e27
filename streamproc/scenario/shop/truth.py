"""Scenario: the ground truth: what each raw record really is, the true fraud model, and the
best ROC AUC any model can reach on it. The generator's own knowledge, never the clean stage's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from streamproc.avro_records import OrderOutcome, OrderSubmitted, OrderSubmittedV2

Kind = Literal["order", "retry", "resubmission", "invalid"]


@dataclass(frozen=True, slots=True)
class Truth:
    """What one raw record really is."""

    event_id: str
    kind: Kind
    duplicate_of: str | None = None
    reason: str | None = None  # the reject reason the clean stage must give an invalid record
    canonical: dict[str, Any] | None = None  # orders only: the clean values, unrounded
    fraud_probability: float | None = None
    is_fraud: bool | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    """The generated traffic: raw records, their ground truth and their labels."""

    events: list[OrderSubmitted | OrderSubmittedV2]  # raw records in arrival order
    truth: list[Truth]  # one per raw record, same order
    outcomes: list[OrderOutcome]  # labels, in the order they arrive
    bayes_auc: float  # ROC AUC of the true probabilities: the best any model can reach


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    ranked = sorted(zip(scores, labels, strict=True), key=lambda pair: pair[0])
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return float("nan")
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + j + 1) / 2  # ranks are 1-based
        rank_sum += average_rank * sum(1 for _, label in ranked[i:j] if label)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def fraud_probability(
    recent_orders: int, amount_ratio: float, foreign: bool, guest: bool, session_s: float | None
) -> float:
    """The scenario's true model: only facts the online features can capture."""
    score = (
        -4.0
        + 1.4 * (recent_orders >= 2)
        + 1.1 * max(0.0, math.log(amount_ratio))
        + 1.5 * foreign
        + 0.8 * guest
        + 1.3 * (session_s is not None and session_s < 10)
    )
    return 1 / (1 + math.exp(-score))
