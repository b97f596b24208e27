"""Holds the clean stage's output against the generator's ground truth (shared by suites)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamproc.core.canonical import keyed_hash
from streamproc.scenario.shop import Truth

AMOUNT_TOLERANCE_EUR = 0.005
EXACT_FIELDS = (
    "source",
    "customer_id",
    "given_name",
    "family_name",
    "country",
    "currency",
    "items",
    "payment_method",
    "app_version",
)


@dataclass
class Report:
    """Everything that differs; an empty `mismatches` and full precision/recall is a pass."""

    mismatches: list[str] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)  # orders missing from the clean output
    unexpected: set[str] = field(default_factory=set)  # clean events that are no order
    duplicate_precision: float = 0.0
    duplicate_recall: float = 0.0
    wrong_reasons: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    first_v5_flagged_at: int | None = None  # 1-based among affected app-v5 events


def compare(
    truth: Iterable[Truth],
    clean: Iterable[Mapping[str, Any]],
    duplicates: Iterable[Mapping[str, Any]],
    rejected_reasons: Mapping[str, str],
    pii_key: bytes,
) -> Report:
    """`rejected_reasons`: event id → reason code of each DLQ record."""
    truth = list(truth)
    clean_by_id = {record["event_id"]: record for record in clean}
    report = Report()
    orders = {t.event_id: t for t in truth if t.kind == "order"}
    report.lost = set(orders) - set(clean_by_id)
    report.unexpected = set(clean_by_id) - set(orders)
    for event_id, order in orders.items():
        if event_id in clean_by_id and order.canonical is not None:
            report.mismatches.extend(_differences(order.canonical, clean_by_id[event_id], pii_key))
    expected = {(t.event_id, t.kind, t.duplicate_of) for t in truth if t.duplicate_of}
    found = {(d["event_id"], d["kind"], d["first_event_id"]) for d in duplicates}
    right = len(expected & found)
    report.duplicate_precision = right / len(found) if found else 1.0
    report.duplicate_recall = right / len(expected) if expected else 1.0
    invalid = {t.event_id: t.reason for t in truth if t.kind == "invalid"}
    for event_id in set(invalid) | set(rejected_reasons):
        got = rejected_reasons.get(event_id, "<not rejected>")
        if invalid.get(event_id) != got:
            report.wrong_reasons[event_id] = (invalid.get(event_id), got)
    report.first_v5_flagged_at = _first_v5_flagged(truth, clean_by_id)
    return report


def _differences(
    truth: Mapping[str, Any], clean: Mapping[str, Any], pii_key: bytes
) -> Iterable[str]:
    yield from _identity_differences(truth, clean, pii_key)
    yield from _measure_differences(truth, clean)


def _identity_differences(
    truth: Mapping[str, Any], clean: Mapping[str, Any], pii_key: bytes
) -> Iterable[str]:
    """The fields copied as they are, the e-mail's pseudonym and the entity it keys."""
    event_id = truth["event_id"]
    for name in EXACT_FIELDS:
        if truth[name] != clean[name]:
            yield f"{event_id} {name}: expected {truth[name]!r}, got {clean[name]!r}"
    email = truth["email_normalized"]
    email_hash = keyed_hash(pii_key, email) if email else None
    if clean["email_hash"] != email_hash:
        yield f"{event_id} email_hash differs"
    entity = truth["customer_id"] or (f"guest:{email_hash}" if email_hash else None)
    if clean["entity_key"] != entity:
        yield f"{event_id} entity_key: expected {entity!r}, got {clean['entity_key']!r}"


def _measure_differences(truth: Mapping[str, Any], clean: Mapping[str, Any]) -> Iterable[str]:
    """The amounts, tax rate, times and session duration, within their tolerances, and the
    quality flags."""
    event_id = truth["event_id"]
    for name in ("amount_gross_eur", "amount_net_eur"):
        if abs(truth[name] - clean[name]) > AMOUNT_TOLERANCE_EUR:
            yield f"{event_id} {name}: expected {truth[name]:.4f}, got {clean[name]:.4f}"
    if not math.isclose(truth["tax_rate"], clean["tax_rate"]):
        yield f"{event_id} tax_rate: expected {truth['tax_rate']}, got {clean['tax_rate']}"
    if truth["occurred_at_ms"] != clean["occurred_at"]:
        yield f"{event_id} occurred_at: {truth['occurred_at_ms']} ≠ {clean['occurred_at']}"
    expected_s, got_s = truth["session_duration_s"], clean["session_duration_s"]
    if (expected_s is None) != (got_s is None) or (
        expected_s is not None and not math.isclose(expected_s, got_s, rel_tol=1e-9)
    ):
        yield f"{event_id} session_duration_s: expected {expected_s}, got {got_s}"
    if clean["session_duration_missing"] != (expected_s is None):
        yield f"{event_id} session_duration_missing is {clean['session_duration_missing']}"
    missing_flags = set(truth["flags"]) - set(clean["quality_flags"])
    if missing_flags:
        yield f"{event_id} quality_flags lack {sorted(missing_flags)}: {clean['quality_flags']}"


def _first_v5_flagged(truth: list[Truth], clean_by_id: Mapping[str, Any]) -> int | None:
    """Among app-v5 orders with a session duration, in arrival order: the first one flagged."""
    affected = [
        t.event_id
        for t in truth
        if t.kind == "order"
        and t.canonical is not None
        and t.canonical["app_version"] == 5
        and t.canonical["session_duration_s"] is not None
    ]
    for position, event_id in enumerate(affected, 1):
        flags = clean_by_id.get(event_id, {}).get("quality_flags", ())
        if "unit_switch_suspected" in flags:
            return position
    return None
