"""Test data builders: valid records of the scenario's schemas, with overrides."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import strategies as st

ORDER_SUBMITTED = "shop.OrderSubmitted"


def order(**overrides: Any) -> dict[str, Any]:
    """A web order as the checkout form publishes it (docs/scenario.md), fields overridable."""
    record: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "source": "web",
        "customer_id": None,
        "customer_name": "Ada Lovelace",
        "email": " Ada.Lovelace@Example.org ",
        "country": "de",
        "amount": 119.0,
        "amount_includes_tax": True,
        "tax_rate": None,
        "currency": "EUR",
        "items": 2,
        "occurred_at": 1_774_746_000_000,
        "tz": None,
        "session_duration": 42.5,
        "app_version": None,
        "payment_method": "card",
    }
    record.update(overrides)
    return record


def order_v2(**overrides: Any) -> dict[str, Any]:
    """The same web order as a producer on shop.OrderSubmitted v2 publishes it: item_count
    (v1's items), no amount_includes_tax (dropped in v2), coupon_code (new in v2, none)."""
    record = order()
    record.pop("amount_includes_tax")
    record["item_count"] = record.pop("items")
    record["coupon_code"] = None
    record.update(overrides)
    return record


def v2_of(record: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The v1 order `record` as a producer on shop.OrderSubmitted v2 writes it (its
    amount_includes_tax has no place there)."""
    fields = {k: v for k, v in record.items() if k not in {"items", "amount_includes_tax"}}
    return {**order_v2(**fields, item_count=record["items"]), **overrides}


def v1_of(record: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The v2 order `record` as a producer on v1 writes it (its coupon_code has no place
    there; amount_includes_tax is null: the source's habit)."""
    fields = {k: v for k, v in record.items() if k not in {"item_count", "coupon_code"}}
    return order(
        **{**fields, "items": record["item_count"], "amount_includes_tax": None, **overrides}
    )


def read_order(**overrides: Any) -> dict[str, Any]:
    """order(**overrides) under the names the normalizer reads: the newest
    shop.OrderSubmitted's, into which the decoder resolves every record (v1's items arrives as
    item_count). For tests that hand raw orders to the normalizer without the decoder; they
    keep amount_includes_tax, which the normalizer still honours where a record has it."""
    record = order(**overrides)
    if "items" in record:
        record["item_count"] = record.pop("items")
    return record


def as_decoded(record: dict[str, Any]) -> dict[str, Any]:
    """An order as the decoder returns it: read into the newest shop.OrderSubmitted (v2) with
    the field v2 removed kept (SchemaCatalog.reader): a v1 order's items as item_count, its
    amount_includes_tax as written, coupon_code null; a v2 order's amount_includes_tax null."""
    renamed = {"items": "item_count"}
    decoded = {renamed.get(k, k): v for k, v in record.items()}
    decoded.setdefault("coupon_code", None)
    decoded.setdefault("amount_includes_tax", None)
    return decoded


_text = st.text(max_size=40)
_optional_text = st.none() | _text
_finite = st.floats(allow_nan=False, allow_infinity=False)

orders = st.fixed_dictionaries(
    {
        "event_id": st.uuids().map(str),
        "source": st.sampled_from(["web", "app", "pos"]),
        "customer_id": _optional_text,
        "customer_name": _optional_text,
        "email": _optional_text,
        "country": st.none() | st.text(min_size=2, max_size=2),
        "amount": _finite,
        "amount_includes_tax": st.none() | st.booleans(),
        "tax_rate": st.none() | _finite,
        "currency": st.sampled_from(["EUR", "USD"]),
        "items": st.integers(min_value=-(2**31), max_value=2**31 - 1),
        "occurred_at": st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(max_size=30),
        "tz": st.none() | st.sampled_from(["Europe/Berlin", "America/New_York"]),
        "session_duration": st.none() | _finite,
        "app_version": st.none() | st.integers(min_value=0, max_value=100),
        "payment_method": st.none() | st.sampled_from(["card", "paypal", "cash"]),
    }
)
