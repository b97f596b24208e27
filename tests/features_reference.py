"""A plain recomputation of the declared features, for holding the online ones against.

No buckets kept, no state, no cleverness: for each event, look at every earlier event of its
entity and compute each feature from the list. Slow and obviously right.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from streamproc.config.base import duration_ms
from streamproc.config.pipeline import FeatureView
from streamproc.core.canonical import keyed_hash
from streamproc.core.features.state import FeatureEvent
from streamproc.scenario.shop import Truth


def recompute(view: FeatureView, events: Sequence[FeatureEvent]) -> list[dict[str, Any]]:
    """For each event in arrival order: its features from the entity's earlier events."""
    history: dict[str, list[FeatureEvent]] = defaultdict(list)
    vectors = []
    for event in events:
        vectors.append(features_at(view, history[event.entity], event.occurred_at_ms, event.values))
        history[event.entity].append(event)
    return vectors


def features_at(
    view: FeatureView, earlier: Sequence[FeatureEvent], at_ms: int, values: dict[str, Any] | Any
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, aggregate in view.aggregates.items():
        for window, bucket in view.windows.items():
            size, buckets = duration_ms(bucket), duration_ms(window) // duration_ms(bucket)
            last = at_ms // size
            xs = [
                float(e.values[aggregate.field])
                for e in earlier
                if last - buckets < e.occurred_at_ms // size <= last
                and isinstance(e.values.get(aggregate.field), int | float)
            ]
            for op in aggregate.ops:
                out[f"{name}_{op}_{window}"] = _op(op, xs)
    newest = max((e.occurred_at_ms for e in earlier), default=None)
    out[view.since_last] = None if newest is None else max(0, at_ms - newest) / 1000
    for name, source in view.last.items():
        # the newest event's value; of equally new ones, the one that arrived last
        latest = [e for e in earlier if e.occurred_at_ms == newest]
        out[name] = latest[-1].values.get(source) if latest else None
    for name, source in view.most_frequent.items():
        counts = Counter(str(e.values[source]) for e in earlier if e.values.get(source) is not None)
        out[name] = min(counts, key=lambda v: (-counts[v], v)) if counts else None
    for name, source in view.distinct.items():
        seen = {str(e.values[source]) for e in earlier if e.values.get(source) is not None}
        out[name] = min(len(seen), view.max_distinct)
    for name, (source, against) in view.ratios.items():
        numerator, denominator = values.get(source), out[against]
        out[name] = (
            float(numerator) / denominator if numerator is not None and denominator else None
        )
    return out


def _op(op: str, xs: list[float]) -> Any:
    if op == "count":
        return len(xs)
    if op == "sum":
        return math.fsum(xs)
    if not xs:
        return None
    mean = math.fsum(xs) / len(xs)
    return {
        "mean": mean,
        "min": min(xs),
        "max": max(xs),
        "stddev": math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / len(xs)),
    }[op]


def events_from_truth(truth: Sequence[Truth], pii_key: bytes = b"") -> list[FeatureEvent]:
    """The clean orders of a generated scenario as the feature stage sees them, by entity
    (guests by the keyed hash of their e-mail, as the clean stage keys them)."""
    events = []
    for offset, order in enumerate(t for t in truth if t.kind == "order"):
        canonical = order.canonical or {}
        email = canonical.get("email_normalized")
        guest = f"guest:{keyed_hash(pii_key, email)}" if email else None
        entity = canonical.get("customer_id") or guest
        if entity is None:
            continue
        values = {
            "amount_gross_eur": canonical["amount_gross_eur"],
            "session_duration_s": canonical["session_duration_s"],
            "country": canonical["country"],
            "payment_method": canonical["payment_method"],
        }
        events.append(
            FeatureEvent(
                entity, 0, offset, canonical["occurred_at_ms"], values, canonical["event_id"]
            )
        )
    return events


def same(expected: Any, got: Any) -> bool:
    if isinstance(expected, float) and isinstance(got, float):
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-6)
    return bool(expected == got)
