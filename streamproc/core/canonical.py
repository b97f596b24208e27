"""Core: canonical forms of single values: times, names, e-mails, countries, money.

Each function is pure and deterministic; repeated inputs (names, e-mails of returning
customers) are cached, since a stream sees the same values again and again.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import unicodedata
import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TypeGuard

from nameparser import HumanName

from streamproc.errors import EventRejected

# Durations in seconds per unit: the units a source declares, or sends instead.
UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
_EPOCH_FACTORS_TO_MS = {"epoch_s": 1000, "epoch_ms": 1, "epoch_us": 0.001}
# The ISO 3166-1 alpha-2 codes assigned today (249, as of ISO/TC 46 N1127, 2024-02-29), and
# XK: Kosovo's user-assigned code, which the EU, banks and card schemes use.
COUNTRY_CODES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL
    GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM
    JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP
    NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD
    SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK
    """.split()  # noqa: SIM905 - 250 codes read best as a block
)
# Times outside this range are a unit mistake (seconds read as ms, say), not real orders.
EARLIEST_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
LATEST_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z


def epoch_to_ms(value: object, time_format: str) -> int:
    """An epoch number in the declared unit → UTC epoch ms."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventRejected(
            "invalid_time", f"expected an epoch number ({time_format}), got {value!r}"
        )
    ms = round(value * _EPOCH_FACTORS_TO_MS[time_format])
    return check_plausible(ms, f"{value!r} read as {time_format}")


def is_number(value: object) -> TypeGuard[float]:
    """A finite int or float (a bool is no number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_plausible(ms: int, what: str) -> int:
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise EventRejected(
            "implausible_time", f"{what} is {ms} ms, outside 2000–2100: a wrong time unit?"
        )
    return ms


def local_to_ms(value: object, zone_name: str) -> tuple[int, list[str]]:
    """A wall-clock time without offset in an IANA zone → UTC epoch ms, and flags.

    The one rule for clock changes: a wall time in a gap (spring forward) is read with the
    offset in force before the change, so it lands as far after the gap's start as it claims
    (02:30 in Berlin on 2026-03-29 → 01:30 UTC); flagged tz_gap. A wall time in a fold (fall
    back) is read as its first occurrence; flagged tz_ambiguous.
    """
    if not isinstance(value, str):
        raise EventRejected("invalid_time", f"expected a local ISO time string, got {value!r}")
    try:
        wall = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise EventRejected("invalid_time", f"{value!r} is not an ISO date-time") from exc
    flags = ["tz_localized"]
    if wall.tzinfo is not None:  # an explicit offset wins over the zone
        return check_plausible(_ms(wall), value), ["tz_offset_given"]
    zone = _zone(zone_name)
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        round_trip = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        flags.append("tz_gap" if round_trip != wall else "tz_ambiguous")
    return check_plausible(_ms(first), value), flags


def _ms(moment: datetime) -> int:
    delta: timedelta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


@lru_cache(maxsize=512)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    # OSError: a name the file system refuses as a path (a folder such as "Europe", too long)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise EventRejected("unknown_timezone", f"{name!r} is not an IANA time zone") from exc


# The Unicode categories no name is made of: controls, format characters (zero-width, direction
# overrides), unassigned, private use, surrogates, and symbols (emoji among them).
_NAME_DROPPED = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Sc", "Sk", "Sm", "So"})
NAME_INVALID = "name_invalid"  # a name without a single letter: no name at all


@lru_cache(maxsize=65_536)
def person_name(raw: str) -> tuple[str | None, str | None, tuple[str, ...]]:
    """'Ada Lovelace', 'ada lovelace' or 'LOVELACE, Ada' → ('Ada', 'Lovelace'), with flags."""
    text, removed = _name_characters(raw)
    text = " ".join(text.split())
    if not any(char.isalpha() for char in text):
        return None, None, (NAME_INVALID,) if text or removed else ()
    name = HumanName(text)
    name.capitalize(force=True)
    given = " ".join(part for part in (name.first, name.middle) if part) or None
    family = name.last or None
    flags = []
    if removed:
        flags.append("name_chars_removed")
    if "," in text:
        flags.append("name_reordered")
    if text.isupper() or text.islower():
        flags.append("name_recased")
    return given, family, tuple(flags)


def _name_characters(raw: str) -> tuple[str, bool]:
    """`raw` without those characters (each a space; an invisible format one nothing), and
    whether any were there."""
    if raw.isascii() and raw.isprintable():  # the common case, nothing to look at
        return raw, False
    kept: list[str] = []
    for char in raw:
        category = unicodedata.category(char)
        if char.isspace() or category not in _NAME_DROPPED:
            kept.append(char)
        elif category != "Cf":
            kept.append(" ")
    text = "".join(kept)
    return text, text != raw


def normalize_email(raw: str) -> str | None:
    """Trimmed and lower-cased; None when it cannot be an address."""
    email = raw.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email:
        return None
    return email


@lru_cache(maxsize=65_536)
def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256, hex: the same value and key give the same pseudonym; no key, no reversal."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def country_code(raw: str, aliases: dict[str, str]) -> str:
    """An assigned ISO 3166 alpha-2 code, after the pipeline's aliases (UK → GB)."""
    code = raw.strip()
    if code.isascii():  # upper-casing first would make 'ß' the code SS
        code = code.upper()
        code = aliases.get(code, code)
    if code not in COUNTRY_CODES:
        raise EventRejected("invalid_country", f"{raw!r} is not an ISO 3166 alpha-2 code")
    return code


def net_and_gross(amount: float, includes_tax: bool, rate: float) -> tuple[float, float]:
    """The amount on both sides of tax; the given side is kept exact."""
    if includes_tax:
        return amount / (1 + rate), amount
    return amount, amount * (1 + rate)
