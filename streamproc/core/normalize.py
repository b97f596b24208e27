"""Core: a raw order → its canonical clean form with quality flags, or EventRejected.

NULL semantics are explicit: `field_status` says per field whether it was absent from the
event, present but null, or filled with a declared default; a missing number stays None with
a `*_missing` flag, never a silent zero. Flags say what was assumed or repaired.

The raw order is read as a Mapping by the names its pipeline declares (FieldNames: a pipeline
may rename every raw field), so mypy cannot check those reads; the clean order is built whole as
an OrderClean, whose keys it does check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from streamproc.avro_records import OrderClean
from streamproc.config.pipeline import PipelineSpec, SourceHabits
from streamproc.core import canonical
from streamproc.errors import EventRejected


class _Person(TypedDict):
    entity_key: str | None
    customer_id: str | None
    email_hash: str | None
    given_name: str | None
    family_name: str | None


class _Money(TypedDict):
    amount_net_eur: float
    amount_gross_eur: float
    tax_rate: float
    currency: str


class _Duration(TypedDict):
    session_duration_s: float | None
    session_duration_missing: bool


class Normalizer:
    """Applies one pipeline's declarations; holds nothing that changes between events."""

    def __init__(self, spec: PipelineSpec, pii_key: bytes) -> None:
        self.spec = spec
        self._names = spec.fields
        self._pii_key = pii_key
        self._payment_methods = set(spec.payment_methods or ())
        self._plausible = spec.plausible

    def normalize(self, raw: Mapping[str, Any]) -> OrderClean:
        """The clean order for `raw`; raises EventRejected(reason) when it cannot be one."""
        names = self._names
        flags: list[str] = []
        status: dict[str, str] = {}
        self._check_text_lengths(raw)
        event_id = _required_text(raw, names.event_id)
        source = _required_text(raw, names.source).lower()
        habits = self.spec.sources.get(source)
        if habits is None:
            known = ", ".join(sorted(self.spec.sources))
            raise EventRejected("unknown_source", f"source {source!r} is not declared ({known})")
        # One field after another, in this order: it decides which reason a record with
        # several faults is rejected for, and the order of its flags.
        occurred_at = self._occurred_at(raw, habits, flags, status)
        person = self._person(raw, flags, status)
        country = self._country(raw, flags, status)
        money = self._money(raw, habits, country, flags, status)
        items = _items(raw.get(names.items), self._plausible.items)
        duration = self._duration(raw, habits, flags, status)
        payment_method = self._payment_method(raw, flags, status)
        app_version = _optional(raw, names.version, status)
        return {
            "event_id": event_id,
            "source": source,
            "occurred_at": occurred_at,
            **person,
            "country": country,
            **money,
            "items": items,
            **duration,
            "payment_method": payment_method,
            "app_version": app_version,
            "quality_flags": flags,
            "field_status": status,
        }

    def _check_text_lengths(self, raw: Mapping[str, Any]) -> None:
        limit = self._plausible.text_chars
        for name, value in raw.items():
            if isinstance(value, str) and len(value) > limit:
                raise EventRejected(
                    "text_too_long", f"{name} has {len(value)} characters; at most {limit}"
                )

    def _occurred_at(
        self, raw: Mapping[str, Any], habits: SourceHabits, flags: list[str], status: dict[str, str]
    ) -> int:
        value = raw.get(self._names.occurred_at)
        if value is None:
            raise EventRejected("invalid_time", f"{self._names.occurred_at} is missing")
        if habits.time_format != "local":
            return canonical.epoch_to_ms(value, habits.time_format)
        zone = _optional(raw, self._names.tz, status)
        if zone is None:
            if habits.default_tz is None:
                raise EventRejected("unknown_timezone", "a local time without a tz field value")
            zone = habits.default_tz
            status[self._names.tz] = "defaulted"
            flags.append("tz_defaulted")
        ms, time_flags = canonical.local_to_ms(value, str(zone))
        flags.extend(time_flags)
        return ms

    def _person(self, raw: Mapping[str, Any], flags: list[str], status: dict[str, str]) -> _Person:
        names = self._names
        customer_id = _optional_text(raw, names.customer_id, status)
        email_raw = _optional_text(raw, names.email, status)
        email = canonical.normalize_email(email_raw) if email_raw is not None else None
        if email_raw is not None and email is None:
            status[names.email] = "invalid"
            flags.append("email_invalid")
        email_hash = canonical.keyed_hash(self._pii_key, email) if email else None
        entity_key = self._entity_key(raw, email_hash)
        if customer_id is None:
            flags.append("guest")
        given: str | None = None
        family: str | None = None
        name_raw = _optional_text(raw, names.name, status)
        if name_raw is not None and self.spec.pii.get(names.name, "keep") != "drop":
            given, family, name_flags = canonical.person_name(name_raw)
            flags.extend(name_flags)
            if canonical.NAME_INVALID in name_flags:
                status[names.name] = "invalid"
        return {
            "entity_key": entity_key,
            "customer_id": customer_id,
            "email_hash": email_hash if self.spec.pii.get(names.email) != "drop" else None,
            "given_name": given,
            "family_name": family,
        }

    def subject_entity(self, field: str, value: str) -> str | None:
        """The entity key of an order identified only by `field` = `value` (a customer id, a
        guest's e-mail): whose data an erasure of that subject removes. None when `field` is
        not a declared part of the entity key, or `value` is no valid one."""
        if field not in {part.field for part in self.spec.entity_key}:
            return None
        email_hash = None
        if field == self._names.email:
            email = canonical.normalize_email(value)
            email_hash = canonical.keyed_hash(self._pii_key, email) if email else None
        return self._entity_key({field: value}, email_hash)

    def _entity_key(self, raw: Mapping[str, Any], email_hash: str | None) -> str | None:
        """The first declared part with a value, with its prefix."""
        for part in self.spec.entity_key:
            if part.field == self._names.email:
                value = email_hash
            else:
                text = raw.get(part.field)
                value = str(text).strip() if text is not None else None
                if value and self.spec.pii.get(part.field) == "hash":
                    value = canonical.keyed_hash(self._pii_key, value)
            if value:
                return part.prefix + value
        return None

    def _country(self, raw: Mapping[str, Any], flags: list[str], status: dict[str, str]) -> str:
        value = _optional_text(raw, self._names.country, status)
        if value is None:
            status[self._names.country] = "defaulted"
            flags.append("country_defaulted")
            return self.spec.home_country
        return canonical.country_code(value, self.spec.country_aliases)

    def _money(
        self,
        raw: Mapping[str, Any],
        habits: SourceHabits,
        country: str,
        flags: list[str],
        status: dict[str, str],
    ) -> _Money:
        names, money = self._names, self.spec.money
        amount = raw.get(names.amount)
        if not canonical.is_number(amount) or not amount >= 0:
            raise EventRejected("invalid_amount", f"{names.amount} must be ≥ 0, got {amount!r}")
        currency = _required_text(raw, names.currency).upper()
        to_eur = money.rates_to_eur.get(currency)
        if to_eur is None:
            raise EventRejected("unknown_currency", f"no rate to EUR for {currency!r}")
        if currency != "EUR":
            flags.append("currency_converted")
        amount_eur = amount * to_eur + 0.0  # -0.0 is ≥ 0, but no canonical amount
        # net or gross, past the maximum already: absurd whatever the tax rate (or its lack)
        check_range(amount_eur, self._plausible.amount_gross_eur, "invalid_amount", "amount")
        includes_tax = _optional(raw, names.tax_included, status)
        if includes_tax is None:
            if habits.tax_included is None:
                raise EventRejected("unknown_tax_inclusion", f"{names.tax_included} is null")
            includes_tax = habits.tax_included
            status[names.tax_included] = "defaulted"
        rate = _optional(raw, names.tax_rate, status)
        if rate is not None:
            check_range(rate, self._plausible.tax_rate, "invalid_tax_rate", names.tax_rate)
        else:
            rate = money.tax_rates.get(country)
            if rate is None:
                raise EventRejected("unknown_tax_rate", f"no tax rate given or known for {country}")
            status[names.tax_rate] = "defaulted"
            flags.append("tax_defaulted")
        net, gross = canonical.net_and_gross(amount_eur, bool(includes_tax), rate)
        check_range(gross, self._plausible.amount_gross_eur, "invalid_amount", "amount in EUR")
        return {
            "amount_net_eur": net,
            "amount_gross_eur": gross,
            "tax_rate": float(rate),
            "currency": currency,
        }

    def _duration(
        self, raw: Mapping[str, Any], habits: SourceHabits, flags: list[str], status: dict[str, str]
    ) -> _Duration:
        value = _optional(raw, self._names.session_duration, status)
        if value is None or habits.duration_unit is None:
            flags.append("session_duration_missing")
            return {"session_duration_s": None, "session_duration_missing": True}
        if not canonical.is_number(value):
            raise EventRejected("invalid_duration", f"session_duration {value!r} is no number")
        if habits.duration_unit != "s":
            flags.append("unit_converted")
        seconds = float(value) * canonical.UNIT_SECONDS[habits.duration_unit]
        self.check_duration(seconds)
        return {"session_duration_s": seconds, "session_duration_missing": False}

    def check_duration(self, seconds: float) -> None:
        """A session within the plausible range (also after a unit-switch correction)."""
        check_range(seconds, self._plausible.session_duration_s, "invalid_duration", "session (s)")

    def _payment_method(
        self, raw: Mapping[str, Any], flags: list[str], status: dict[str, str]
    ) -> str | None:
        value = _optional_text(raw, self._names.payment_method, status)
        if value is None:
            return None
        method = value.strip().lower()
        if self._payment_methods and method not in self._payment_methods:
            flags.append("payment_method_unknown")
        return method


def check_range(value: object, bounds: tuple[float, float], reason: str, name: str) -> None:
    """A finite number within [min, max], else the record is rejected with `reason`."""
    low, high = bounds
    if not canonical.is_number(value) or not low <= value <= high:  # NaN fails both comparisons
        raise EventRejected(reason, f"{name} is {value!r}, outside the plausible [{low}, {high}]")


def _optional(raw: Mapping[str, Any], field: str, status: dict[str, str]) -> Any:
    if field not in raw:
        status[field] = "absent"
        return None
    value = raw[field]
    if value is None:
        status[field] = "null"
    return value


def _optional_text(raw: Mapping[str, Any], field: str, status: dict[str, str]) -> str | None:
    value = _optional(raw, field, status)
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        status[field] = "null"
        return None
    return text


def _required_text(raw: Mapping[str, Any], field: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value.strip():
        raise EventRejected("missing_required", f"{field} is required, got {value!r}")
    return value.strip()


def _items(value: object, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventRejected("invalid_items", f"items must be a whole number, got {value!r}")
    check_range(value, bounds, "invalid_items", "items")
    return value
