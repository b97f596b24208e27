"""Scenario: how much shop traffic to generate, from which seed and start time, and how messy."""

from __future__ import annotations

from dataclasses import dataclass

from streamproc.scenario.shop.world import HOME_COUNTRY, HOUR_MS


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
    # of records, sent by a producer already on shop.OrderSubmitted v2 (the same order: the
    # same clean record); drawn apart from the rest, so the v1 traffic of a seed stays as it is
    v2_rate: float = 0.0
    home_country: str = HOME_COUNTRY
    app_v5_release_ms: int | None = None  # default: 8 hours after the start

    @property
    def app_v5_release(self) -> int:
        return self.app_v5_release_ms or self.start_ms + 8 * HOUR_MS
