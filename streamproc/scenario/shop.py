"""Scenario: the shop-orders scenario's raw traffic, and its ground truth (docs/scenario.md).

Deterministic for a seed. Three steps: plan the orders people mean to place (times, amounts,
countries, bursts), work out each order's canonical values and true fraud probability in event
time, then render what each source would publish, with its retries, resubmitted forms, NULLs and
broken records. The truth is the generator's own knowledge, never the clean stage's output.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from streamproc.avro_records import OrderOutcome, OrderSubmitted

# The world the shop lives in. The reference declaration (pipelines/shop_orders.yaml) knows
# these standard VAT rates and currencies, and a test holds the two equal; real traffic also
# brings countries and currencies it does not know (below), whose orders the clean stage must
# send to the DLQ with their reason rather than guess.
TAX_RATES = {
    **{"AT": 0.20, "BE": 0.21, "BG": 0.20, "HR": 0.25, "CY": 0.19, "CZ": 0.21, "DK": 0.25},
    **{"EE": 0.24, "FI": 0.255, "FR": 0.20, "DE": 0.19, "GR": 0.24, "HU": 0.27, "IE": 0.23},
    **{"IT": 0.22, "LV": 0.21, "LT": 0.21, "LU": 0.17, "MT": 0.18, "NL": 0.21, "PL": 0.23},
    **{"PT": 0.23, "RO": 0.21, "SK": 0.23, "SI": 0.22, "ES": 0.21, "SE": 0.25},
    **{"IS": 0.24, "LI": 0.081, "NO": 0.25, "GB": 0.20, "CH": 0.081},
}
RATES_TO_EUR = {
    **{"EUR": 1.0, "USD": 0.86, "GBP": 1.14, "CHF": 1.07, "SEK": 0.091, "DKK": 0.134},
    **{"NOK": 0.085, "PLN": 0.235, "CZK": 0.041, "HUF": 0.0026},
}
# Destinations and currencies the declaration does not list: a web order shipped to one of
# these states no tax rate (unknown_tax_rate); an order paid in one has no rate to EUR.
UNLISTED_TAX_RATES = {"US": 0.0, "CA": 0.05, "JP": 0.10, "AU": 0.10, "TR": 0.20, "UA": 0.20}
UNLISTED_RATES_TO_EUR = {"JPY": 0.0058, "CAD": 0.62, "AUD": 0.56, "TRY": 0.021}
HOME_COUNTRY = "DE"
TILL_ZONE = "Europe/Berlin"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
RESUBMISSION_WINDOW_MS = 10 * MINUTE_MS  # a form sent again within it is the same order
_HOUR = timedelta(hours=1)

_GIVEN = (
    "Ada",
    "Grace",
    "Alan",
    "Emmy",
    "Marie",
    "Lise",
    "Niels",
    "Rosa",
    "Hans",
    "Clara",
    "Jonas",
    "Lena",
    "Paul",
    "Mia",
    "Felix",
    "Anna",
    "Leon",
    "Ida",
    "Otto",
    "Greta",
)
_FAMILY = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Noether",
    "Curie",
    "Meitner",
    "Bohr",
    "Franklin",
    "Planck",
    "Schmidt",
    "Weber",
    "Fischer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Richter",
    "Neumann",
    "Hartmann",
    "Krause",
    "Lehmann",
    "Kowalski",
    "Dubois",
    "Jansen",
)
# Where the shop's customers live (a German shop selling across Europe), and what they pay in
# on the web when it is not the euro.
_HOMES = {
    **{"DE": 0.40, "FR": 0.07, "IT": 0.07, "ES": 0.06, "AT": 0.05, "NL": 0.05, "PL": 0.04},
    **{"BE": 0.03, "GB": 0.03, "CH": 0.03, "SE": 0.02, "DK": 0.02, "PT": 0.02, "CZ": 0.02},
    **{"IE": 0.01, "FI": 0.01, "GR": 0.01, "HU": 0.01, "RO": 0.01, "NO": 0.01, "SK": 0.01},
    **{"SI": 0.005, "HR": 0.005, "LU": 0.005, "LT": 0.005, "LV": 0.005, "EE": 0.005},
    **{"BG": 0.005, "CY": 0.002, "MT": 0.002, "IS": 0.002, "LI": 0.002},
}
_HOME_CURRENCY = {
    **{"GB": "GBP", "CH": "CHF", "LI": "CHF", "SE": "SEK", "DK": "DKK", "NO": "NOK"},
    **{"PL": "PLN", "CZ": "CZK", "HU": "HUF"},
}
_UNLISTED_SHARE = 0.1  # of orders shipped abroad: to a country the declaration does not list
_UNLISTED_CURRENCY_RATE = 0.004  # of web orders: paid in a currency the declaration lacks
_PAYMENT = {
    "web": ("card", "paypal", "invoice"),
    "app": ("card", "applepay"),
    "pos": ("card", "cash"),
}
_INVALID = {
    "web": ("invalid_amount", "invalid_items", "invalid_duration", "text_too_long"),
    "app": ("invalid_amount", "unknown_currency", "invalid_items", "invalid_tax_rate"),
    "pos": ("invalid_amount", "unknown_timezone", "invalid_time", "invalid_items"),
}
# Broken values as real sources send them: not only negative, but absurd.
_ABSURD_AMOUNTS = (-1.0, math.inf, 1e308)  # NaN: in the unit tests (NaN ≠ NaN in truths)
_ABSURD_ITEMS = (0, -3, 2**31 - 1)

Kind = Literal["order", "retry", "resubmission", "invalid"]


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """How much traffic to generate, from which seed and start time, and how messy."""

    events: int = 20_000
    seed: int = 7
    start_ms: int = 1_774_656_000_000  # 2026-03-28 00:00 UTC: the spring DST change is inside
    duration_ms: int = 36 * HOUR_MS
    customers: int = 2_000
    retry_rate: float = 0.02  # of app orders, sent again with the same event id
    resubmission_rate: float = 0.03  # of web orders, submitted again with a new event id
    guest_rate: float = 0.15  # of web orders, placed without a customer account
    null_rate: float = 0.05  # per optional field and order
    invalid_rate: float = 0.005  # of records, broken in a way the clean stage must reject
    burst_rate: float = 0.03  # of orders, followed by a few more in minutes (a fraud pattern)
    home_country: str = HOME_COUNTRY
    app_v5_release_ms: int | None = None  # default: 8 hours after the start

    @property
    def app_v5_release(self) -> int:
        return self.app_v5_release_ms or self.start_ms + 8 * HOUR_MS


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

    events: list[OrderSubmitted]  # raw records in arrival order
    truth: list[Truth]  # one per raw record, same order
    outcomes: list[OrderOutcome]  # labels, in the order they arrive
    bayes_auc: float  # ROC AUC of the true probabilities: the best any model can reach


@dataclass(frozen=True, slots=True)
class _Person:
    customer_id: str | None  # None: a guest, who orders on the web with an e-mail only
    given: str
    family: str
    email: str
    home: str
    usual_amount_eur: float
    activity: float
    app_upgrade_ms: int


@dataclass(frozen=True, slots=True)
class _Intent:
    """An order a person means to place, before a source renders it."""

    person: _Person
    source: str
    at_ms: int
    gross_eur: float
    items: int
    country: str
    session_s: float
    anonymous_at_till: bool = False  # a pos sale without a customer card: no entity


@dataclass(slots=True)
class _Record:
    arrival_ms: int
    event: OrderSubmitted
    truth: Truth
    sequence: int = field(default=0)


def generate(config: GeneratorConfig) -> Scenario:
    rng = random.Random(config.seed)  # noqa: S311 (test data, not secrets)
    people = _people(rng, config)
    intents = _plan(rng, config, people)
    records = _render(rng, config, intents)
    records.sort(key=lambda r: (r.arrival_ms, r.sequence))
    records = records[: config.events]
    truth = [r.truth for r in records]
    outcomes = _outcomes(rng, records)
    orders = [t for t in truth if t.kind == "order"]
    auc = roc_auc([t.fraud_probability or 0.0 for t in orders], [bool(t.is_fraud) for t in orders])
    return Scenario([r.event for r in records], truth, outcomes, auc)


def write_scenario(scenario: Scenario, out: Path) -> tuple[Path, Path, Path]:
    """The events at `out`, the truth and the outcomes beside it, as JSON lines."""
    truth_path = out.with_name(f"{out.stem}.truth.jsonl")
    outcomes_path = out.with_name(f"{out.stem}.outcomes.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_lines(out, scenario.events)
    _write_lines(truth_path, (asdict(t) for t in scenario.truth))
    _write_lines(outcomes_path, scenario.outcomes)
    return out, truth_path, outcomes_path


def producer_key(event: Mapping[str, Any]) -> bytes:
    """How the shop's producers key orders: by customer, else by a digest of the e-mail, so a
    customer's orders, retries and resubmitted forms share a partition and keep their order."""
    if event.get("customer_id"):
        return str(event["customer_id"]).encode()
    email = event.get("email")
    if isinstance(email, str) and email.strip():
        return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16].encode()
    return str(event["event_id"]).encode()


def read_truth(path: Path) -> list[Truth]:
    with path.open(encoding="utf-8") as lines:
        return [Truth(**json.loads(line)) for line in lines if line.strip()]


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


# -- planning ---------------------------------------------------------------------------


def _people(rng: random.Random, config: GeneratorConfig) -> list[_Person]:
    homes, weights = list(_HOMES), list(_HOMES.values())
    guests = max(1, config.customers // 2)
    people = []
    for n in range(config.customers + guests):
        given, family = rng.choice(_GIVEN), rng.choice(_FAMILY)
        people.append(
            _Person(
                customer_id=f"C{n:06d}" if n < config.customers else None,
                given=given,
                family=family,
                email=f"{given}.{family}{n}@example.org".lower(),
                home=rng.choices(homes, weights)[0],
                usual_amount_eur=rng.lognormvariate(math.log(60), 0.6),
                activity=rng.lognormvariate(0, 0.8),
                app_upgrade_ms=config.app_v5_release + int(rng.expovariate(1 / (4 * HOUR_MS))),
            )
        )
    return people


def _plan(rng: random.Random, config: GeneratorConfig, people: list[_Person]) -> list[_Intent]:
    """Enough orders for the records asked for, with bursts and near misses, by time."""
    registered = [p for p in people if p.customer_id is not None]
    guests = [p for p in people if p.customer_id is None]
    cumulative = list(itertools.accumulate(p.activity for p in registered))
    # records per planned order: bursts and near misses add orders, retries and resubmissions
    # add records; plan a little more than needed, the tail is cut at `events`
    per_order = (1 + 2 * config.burst_rate) * (
        1 + 0.4 * config.retry_rate + 0.45 * config.resubmission_rate
    )
    count = int(config.events / per_order * 1.05) + 20
    intents: list[_Intent] = []
    for _ in range(count):
        at = config.start_ms + rng.randrange(config.duration_ms)
        source = rng.choices(("web", "app", "pos"), (0.45, 0.40, 0.15))[0]
        if source == "web" and rng.random() < config.guest_rate:
            person = rng.choice(guests)
        else:
            person = rng.choices(registered, cum_weights=cumulative)[0]
        if source == "pos" and person.home != config.home_country:
            source = "web"  # the tills are in the home country
        intent = _ordinary(rng, person, source, at)
        intents.append(intent)
        if rng.random() < config.burst_rate:
            intents.extend(_burst(rng, config, intent))
        elif source == "web" and rng.random() < 0.005:
            # the same basket again, long after the window: a new order, not a duplicate
            later = at + rng.randrange(15 * MINUTE_MS, HOUR_MS)
            intents.append(replace(intent, at_ms=later, session_s=_session(rng)))
    intents.sort(key=lambda i: i.at_ms)
    return intents


def _ordinary(rng: random.Random, person: _Person, source: str, at: int) -> _Intent:
    foreign = rng.random() < 0.03
    return _Intent(
        person=person,
        source=source,
        at_ms=at,
        gross_eur=round(person.usual_amount_eur * rng.lognormvariate(0, 0.3), 2),
        items=1 + min(int(rng.expovariate(0.7)), 8),
        country=_foreign(rng, person.home) if foreign else person.home,
        session_s=_session(rng),
        anonymous_at_till=source == "pos" and rng.random() < 0.6,
    )


def _burst(rng: random.Random, config: GeneratorConfig, first: _Intent) -> list[_Intent]:
    """A few quick, large orders, often shipped abroad and clicked through: fraud-like."""
    source = "app" if first.source == "pos" else first.source
    burst = []
    for k in range(rng.randint(1, 3)):
        at = first.at_ms + (k + 1) * rng.randrange(2 * MINUTE_MS, 20 * MINUTE_MS)
        if at >= config.start_ms + config.duration_ms:
            break
        burst.append(
            replace(
                first,
                source=source,
                at_ms=at,
                gross_eur=round(first.person.usual_amount_eur * rng.uniform(2, 8), 2),
                country=_foreign(rng, first.person.home) if rng.random() < 0.5 else first.country,
                session_s=round(rng.uniform(2, 9), 3) if rng.random() < 0.5 else _session(rng),
                anonymous_at_till=False,
            )
        )
    return burst


def _session(rng: random.Random) -> float:
    """Seconds, to the millisecond; a few bots click through in seconds."""
    if rng.random() < 0.01:
        return round(rng.uniform(2, 9), 3)
    return round(min(rng.lognormvariate(math.log(180), 0.6), 3 * 3600.0), 3)


def _foreign(rng: random.Random, home: str) -> str:
    if rng.random() < _UNLISTED_SHARE:
        return rng.choice(list(UNLISTED_TAX_RATES))
    return rng.choice([c for c in TAX_RATES if c != home])


def _tax_rate(country: str) -> float:
    return TAX_RATES.get(country, UNLISTED_TAX_RATES.get(country, 0.0))


def _to_eur(currency: str) -> float:
    return RATES_TO_EUR.get(currency) or UNLISTED_RATES_TO_EUR[currency]


# -- rendering --------------------------------------------------------------------------


class _Renderer:
    """Turns intents into raw records and truth, in event time."""

    def __init__(self, rng: random.Random, config: GeneratorConfig) -> None:
        self.rng = rng
        self.config = config
        self.recent: dict[str, deque[int]] = defaultdict(deque)  # entity → order times
        self.last_basket: dict[tuple[str, str, int], int] = {}  # (entity, gross, items) → time
        self.records: list[_Record] = []

    def add(self, intent: _Intent) -> None:
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
        self.records.append(_Record(arrival_ms, event, truth, len(self.records)))

    def _order(self, intent: _Intent) -> tuple[OrderSubmitted, dict[str, Any]]:
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
        payment = None if rng.random() < nulls else rng.choice(_PAYMENT[source])
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

    def _currency(self, source: str, person: _Person) -> str:
        rng = self.rng
        if source == "app":
            return "USD" if rng.random() < 0.15 else "EUR"
        if source == "web":
            if rng.random() < _UNLISTED_CURRENCY_RATE:
                return rng.choice(list(UNLISTED_RATES_TO_EUR))
            home_currency = _HOME_CURRENCY.get(person.home)
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
        self, intent: _Intent, flags: list[str]
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
        self, source: str, person: _Person, flags: list[str]
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
        self, intent: _Intent, event: OrderSubmitted, canonical: dict[str, Any]
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

    def _fraud(self, intent: _Intent, canonical: dict[str, Any]) -> dict[str, Any]:
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

    def _resubmit(self, intent: _Intent, event: OrderSubmitted) -> None:
        """The same form sent again: a new event id, the same basket, seconds to minutes later."""
        later = intent.at_ms + self.rng.randrange(2_000, 8 * MINUTE_MS)
        copy: OrderSubmitted = {
            **event,
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
        }
        copy["occurred_at"] = later
        copy["session_duration"] = None if event["session_duration"] is None else _session(self.rng)
        self._emit(later, copy, Truth(copy["event_id"], "resubmission", event["event_id"]))

    def _broken(self, intent: _Intent) -> None:
        event, canonical = self._order(intent)
        reason = self.rng.choice(_INVALID[intent.source])
        if reason == "invalid_amount":
            absurd = self.rng.choice(_ABSURD_AMOUNTS)
            event["amount"] = -event["amount"] - 1 if absurd == -1.0 else absurd
        elif reason == "invalid_items":
            event["items"] = self.rng.choice(_ABSURD_ITEMS)
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


def _render(rng: random.Random, config: GeneratorConfig, intents: list[_Intent]) -> list[_Record]:
    renderer = _Renderer(rng, config)
    for intent in intents:
        renderer.add(intent)
    return renderer.records


def _outcomes(rng: random.Random, records: list[_Record]) -> list[OrderOutcome]:
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


def _just_sprang_forward(moment: datetime, zone: ZoneInfo) -> bool:
    """Within the hour after the clocks of `zone` went forward (a one-hour change)."""
    return bool(moment.astimezone(zone).dst()) and not (moment - _HOUR).astimezone(zone).dst()


def _mixed_case(rng: random.Random, text: str) -> str:
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)


def _write_lines(path: Path, rows: Any) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
