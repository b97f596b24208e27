"""Records: the Avro records the code builds and reads by name, as TypedDicts, so that mypy
checks their keys and value types (schemas/*.avsc is the wire contract; a unit test holds each
TypedDict to its schema's fields).

A nullable Avro field (a union with "null") is `X | None` here, and every field is required:
the code builds each record whole, and a decoded record always carries every field of its
schema. A record whose field names a pipeline declares (a tabular pipeline's, a raw order read
through FieldNames) stays a Mapping read by those names: its shape is known only at run time.
"""

from __future__ import annotations

from typing import Literal, TypedDict

DuplicateKind = Literal["retry", "resubmission"]  # shop.DuplicateKind
FeatureStatus = Literal["fresh", "stale", "missing"]  # the predictions' FeatureStatus


class OrderSubmitted(TypedDict):
    """shop.OrderSubmitted v1: a raw order as a source publishes it (the scenario builds
    these; OrderSubmittedV2 is the same order from a producer on v2)."""

    event_id: str
    source: str
    customer_id: str | None
    customer_name: str | None
    email: str | None
    country: str | None
    amount: float
    amount_includes_tax: bool | None
    tax_rate: float | None
    currency: str
    items: int
    occurred_at: int | str  # epoch ms or s, or a local wall time: per source
    tz: str | None
    session_duration: float | None
    app_version: int | None
    payment_method: str | None


class OrderSubmittedV2(TypedDict):
    """shop.OrderSubmitted v2: v1's items is item_count, amount_includes_tax is gone (the
    source's declared habit says it), coupon_code is new. Also the shape every raw order is
    decoded into, whichever version wrote it."""

    event_id: str
    source: str
    customer_id: str | None
    customer_name: str | None
    email: str | None
    country: str | None
    amount: float
    tax_rate: float | None
    currency: str
    item_count: int
    occurred_at: int | str
    tz: str | None
    session_duration: float | None
    app_version: int | None
    payment_method: str | None
    coupon_code: str | None


class OrderClean(TypedDict):
    """shop.OrderClean: the canonical order the normalizer builds."""

    event_id: str
    source: str
    entity_key: str | None
    customer_id: str | None
    given_name: str | None
    family_name: str | None
    email_hash: str | None
    country: str
    amount_net_eur: float
    amount_gross_eur: float
    tax_rate: float
    currency: str
    items: int
    occurred_at: int
    session_duration_s: float | None
    session_duration_missing: bool
    payment_method: str | None
    app_version: int | None
    quality_flags: list[str]
    field_status: dict[str, str]


class OrderDuplicate(TypedDict):
    """shop.OrderDuplicate: the audit record of an order dropped as a duplicate."""

    event_id: str
    kind: DuplicateKind
    first_event_id: str
    first_partition: int
    first_offset: int
    partition: int
    offset: int
    occurred_at: int
    first_occurred_at: int
    entity_key: str | None


class OrderOutcome(TypedDict):
    """shop.OrderOutcome: an order's label (the scenario builds these)."""

    event_id: str
    is_fraud: bool
    occurred_at: int


class ScoreFields(TypedDict):
    """The fields both prediction schemas share; each adds its probability under its name."""

    event_id: str
    entity_key: str | None
    model_name: str
    model_version: int
    occurred_at: int
    predicted_at: int
    feature_freshness_ms: int | None
    feature_status: FeatureStatus
    latency_ms: int


class OrderPrediction(ScoreFields):
    """shop.OrderPrediction: the shop pipeline's prediction."""

    fraud_probability: float


class Prediction(ScoreFields):
    """streamproc.Prediction: a tabular pipeline's prediction."""

    probability: float


# The probability's field in each prediction schema: RecordShape picks one of them.
ProbabilityField = Literal["fraud_probability", "probability"]
