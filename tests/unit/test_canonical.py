"""Canonical forms of single values: times, names, e-mails, countries, money."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamproc.core import canonical
from streamproc.errors import EventRejected

MAR_29_0130_UTC = 1_774_747_800_000  # 2026-03-29T01:30:00Z


@pytest.mark.parametrize(
    ("value", "time_format", "expected"),
    [
        (1_774_747_800, "epoch_s", MAR_29_0130_UTC),
        (1_774_747_800_123, "epoch_ms", MAR_29_0130_UTC + 123),
        (1_774_747_800_123_456, "epoch_us", MAR_29_0130_UTC + 123),
        (1_774_747_800.5, "epoch_s", MAR_29_0130_UTC + 500),
    ],
)
def test_epochs_in_any_unit_become_utc_ms(value: float, time_format: str, expected: int) -> None:
    assert canonical.epoch_to_ms(value, time_format) == expected


def test_seconds_declared_as_ms_are_implausible() -> None:
    with pytest.raises(EventRejected) as caught:
        canonical.epoch_to_ms(1_774_747_800, "epoch_ms")
    assert caught.value.reason == "implausible_time"


@pytest.mark.parametrize("value", ["1774747800", None, True])
def test_an_epoch_must_be_a_number(value: object) -> None:
    with pytest.raises(EventRejected) as caught:
        canonical.epoch_to_ms(value, "epoch_s")
    assert caught.value.reason == "invalid_time"


def test_local_time_is_localized_in_its_zone() -> None:
    ms, flags = canonical.local_to_ms("2026-03-28 14:00:00", "Europe/Berlin")
    assert ms == 1_774_702_800_000  # 13:00 UTC (CET, +01:00)
    assert flags == ["tz_localized"]


def test_a_wall_time_in_the_spring_gap_uses_the_offset_before_it() -> None:
    ms, flags = canonical.local_to_ms("2026-03-29 02:30:00", "Europe/Berlin")
    assert ms == MAR_29_0130_UTC
    assert "tz_gap" in flags


def test_a_wall_time_in_the_autumn_fold_is_its_first_occurrence() -> None:
    ms, flags = canonical.local_to_ms("2026-10-25 02:30:00", "Europe/Berlin")
    assert ms == 1_792_888_200_000  # 00:30 UTC, still CEST (+02:00)
    assert "tz_ambiguous" in flags


def test_an_explicit_offset_wins_over_the_zone() -> None:
    ms, flags = canonical.local_to_ms("2026-03-28T14:00:00+00:00", "Europe/Berlin")
    assert ms == 1_774_706_400_000
    assert flags == ["tz_offset_given"]


@pytest.mark.parametrize(
    ("value", "zone", "reason"),
    [
        ("yesterday", "Europe/Berlin", "invalid_time"),
        (1_774_747_800, "Europe/Berlin", "invalid_time"),
        ("2026-03-28 14:00:00", "Mars/Olympus_Mons", "unknown_timezone"),
    ],
)
def test_bad_local_times_are_rejected(value: object, zone: str, reason: str) -> None:
    with pytest.raises(EventRejected) as caught:
        canonical.local_to_ms(value, zone)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("raw", "given_name", "family", "flags"),
    [
        ("Ada Lovelace", "Ada", "Lovelace", ()),
        ("ada lovelace", "Ada", "Lovelace", ("name_recased",)),
        ("LOVELACE, Ada", "Ada", "Lovelace", ("name_reordered",)),
        ("  Grace   Brewster Hopper ", "Grace Brewster", "Hopper", ()),
        ("MÜLLER, Zoë", "Zoë", "Müller", ("name_reordered",)),
        ("   ", None, None, ()),
        (" , ", None, None, ("name_invalid",)),
        ("😀\u200b", None, None, ("name_invalid",)),
        ("Ada😀Lovelace\u200b", "Ada", "Lovelace", ("name_chars_removed",)),
    ],
)
def test_names_in_every_format_become_given_and_family(
    raw: str, given_name: str | None, family: str | None, flags: tuple[str, ...]
) -> None:
    assert canonical.person_name(raw) == (given_name, family, flags)


@given(st.sampled_from(["Ada Lovelace", "LOVELACE, Ada", "grace hopper", "Jean-Luc Picard"]))
def test_names_are_idempotent(raw: str) -> None:
    given_name, family, _ = canonical.person_name(raw)
    assert canonical.person_name(f"{given_name} {family}")[:2] == (given_name, family)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" Ada.Lovelace@Example.ORG ", "ada.lovelace@example.org"), ("nobody", None), ("a@b", None)],
)
def test_emails_are_trimmed_and_lower_cased(raw: str, expected: str | None) -> None:
    assert canonical.normalize_email(raw) == expected


@given(st.emails())
def test_email_normalization_is_idempotent(email: str) -> None:
    once = canonical.normalize_email(email)
    assert once is None or canonical.normalize_email(once) == once


def test_the_keyed_hash_depends_on_the_key() -> None:
    email = "ada@example.org"
    assert canonical.keyed_hash(b"k1", email) == canonical.keyed_hash(b"k1", email)
    assert canonical.keyed_hash(b"k1", email) != canonical.keyed_hash(b"k2", email)
    assert email not in canonical.keyed_hash(b"k1", email)


@pytest.mark.parametrize(("raw", "expected"), [(" de ", "DE"), ("Uk", "GB"), ("fr", "FR")])
def test_country_codes_are_upper_alpha2(raw: str, expected: str) -> None:
    assert canonical.country_code(raw, {"UK": "GB"}) == expected


@pytest.mark.parametrize("raw", ["Germany", "D", "1E", "ÄB", "ZZ", "ß", "ＤＥ"])
def test_other_country_values_are_rejected(raw: str) -> None:
    with pytest.raises(EventRejected) as caught:
        canonical.country_code(raw, {})
    assert caught.value.reason == "invalid_country"


def test_net_and_gross_keep_the_given_side() -> None:
    assert canonical.net_and_gross(119.0, True, 0.19) == pytest.approx((100.0, 119.0))
    assert canonical.net_and_gross(100.0, False, 0.19) == pytest.approx((100.0, 119.0))
