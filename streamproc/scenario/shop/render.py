"""Scenario: what each source publishes for the orders planned: the messy raw records (each
source's clock, units, casing and NULLs; retries, resubmitted forms, broken values) and the
truth of each, in event time; and how the shop's producers key them.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from streamproc.avro_records import OrderSubmitted, OrderSubmittedV2
from streamproc.scenario.shop.config import GeneratorConfig
from streamproc.scenario.shop.plan import Intent, Person, session_seconds
from streamproc.scenario.shop.truth import Truth, fraud_probability
from streamproc.scenario.shop.world import (
    ABSURD_AMOUNTS,
    ABSURD_ITEMS,
    HOME_CURRENCY,
    HOUR_MS,
    INVALID_REASONS,
    MINUTE_MS,
    PAYMENT_METHODS,
    RATES_TO_EUR,
    RESUBMISSION_WINDOW_MS,
    TAX_RATES,
    TILL_ZONE,
    UNLISTED_CURRENCY_RATE,
    UNLISTED_RATES_TO_EUR,
    UNLISTED_TAX_RATES,
)

_HOUR = timedelta(hours=1)


@dataclass(slots=True)
class Record:
    """A raw record as it arrives, with its truth; `sequence` keeps the order of equal arrivals."""

    arrival_ms: int
    event: OrderSubmitted
    truth: Truth
    sequence: int = field(default=0)


class Renderer:
    """Turns intents into raw records and truth, in event time."""

    def __init__(self, rng: random.Random, config: GeneratorConfig) -> None:
        self.rng = rng
        self.config = config
        self.recent: dict[str, deque[int]] = defaultdict(deque)  # entity → order times
        self.last_basket: dict[tuple[str, str, int], int] = {}  # (entity, gross, items) → time
        self.records: list[Record] = []

    def add(self, intent: Intent) -> None:
        rng, config = self.rng, self.config
        if rng.random() < config.invalid_rate:
            self._broken(intent)
            return
        event, canonical = self._order(intent)
        unknown = _unknown_to_the_shop(event, canonical)
        if unknown is not None:
            self._emit(intent.at_ms, event, Truth(event["event_id"], "invalid", reason=unknown))
            return
        self._avoid_accidental_duplicate(intent, event, canonical)
        truth = Truth(
            event["event_id"],
            "order",
            canonical=canonical,
            **self._fraud(intent, canonical),
        )
        self._emit(intent.at_ms, event, truth)
        if intent.source == "app" and rng.random() < config.retry_rate:
            retry_at = intent.at_ms + rng.randrange(500, 30_000)
            self._emit(retry_at, event.copy(), Truth(event["event_id"], "retry", event["event_id"]))
        if (
            intent.source == "web"
            and canonical["entity"]
            and rng.random() < config.resubmission_rate
        ):
            self._resubmit(intent, event)

    def _emit(self, arrival_ms: int, event: OrderSubmitted, truth: Truth) -> None:
        self.records.append(Record(arrival_ms, event, truth, len(self.records)))

    def _order(self, intent: Intent) -> tuple[OrderSubmitted, dict[str, Any]]:
        rng, person, nulls = self.rng, intent.person, self.config.null_rate
        source, at = intent.source, intent.at_ms
        flags: list[str] = []
        customer_id = None if intent.anonymous_at_till else person.customer_id
        country = intent.country
        raw_country: str | None = country
        if source == "pos" or (source == "web" and rng.random() < nulls):
            raw_country = None
            country = self.config.home_country
            flags.append("country_defaulted")
        elif source == "web":
            raw_country = rng.choice((country.lower(), country, country.title()))
        rate = _tax_rate(country)
        currency = self._currency(source, person)
        if source == "pos":
            raw_amount = round(intent.gross_eur / (1 + rate), 2)
            net = raw_amount
            gross = raw_amount * (1 + rate)
        else:
            raw_amount = round(intent.gross_eur / _to_eur(currency), 2)
            gross = raw_amount * _to_eur(currency)
            net = gross / (1 + rate)
        if currency != "EUR":
            flags.append("currency_converted")
        if source == "web":
            flags.append("tax_defaulted")
        occurred, raw_time, tz = self._time(source, at, flags)
        session, raw_session, version = self._session(intent, flags)
        email = None if source == "pos" else person.email
        raw_email = email
        if email and source == "web":
            raw_email = (
                f"{' ' * rng.randint(0, 2)}{_mixed_case(rng, email)}{' ' * rng.randint(0, 1)}"
            )
        name, given, family = self._name(source, person, flags)
        payment = None if rng.random() < nulls else rng.choice(PAYMENT_METHODS[source])
        if customer_id is None:
            flags.append("guest")
        entity = customer_id or (f"email:{email}" if email else None)
        event: OrderSubmitted = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "source": source,
            "customer_id": customer_id,
            "customer_name": name,
            "email": raw_email,
            "country": raw_country,
            "amount": raw_amount,
            "amount_includes_tax": {"web": True, "app": None, "pos": False}[source],
            "tax_rate": None if source == "web" else rate,
            "currency": currency,
            "items": intent.items,
            "occurred_at": raw_time,
            "tz": tz,
            "session_duration": raw_session,
            "app_version": version,
            "payment_method": payment,
        }
        canonical = {
            "event_id": event["event_id"],
            "source": source,
            "entity": entity,
            "customer_id": customer_id,
            "email_normalized": email,
            "given_name": given,
            "family_name": family,
            "country": country,
            "amount_gross_eur": gross,
            "amount_net_eur": net,
            "tax_rate": rate,
            "currency": currency,
            "items": intent.items,
            "occurred_at_ms": occurred,
            "session_duration_s": session,
            "app_version": version,
            "payment_method": payment,
            "flags": flags,
        }
        return event, canonical

    def _currency(self, source: str, person: Person) -> str:
        rng = self.rng
        if source == "app":
            return "USD" if rng.random() < 0.15 else "EUR"
        if source == "web":
            if rng.random() < UNLISTED_CURRENCY_RATE:
                return rng.choice(list(UNLISTED_RATES_TO_EUR))
            home_currency = HOME_CURRENCY.get(person.home)
            if home_currency and rng.random() < 0.7:
                return home_currency
        return "EUR"

    def _time(self, source: str, at: int, flags: list[str]) -> tuple[int, int | str, str | None]:
        """(canonical ms, raw occurred_at, raw tz) as each source writes its clock."""
        if source == "web":
            return at, at, None
        seconds = at // 1000
        if source == "app":
            return seconds * 1000, seconds, None
        flags.append("tz_localized")
        zone = ZoneInfo(TILL_ZONE)
        moment = datetime.fromtimestamp(seconds, UTC)
        wall = moment.astimezone(zone)
        if _just_sprang_forward(moment, zone) and self.rng.random() < 0.3:
            # A till whose clock has not sprung forward yet writes a wall time in the gap;
            # the documented rule (the offset before the change) gives back the true time.
            wall -= _HOUR
            flags.append("tz_gap")
        tz: str | None = TILL_ZONE
        if self.rng.random() < self.config.null_rate:
            tz = None
            flags.append("tz_defaulted")
        return seconds * 1000, wall.strftime("%Y-%m-%d %H:%M:%S"), tz

    def _session(
        self, intent: Intent, flags: list[str]
    ) -> tuple[float | None, float | None, int | None]:
        """(canonical seconds, raw value, app version)."""
        source = intent.source
        version = None
        if source == "app":
            version = 5 if intent.at_ms >= intent.person.app_upgrade_ms else 4
        if source == "pos" or self.rng.random() < self.config.null_rate:
            flags.append("session_duration_missing")
            return None, None, version
        seconds = intent.session_s
        if version == 4:
            flags.append("unit_converted")
            return seconds, round(seconds * 1000), version
        if version == 5:  # the undeclared switch: seconds where milliseconds are declared
            flags.extend(("unit_converted", "unit_switch_suspected"))
        return seconds, seconds, version

    def _name(
        self, source: str, person: Person, flags: list[str]
    ) -> tuple[str | None, str | None, str | None]:
        if source == "web" and self.rng.random() < self.config.null_rate:
            return None, None, None
        if source == "app":
            flags.append("name_recased")
            text = f"{person.given} {person.family}"
            return (
                (text.upper() if self.rng.random() < 0.2 else text.lower()),
                person.given,
                person.family,
            )
        if source == "pos":
            flags.append("name_reordered")
            return f"{person.family.upper()}, {person.given}", person.given, person.family
        return f"{person.given} {person.family}", person.given, person.family

    def _avoid_accidental_duplicate(
        self, intent: Intent, event: OrderSubmitted, canonical: dict[str, Any]
    ) -> None:
        """Two real orders of one entity with the same basket inside the window would look
        like a resubmission; the world does that rarely, the truth must not be ambiguous."""
        entity = canonical["entity"]
        if entity is None:
            return
        while True:
            basket = (entity, f"{canonical['amount_gross_eur']:.2f}", canonical["items"])
            last = self.last_basket.get(basket)
            if last is None or intent.at_ms - last > RESUBMISSION_WINDOW_MS + MINUTE_MS:
                break
            canonical["items"] = event["items"] = event["items"] + 1
        self.last_basket[basket] = intent.at_ms

    def _fraud(self, intent: Intent, canonical: dict[str, Any]) -> dict[str, Any]:
        entity, at = canonical["entity"], intent.at_ms
        recent = 0
        if entity is not None:
            times = self.recent[entity]
            while times and times[0] <= at - HOUR_MS:
                times.popleft()
            recent = len(times)
            times.append(at)
        known = entity is not None
        probability = fraud_probability(
            recent,
            canonical["amount_gross_eur"] / intent.person.usual_amount_eur if known else 1.0,
            known and canonical["country"] != intent.person.home,
            canonical["customer_id"] is None,
            canonical["session_duration_s"],
        )
        return {"fraud_probability": probability, "is_fraud": self.rng.random() < probability}

    def _resubmit(self, intent: Intent, event: OrderSubmitted) -> None:
        """The same form sent again: a new event id, the same basket, seconds to minutes later."""
        later = intent.at_ms + self.rng.randrange(2_000, 8 * MINUTE_MS)
        copy: OrderSubmitted = {
            **event,
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
        }
        copy["occurred_at"] = later
        copy["session_duration"] = (
            None if event["session_duration"] is None else session_seconds(self.rng)
        )
        self._emit(later, copy, Truth(copy["event_id"], "resubmission", event["event_id"]))

    def _broken(self, intent: Intent) -> None:
        event, canonical = self._order(intent)
        reason = self.rng.choice(INVALID_REASONS[intent.source])
        if reason == "invalid_amount":
            absurd = self.rng.choice(ABSURD_AMOUNTS)
            event["amount"] = -event["amount"] - 1 if absurd == -1.0 else absurd
        elif reason == "invalid_items":
            event["items"] = self.rng.choice(ABSURD_ITEMS)
        elif reason == "invalid_duration":  # a year, or for ever
            event["session_duration"] = self.rng.choice((365 * 86_400.0, math.inf))
        elif reason == "invalid_tax_rate":
            event["tax_rate"] = self.rng.choice((5.0, -0.19))
        elif reason == "text_too_long":
            event["customer_name"] = "Ada " * 300
        elif reason == "unknown_currency":
            event["currency"] = "XTS"  # the ISO 4217 code reserved for tests
        elif reason == "unknown_timezone":
            event["tz"] = "Europe/Atlantis"
        else:
            event["occurred_at"] = "the day before yesterday"
        if reason in ("invalid_items", "invalid_duration"):  # the money is checked first
            reason = _unknown_to_the_shop(event, canonical) or reason
        elif reason == "invalid_amount" and event["currency"] not in RATES_TO_EUR:
            # a finite amount passes the first check; the currency's is next
            amount = event["amount"]
            reason = "unknown_currency" if math.isfinite(amount) and amount >= 0 else reason
        self._emit(intent.at_ms, event, Truth(event["event_id"], "invalid", reason=reason))


def _unknown_to_the_shop(event: OrderSubmitted, canonical: dict[str, Any]) -> str | None:
    """Why the reference declaration cannot clean this order, if it cannot."""
    if event["currency"] not in RATES_TO_EUR:
        return "unknown_currency"
    if event["tax_rate"] is None and canonical["country"] not in TAX_RATES:
        return "unknown_tax_rate"
    return None


def render_records(
    rng: random.Random, config: GeneratorConfig, intents: list[Intent]
) -> list[Record]:
    renderer = Renderer(rng, config)
    for intent in intents:
        renderer.add(intent)
    return renderer.records


def producer_key(event: Mapping[str, Any]) -> bytes:
    """How the shop's producers key orders: by customer, else by a digest of the e-mail, so a
    customer's orders, retries and resubmitted forms share a partition and keep their order."""
    if event.get("customer_id"):
        return str(event["customer_id"]).encode()
    email = event.get("email")
    if isinstance(email, str) and email.strip():
        return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16].encode()
    return str(event["event_id"]).encode()


COUPONS = ("SPRING10", "WELCOME5", "FREESHIP")  # what the v2 checkout lets a customer enter


def as_v2(event: OrderSubmitted, coupon_code: str | None = None) -> OrderSubmittedV2:
    """The same order as a producer on shop.OrderSubmitted v2 sends it: item_count for items,
    no amount_includes_tax (the sources' values are their declared habits), a coupon code."""
    return {
        "event_id": event["event_id"],
        "source": event["source"],
        "customer_id": event["customer_id"],
        "customer_name": event["customer_name"],
        "email": event["email"],
        "country": event["country"],
        "amount": event["amount"],
        "tax_rate": event["tax_rate"],
        "currency": event["currency"],
        "item_count": event["items"],
        "occurred_at": event["occurred_at"],
        "tz": event["tz"],
        "session_duration": event["session_duration"],
        "app_version": event["app_version"],
        "payment_method": event["payment_method"],
        "coupon_code": coupon_code,
    }


def upgrade_some(
    events: list[OrderSubmitted], rate: float, rng: random.Random
) -> list[OrderSubmitted | OrderSubmittedV2]:
    """`events` with a share `rate` of them sent as v2 instead (a fifth of those with a coupon)."""
    upgraded: list[OrderSubmitted | OrderSubmittedV2] = []
    for event in events:
        if rng.random() < rate:
            coupon = rng.choice(COUPONS) if rng.random() < 0.2 else None
            upgraded.append(as_v2(event, coupon))
        else:
            upgraded.append(event)
    return upgraded


def _tax_rate(country: str) -> float:
    return TAX_RATES.get(country, UNLISTED_TAX_RATES.get(country, 0.0))


def _to_eur(currency: str) -> float:
    return RATES_TO_EUR.get(currency) or UNLISTED_RATES_TO_EUR[currency]


def _just_sprang_forward(moment: datetime, zone: ZoneInfo) -> bool:
    """Within the hour after the clocks of `zone` went forward (a one-hour change)."""
    return bool(moment.astimezone(zone).dst()) and not (moment - _HOUR).astimezone(zone).dst()


def _mixed_case(rng: random.Random, text: str) -> str:
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)
