"""Scenario: the orders people mean to place: who, when, from which source, how much, shipped
where, and the bursts that look like fraud. No source's quirks yet: rendering adds those.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, replace

from streamproc.scenario.shop.config import GeneratorConfig
from streamproc.scenario.shop.world import (
    FAMILY_NAMES,
    GIVEN_NAMES,
    HOMES,
    HOUR_MS,
    MINUTE_MS,
    TAX_RATES,
    UNLISTED_SHARE,
    UNLISTED_TAX_RATES,
)


@dataclass(frozen=True, slots=True)
class Person:
    """A customer or a guest, with their habits: home, usual spend, how often they order."""

    customer_id: str | None  # None: a guest, who orders on the web with an e-mail only
    given: str
    family: str
    email: str
    home: str
    usual_amount_eur: float
    activity: float
    app_upgrade_ms: int


@dataclass(frozen=True, slots=True)
class Intent:
    """An order a person means to place, before a source renders it."""

    person: Person
    source: str
    at_ms: int
    gross_eur: float
    items: int
    country: str
    session_s: float
    anonymous_at_till: bool = False  # a pos sale without a customer card: no entity


def draw_people(rng: random.Random, config: GeneratorConfig) -> list[Person]:
    homes, weights = list(HOMES), list(HOMES.values())
    guests = max(1, config.customers // 2)
    people = []
    for n in range(config.customers + guests):
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        people.append(
            Person(
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


def plan_orders(rng: random.Random, config: GeneratorConfig, people: list[Person]) -> list[Intent]:
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
    intents: list[Intent] = []
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
            intents.append(replace(intent, at_ms=later, session_s=session_seconds(rng)))
    intents.sort(key=lambda i: i.at_ms)
    return intents


def _ordinary(rng: random.Random, person: Person, source: str, at: int) -> Intent:
    foreign = rng.random() < 0.03
    return Intent(
        person=person,
        source=source,
        at_ms=at,
        gross_eur=round(person.usual_amount_eur * rng.lognormvariate(0, 0.3), 2),
        items=1 + min(int(rng.expovariate(0.7)), 8),
        country=foreign_country(rng, person.home) if foreign else person.home,
        session_s=session_seconds(rng),
        anonymous_at_till=source == "pos" and rng.random() < 0.6,
    )


def _burst(rng: random.Random, config: GeneratorConfig, first: Intent) -> list[Intent]:
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
                country=foreign_country(rng, first.person.home)
                if rng.random() < 0.5
                else first.country,
                session_s=round(rng.uniform(2, 9), 3)
                if rng.random() < 0.5
                else session_seconds(rng),
                anonymous_at_till=False,
            )
        )
    return burst


def session_seconds(rng: random.Random) -> float:
    """Seconds, to the millisecond; a few bots click through in seconds."""
    if rng.random() < 0.01:
        return round(rng.uniform(2, 9), 3)
    return round(min(rng.lognormvariate(math.log(180), 0.6), 3 * 3600.0), 3)


def foreign_country(rng: random.Random, home: str) -> str:
    if rng.random() < UNLISTED_SHARE:
        return rng.choice(list(UNLISTED_TAX_RATES))
    return rng.choice([c for c in TAX_RATES if c != home])
