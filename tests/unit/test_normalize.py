"""A raw order → canonical clean order: source habits, NULL semantics, rejections, idempotence."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.config.pipeline import PipelineSpec, SourceHabits
from streamproc.core import canonical
from streamproc.core.normalize import Normalizer
from streamproc.errors import EventRejected
from tests.builders import read_order
from tests.conftest import REPO

KEY = b"test-key"


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    from streamproc.config.pipeline import load_pipeline

    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


@pytest.fixture(scope="module")
def normalizer(spec: PipelineSpec) -> Normalizer:
    return Normalizer(spec, KEY)


def test_web_order(normalizer: Normalizer) -> None:
    clean = normalizer.normalize(read_order(customer_id="c1", occurred_at=1_774_746_000_123))
    assert clean["occurred_at"] == 1_774_746_000_123
    assert (clean["given_name"], clean["family_name"]) == ("Ada", "Lovelace")
    assert clean["email_hash"] == canonical.keyed_hash(KEY, "ada.lovelace@example.org")
    assert clean["entity_key"] == "c1"
    assert clean["country"] == "DE"
    assert clean["amount_gross_eur"] == pytest.approx(119.0)
    assert clean["amount_net_eur"] == pytest.approx(100.0)
    assert clean["tax_rate"] == 0.19
    assert "tax_defaulted" in clean["quality_flags"]
    assert clean["field_status"]["tax_rate"] == "defaulted"
    assert clean["session_duration_s"] == 42.5


@pytest.mark.parametrize(
    ("country", "rate"), [("it", 0.22), ("ES", 0.21), ("gr", 0.24), ("No", 0.25), ("ch", 0.081)]
)
def test_a_web_order_from_anywhere_in_europe_takes_its_countrys_rate(
    normalizer: Normalizer, country: str, rate: float
) -> None:
    clean = normalizer.normalize(read_order(country=country, amount=100.0, tax_rate=None))
    assert clean["tax_rate"] == rate
    assert clean["amount_net_eur"] == pytest.approx(100.0 / (1 + rate))


@pytest.mark.parametrize(("currency", "rate"), [("GBP", 1.14), ("huf", 0.0026), ("SEK", 0.091)])
def test_european_currencies_are_converted(
    normalizer: Normalizer, currency: str, rate: float
) -> None:
    clean = normalizer.normalize(read_order(currency=currency, amount=1000.0))
    assert clean["amount_gross_eur"] == pytest.approx(1000.0 * rate)
    assert "currency_converted" in clean["quality_flags"]


def test_a_country_the_declaration_does_not_know_needs_its_rate_in_the_event(
    normalizer: Normalizer,
) -> None:
    with pytest.raises(EventRejected) as rejected:
        normalizer.normalize(read_order(country="us", tax_rate=None))
    assert rejected.value.reason == "unknown_tax_rate"
    assert normalizer.normalize(read_order(country="us", tax_rate=0.0))["tax_rate"] == 0.0


def test_app_order_in_seconds_usd_and_milliseconds(normalizer: Normalizer) -> None:
    raw = read_order(
        source="app", occurred_at=1_774_746_000, currency="USD", amount=100.0,
        amount_includes_tax=None, tax_rate=0.19, session_duration=42_000.0, app_version=4,
        customer_name="ada lovelace", customer_id="c1",
    )  # fmt: skip
    clean = normalizer.normalize(raw)
    assert clean["occurred_at"] == 1_774_746_000_000
    assert clean["amount_gross_eur"] == pytest.approx(86.0)
    assert clean["amount_net_eur"] == pytest.approx(86.0 / 1.19)
    assert clean["session_duration_s"] == pytest.approx(42.0)
    assert clean["field_status"]["amount_includes_tax"] == "defaulted"
    assert {"currency_converted", "unit_converted", "name_recased"} <= set(clean["quality_flags"])


def test_pos_order_local_time_net_amount_home_country(normalizer: Normalizer) -> None:
    raw = read_order(
        source="pos", occurred_at="2026-03-28 14:00:00", tz="Europe/Berlin", amount=100.0,
        amount_includes_tax=False, tax_rate=0.19, customer_name="LOVELACE, Ada", email=None,
        country=None, session_duration=None,
    )  # fmt: skip
    clean = normalizer.normalize(raw)
    assert clean["occurred_at"] == 1_774_702_800_000
    assert clean["amount_gross_eur"] == pytest.approx(119.0)
    assert clean["country"] == "DE"
    assert clean["entity_key"] is None
    assert clean["session_duration_s"] is None
    assert clean["session_duration_missing"] is True
    assert clean["field_status"] == {
        "customer_id": "null", "email": "null", "country": "defaulted",
        "session_duration": "null", "app_version": "null",
    }  # fmt: skip
    assert {"tz_localized", "name_reordered", "country_defaulted", "guest"} <= set(
        clean["quality_flags"]
    )


def test_guests_are_keyed_by_their_hashed_email(normalizer: Normalizer) -> None:
    clean = normalizer.normalize(read_order(customer_id=None, email="ADA@example.org"))
    assert clean["entity_key"] == "guest:" + canonical.keyed_hash(KEY, "ada@example.org")


def test_absent_null_and_defaulted_are_distinct(normalizer: Normalizer) -> None:
    absent = read_order()
    del absent["session_duration"], absent["tax_rate"]
    clean = normalizer.normalize(absent)
    assert clean["field_status"]["session_duration"] == "absent"
    assert clean["field_status"]["tax_rate"] == "defaulted"
    null = normalizer.normalize(read_order(session_duration=None))
    assert null["field_status"]["session_duration"] == "null"
    assert null["session_duration_s"] is None  # never a silent zero
    assert null["session_duration_missing"] is True


def test_a_pos_time_without_zone_uses_the_declared_default(normalizer: Normalizer) -> None:
    raw = read_order(
        source="pos", occurred_at="2026-03-28 14:00:00", tz=None, amount_includes_tax=False
    )
    clean = normalizer.normalize(raw)
    assert clean["occurred_at"] == 1_774_702_800_000
    assert "tz_defaulted" in clean["quality_flags"]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"amount": -1.0}, "invalid_amount"),
        ({"currency": "XYZ"}, "unknown_currency"),
        ({"items": 0}, "invalid_items"),
        ({"source": "fax"}, "unknown_source"),
        ({"event_id": " "}, "missing_required"),
        ({"country": "Germany"}, "invalid_country"),
        ({"country": "US", "tax_rate": None}, "unknown_tax_rate"),
        ({"occurred_at": 1_774_746_000}, "implausible_time"),
        ({"session_duration": -3.0}, "invalid_duration"),
        ({"source": "pos", "occurred_at": "not a time"}, "invalid_time"),
        ({"source": "pos", "occurred_at": "2026-03-28 14:00:00", "tz": "Mars/Olympus_Mons"},
         "unknown_timezone"),
    ],
)  # fmt: skip
def test_invalid_orders_are_rejected_with_a_reason(
    normalizer: Normalizer, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(EventRejected) as caught:
        normalizer.normalize(read_order(**overrides))
    assert caught.value.reason == reason


# Hypothesis: normalizing an order rendered from a clean order changes nothing.

_names = st.sampled_from([("Ada", "Lovelace"), ("Grace", "Hopper"), ("Mary-Jane", "Watson")])
_countries = st.sampled_from(["de", " FR", "nl ", "At", None])


@st.composite
def raw_orders(draw: st.DrawFn) -> dict[str, Any]:
    source = draw(st.sampled_from(["web", "app", "pos"]))
    given_name, family = draw(_names)
    name = {
        "web": f"{given_name} {family}",
        "app": draw(st.sampled_from([str.lower, str.upper]))(f"{given_name} {family}"),
        "pos": f"{family.upper()}, {given_name}",
    }[source]
    moment_s = draw(st.integers(1_774_656_000, 1_774_800_000))
    times = {"web": moment_s * 1000 + draw(st.integers(0, 999)), "app": moment_s,
             "pos": "2026-03-28 14:00:00"}  # fmt: skip
    return read_order(
        source=source, customer_name=name, occurred_at=times[source],
        customer_id=draw(st.none() | st.text("abc123", min_size=1, max_size=5)),
        email=draw(st.sampled_from([" Ada@Example.org", "x.y@z.io ", None])),
        country=draw(_countries), amount=draw(st.floats(0, 10_000)),
        amount_includes_tax=source != "pos", tax_rate=draw(st.none() | st.floats(0, 0.3)),
        currency=draw(st.sampled_from(["EUR", "USD"])), tz="Europe/Lisbon",
        session_duration=draw(st.none() | st.floats(0, 10_000)),
        app_version=4 if source == "app" else None,
    )  # fmt: skip


STABLE_FIELDS = (
    "event_id", "entity_key", "given_name", "family_name", "email_hash", "country",
    "tax_rate", "items", "occurred_at", "session_duration_s", "payment_method",
)  # fmt: skip


def _render(clean: Mapping[str, Any], email: str | None) -> dict[str, Any]:
    """A clean order written back as an event of the canonical source."""
    return read_order(
        event_id=clean["event_id"], source="canonical", customer_id=clean["customer_id"],
        customer_name=f"{clean['given_name']} {clean['family_name']}", email=email,
        country=clean["country"], amount=clean["amount_gross_eur"], amount_includes_tax=True,
        tax_rate=clean["tax_rate"], currency="EUR", items=clean["items"],
        occurred_at=clean["occurred_at"], tz=None, session_duration=clean["session_duration_s"],
        app_version=clean["app_version"], payment_method=clean["payment_method"],
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(raw=raw_orders())
def test_normalization_is_idempotent_on_its_own_output(
    spec: PipelineSpec, raw: dict[str, Any]
) -> None:
    canonical_source = SourceHabits(time_format="epoch_ms", tax_included=True, duration_unit="s")
    widened = spec.model_copy(update={"sources": {**spec.sources, "canonical": canonical_source}})
    normalizer = Normalizer(widened, KEY)
    once: Mapping[str, Any] = normalizer.normalize(raw)
    email = canonical.normalize_email(raw["email"]) if raw["email"] else None
    twice: Mapping[str, Any] = normalizer.normalize(_render(once, email))
    for name in STABLE_FIELDS:
        assert twice[name] == once[name], name
    for name in ("amount_net_eur", "amount_gross_eur"):
        assert twice[name] == pytest.approx(once[name], rel=1e-12, abs=1e-9), name


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"amount": math.inf}, "invalid_amount"),
        ({"amount": 1e308}, "invalid_amount"),
        ({"amount": math.nan}, "invalid_amount"),
        ({"amount": 250_000.0}, "invalid_amount"),  # past the declared plausible maximum
        ({"tax_rate": 5.0}, "invalid_tax_rate"),
        ({"tax_rate": math.nan}, "invalid_tax_rate"),
        ({"tax_rate": -0.19}, "invalid_tax_rate"),
        ({"session_duration": math.inf}, "invalid_duration"),
        ({"session_duration": 365 * 86_400.0}, "invalid_duration"),
        ({"session_duration": -1.0}, "invalid_duration"),
        ({"items": 2**31 - 1}, "invalid_items"),
        ({"items": 0}, "invalid_items"),
        ({"customer_name": "x" * 1_000_000}, "text_too_long"),
        ({"event_id": ""}, "missing_required"),
        ({"currency": " "}, "missing_required"),
    ],
)
def test_absurd_values_are_rejected_with_their_reason(
    normalizer: Normalizer, overrides: dict[str, Any], reason: str
) -> None:
    with pytest.raises(EventRejected) as rejected:
        normalizer.normalize(read_order(**overrides))
    assert rejected.value.reason == reason


def test_empty_optional_strings_are_nulls_with_their_status(normalizer: Normalizer) -> None:
    clean = normalizer.normalize(read_order(customer_id="", country="", payment_method=""))
    assert clean["customer_id"] is None and clean["payment_method"] is None
    assert clean["country"] == "DE" and "country_defaulted" in clean["quality_flags"]
    assert clean["field_status"]["customer_id"] == "null"
