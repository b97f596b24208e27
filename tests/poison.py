"""Poison input for the clean stage: one malformed raw order per class, built on the wire, with
the one outcome the stage must reach for it (a DLQ reason, or clean with its flags). Shared by
tests/component/test_poison_input.py, the fuzz and benchmarks/poison_bench.py."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastavro import parse_schema, schemaless_writer

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from tests.builders import ORDER_SUBMITTED, order

RAW_TOPIC = "shop.order.v1"
MB = 1_000_000
# What the base order below is flagged with: its tax rate is the country's, and no unit
# reference exists yet for its session duration.
BASE_FLAGS = frozenset({"tax_defaulted", "unit_unverified"})
_CLEAN_ORDER = {
    "event_id": "e-clean",
    "source": "web",
    "entity_key": None,
    "customer_id": None,
    "given_name": None,
    "family_name": None,
    "email_hash": None,
    "country": "DE",
    "amount_net_eur": 100.0,
    "amount_gross_eur": 119.0,
    "tax_rate": 0.19,
    "currency": "EUR",
    "items": 2,
    "occurred_at": 1_774_746_000_000,
    "session_duration_s": None,
    "session_duration_missing": True,
    "payment_method": None,
    "app_version": None,
}


def zigzag(number: int) -> bytes:
    """An Avro long: zig-zag, then a varint of 7 bits a byte (numbers of any size)."""
    unsigned = number * 2 if number >= 0 else -number * 2 - 1
    out = bytearray()
    while unsigned > 0x7F:
        out.append(unsigned & 0x7F | 0x80)
        unsigned >>= 7
    out.append(unsigned)
    return bytes(out)


def base(**overrides: Any) -> dict[str, Any]:
    """A web order that is clean as it is: a known customer, the country's tax rate."""
    return order(**{"customer_id": "c-poison", **overrides})


class Wire:
    """Raw orders as bytes, written right, or wrong on purpose."""

    def __init__(self, serde: AvroSerde, catalog: SchemaCatalog) -> None:
        self.serde = serde
        self.header = serde.encode(RAW_TOPIC, ORDER_SUBMITTED, base())[:5]
        written = catalog.writer_for(ORDER_SUBMITTED, base().keys())  # the header's version
        self._loose = parse_schema(_ints_as_longs(written.definition))

    def order(self, **overrides: Any) -> bytes:
        """The base order with `overrides`, framed."""
        return self.serde.encode(RAW_TOPIC, ORDER_SUBMITTED, base(**overrides))

    def body(self, **overrides: Any) -> bytes:
        """The Avro body alone (no frame) of the base order with `overrides`."""
        return self.order(**overrides)[5:]

    def loose(self, **overrides: Any) -> bytes:
        """Framed with the order's ids, its ints written as longs: an int past 32 bits on the
        wire (the bytes are the same for an int in range)."""
        out = io.BytesIO()
        schemaless_writer(out, self._loose, base(**overrides))
        return self.header + out.getvalue()

    def framed(self, body: bytes, schema_id: int | None = None) -> bytes:
        """`body` behind a frame: the order's schema id, or `schema_id`."""
        header = self.header if schema_id is None else struct.pack(">BI", 0, schema_id)
        return header + body

    def replaced(self, old: bytes, new: bytes, **overrides: Any) -> bytes:
        """The framed base order with the bytes `old` replaced by `new`, once."""
        data = self.order(**overrides)
        assert data.count(old) == 1, old
        return data.replace(old, new)

    def cut_in(self, field_bytes: bytes, inside: int, **overrides: Any) -> bytes:
        """The framed base order cut `inside` bytes into the bytes `field_bytes` of a field."""
        data = self.order(**overrides)
        return data[: data.index(field_bytes) + inside]

    def clean_order(self, tail: bytes) -> bytes:
        """An OrderClean (what the feature step reads) whose quality_flags and field_status,
        empty, end it: `tail` replaces their two end-of-blocks bytes."""
        data = self.serde.encode(
            "shop.order.clean.v1",
            "shop.OrderClean",
            {**_CLEAN_ORDER, "quality_flags": [], "field_status": {}},
        )
        assert data.endswith(b"\x00\x00")
        return data[:-2] + tail

    def outcome(self) -> bytes:
        """A label (shop.OrderOutcome), framed with its own schema id."""
        label = {"event_id": "e1", "is_fraud": True, "occurred_at": 1_774_746_000_000}
        return self.serde.encode("shop.order_outcome.v1", "shop.OrderOutcome", label)


def _ints_as_longs(schema: Any) -> Any:
    if schema == "int":
        return "long"
    if isinstance(schema, list):
        return [_ints_as_longs(branch) for branch in schema]
    if isinstance(schema, Mapping):
        return {key: _ints_as_longs(value) for key, value in schema.items()}
    return schema


@dataclass(frozen=True)
class Poison:
    """One class of bad input and what must become of it."""

    name: str
    build: Callable[[Wire], bytes | None]
    reason: str | None = None  # the DLQ reason; None: the order comes out clean
    flags: frozenset[str] = BASE_FLAGS  # a clean order's quality flags, all of them
    expect: Mapping[str, Any] = field(default_factory=dict)  # a clean order's values


def dlq(name: str, build: Callable[[Wire], bytes | None], reason: str) -> Poison:
    return Poison(name, build, reason)


def clean(
    name: str,
    build: Callable[[Wire], bytes | None],
    flags: frozenset[str] = BASE_FLAGS,
    expect: Mapping[str, Any] | None = None,
) -> Poison:
    return Poison(name, build, None, flags, expect or {})


def sent(**overrides: Any) -> Callable[[Wire], bytes]:
    """The base order with `overrides`, framed right: a value that is wrong, not its bytes."""
    return lambda wire: wire.order(**overrides)


def at_till(**overrides: Any) -> Callable[[Wire], bytes]:
    """A till's order (pos: a local wall time, its zone in tz) with `overrides`."""
    return sent(**{"source": "pos", "occurred_at": "2026-03-01T10:00:00", **overrides})


def first_bytes(count: int) -> Callable[[Wire], bytes]:
    """The first `count` bytes of the base order."""
    return lambda wire: wire.order()[:count]


_OCCURRED = zigzag(1_774_746_000_000)  # the base order's time: a 6-byte varint
_NAME = b"\x02\x18Ada Lovelace"  # customer_name: union branch 1 (string), 12 bytes, the text
_AMOUNT = struct.pack("<d", 119.0)
NAN, INF = float("nan"), float("inf")

FRAMING: list[Poison] = [
    dlq("no-value-tombstone", lambda w: None, "not_wire_format"),
    *(dlq(f"{n}-bytes", first_bytes(n), "not_wire_format") for n in range(5)),
    dlq("5-bytes-header-only", lambda w: w.header, "truncated"),
    dlq("bad-magic-byte", lambda w: b"\x01" + w.order()[1:], "not_wire_format"),
    dlq("magic-byte-0xff", lambda w: b"\xff" + w.order()[1:], "not_wire_format"),
    dlq("json-not-avro", lambda w: b'{"event_id": "e1", "amount": 1}', "not_wire_format"),
    dlq("unknown-schema-id", lambda w: w.framed(w.body(), 123_456_789), "unknown_schema_id"),
    dlq("another-schema-by-id", lambda w: w.outcome(), "schema_mismatch"),
    # a label's body framed as an order: its is_fraud byte (1) reads as a length of -1
    dlq("another-schema-body", lambda w: w.framed(w.outcome()[5:]), "schema_mismatch"),
    dlq("clean-order-on-raw-topic", lambda w: w.clean_order(b"\x00\x00"), "schema_mismatch"),
    dlq("trailing-garbage", lambda w: w.order() + b"\x00\x01garbage", "schema_mismatch"),
]
BODY: list[Poison] = [
    dlq("cut-in-a-string", lambda w: w.cut_in(b"Ada Lovelace", 4), "truncated"),
    dlq("cut-in-a-varint", lambda w: w.cut_in(_OCCURRED, 3), "truncated"),
    dlq("cut-in-a-double", lambda w: w.cut_in(_AMOUNT, 5), "truncated"),
    dlq("cut-before-the-last-field", lambda w: w.order()[:-6], "truncated"),
    dlq("length-negative", lambda w: w.framed(zigzag(-5) + b"abcde"), "schema_mismatch"),
    dlq("length-minus-2^62", lambda w: w.framed(zigzag(-(2**62)) + b"a"), "schema_mismatch"),
    dlq("length-2^40", lambda w: w.framed(zigzag(2**40) + b"abc"), "truncated"),
    dlq("length-claims-10MB", lambda w: w.framed(zigzag(10 * MB) + b"abc"), "truncated"),
    dlq("union-index-5", lambda w: w.replaced(_NAME, b"\x0a" + _NAME[1:]), "schema_mismatch"),
    dlq(
        "union-index-2^40",
        lambda w: w.replaced(_NAME, zigzag(2**40) + _NAME[1:]),
        "schema_mismatch",
    ),
    dlq("utf8-invalid-byte", lambda w: w.replaced(b"Ada L", b"A\xffa L"), "schema_mismatch"),
    dlq("utf8-surrogate", lambda w: w.replaced(b"Ada L", b"\xed\xa0\x80 L"), "schema_mismatch"),
    dlq("utf8-overlong", lambda w: w.replaced(b"Ada L", b"\xc0\xafa L"), "schema_mismatch"),
    dlq("int-past-32-bits", lambda w: w.loose(items=2**40), "schema_mismatch"),
    dlq("int-past-32-bits-in-union", lambda w: w.loose(app_version=-(2**40)), "schema_mismatch"),
    dlq("10MB-message", sent(customer_name="x" * 10 * MB), "text_too_long"),
    dlq(
        "10MB-invalid-utf8",  # the error must not quote the 10 MB it failed on
        lambda w: w.order(customer_name="\xff" * 5 * MB).replace(b"\xc3\xbf", b"\xff\xc3"),
        "schema_mismatch",
    ),
]
VALUES: list[Poison] = [
    dlq("amount-nan", sent(amount=NAN), "invalid_amount"),
    dlq("amount-inf", sent(amount=INF), "invalid_amount"),
    dlq("amount-minus-inf", sent(amount=-INF), "invalid_amount"),
    dlq("amount-negative", sent(amount=-1.0), "invalid_amount"),
    dlq("amount-max-double-in-usd", sent(amount=1.7e308, currency="USD"), "invalid_amount"),
    dlq("tax-rate-nan", sent(tax_rate=NAN), "invalid_tax_rate"),
    dlq("tax-rate-negative", sent(tax_rate=-0.1), "invalid_tax_rate"),
    dlq("session-inf", sent(session_duration=INF), "invalid_duration"),
    dlq("session-nan", sent(session_duration=NAN), "invalid_duration"),
    dlq("session-negative", sent(session_duration=-1.0), "invalid_duration"),
    dlq("epoch-ms-1900", sent(occurred_at=-2_208_988_800_000), "implausible_time"),
    dlq("epoch-ms-3000", sent(occurred_at=32_503_680_000_000), "implausible_time"),
    dlq("epoch-us-for-ms", sent(occurred_at=1_774_746_000_000_000), "implausible_time"),
    dlq("epoch-ns-for-ms", sent(occurred_at=1_774_746_000_000_000_000), "implausible_time"),
    dlq("epoch-ms-for-s", sent(source="app", occurred_at=1_774_746_000_000), "implausible_time"),
    dlq("epoch-long-max", sent(occurred_at=2**63 - 1), "implausible_time"),
    dlq("local-1900", at_till(occurred_at="1900-01-01T12:00:00"), "implausible_time"),
    dlq("local-3000", at_till(occurred_at="3000-01-01T12:00:00"), "implausible_time"),
    dlq(
        "local-year-9999-in-kiritimati",
        at_till(occurred_at="9999-12-31T23:59:59", tz="Pacific/Kiritimati"),
        "implausible_time",
    ),
    dlq("local-not-iso", at_till(occurred_at="31.12.2026 10:00"), "invalid_time"),
    dlq("local-offset-25h", at_till(occurred_at="2026-03-01T10:00:00+25:00"), "invalid_time"),
    dlq("tz-mars", at_till(tz="Mars/Olympus"), "unknown_timezone"),
    dlq("tz-a-folder", at_till(tz="Europe"), "unknown_timezone"),
    dlq("tz-300-chars", at_till(tz="A" * 300), "unknown_timezone"),
    dlq("tz-a-path", at_till(tz="../../etc/passwd"), "unknown_timezone"),
    dlq("tz-nul", at_till(tz="Europe/Ber\x00lin"), "unknown_timezone"),
    dlq("currency-xxx", sent(currency="XXX"), "unknown_currency"),
    dlq("currency-btc", sent(currency="BTC"), "unknown_currency"),
    dlq("currency-empty", sent(currency=""), "missing_required"),
    dlq("items-negative", sent(items=-1), "invalid_items"),
    dlq("items-zero", sent(items=0), "invalid_items"),
    dlq("items-int-max", sent(items=2**31 - 1), "invalid_items"),
    dlq("country-zz", sent(country="ZZ", tax_rate=0.2), "invalid_country"),
    dlq("country-eszett", sent(country="ß", tax_rate=0.2), "invalid_country"),  # 'ß'.upper()
    dlq("country-flag-emoji", sent(country="🇩🇪"), "invalid_country"),
    dlq("source-unknown", sent(source="fax"), "unknown_source"),
    dlq("event-id-empty", sent(event_id=""), "missing_required"),
    dlq("name-513-chars", sent(customer_name="x" * 513), "text_too_long"),
]
_REMOVED = BASE_FLAGS | {"name_chars_removed"}
_INVALID = BASE_FLAGS | {"name_invalid"}
_ADA = {"given_name": "Ada", "family_name": "Lovelace"}
_NO_NAME = {"given_name": None, "family_name": None}
CLEANED: list[Poison] = [
    clean("amount-minus-zero", sent(amount=-0.0), expect={"amount_gross_eur": 0.0}),
    clean(
        "every-optional-field-set",  # as deep as the raw order's schema goes: each union's value
        sent(
            source="app",
            occurred_at=1_774_746_000,
            amount_includes_tax=False,
            tax_rate=0.2,
            country="fr",
            email="a@b.org",
            app_version=4,
            session_duration=60_000.0,
            tz="UTC",
        ),
        BASE_FLAGS - {"tax_defaulted"} | {"unit_converted"},
        {"tax_rate": 0.2, "app_version": 4, "session_duration_s": 60.0, "country": "FR"},
    ),  # fmt: skip
    clean("name-comma", sent(customer_name=","), _INVALID, _NO_NAME),
    clean("name-spaced-comma", sent(customer_name=" , "), _INVALID, _NO_NAME),
    clean("name-empty", sent(customer_name=""), BASE_FLAGS, _NO_NAME),
    clean("name-emoji-only", sent(customer_name="😀 🎉"), _INVALID, _NO_NAME),
    clean("name-with-emoji", sent(customer_name="Ada 😀Lovelace"), _REMOVED, _ADA),
    clean("name-rtl-override", sent(customer_name="\u202eAda Lovelace\u202c"), _REMOVED, _ADA),
    clean("name-zero-width", sent(customer_name="Ada\u200b Love\u200dlace\ufeff"), _REMOVED, _ADA),
    clean("name-zero-width-only", sent(customer_name="\u200b\u200d\ufeff"), _INVALID, _NO_NAME),
    clean("name-nul", sent(customer_name="Ada\x00Lovelace"), _REMOVED, _ADA),
    clean(
        "name-arabic",
        sent(customer_name="محمد علي"),
        BASE_FLAGS,
        {"given_name": "محمد", "family_name": "علي"},
    ),
    clean("name-json-nested", sent(customer_name="[" * 256 + "]" * 256), _INVALID, _NO_NAME),
    clean(
        "payment-json-nested",
        sent(payment_method='{"a":' * 100),
        BASE_FLAGS | {"payment_method_unknown"},
    ),
    clean("email-json-nested", sent(email='{"a":' * 100), BASE_FLAGS | {"email_invalid"}),
    clean("event-id-zero-width", sent(event_id="\u200b"), BASE_FLAGS, {"event_id": "\u200b"}),
    clean(
        "local-time-default-zone",
        at_till(session_duration=None),
        frozenset({"tax_defaulted", "tz_localized", "tz_defaulted", "session_duration_missing"}),
        {"occurred_at": 1_772_355_600_000},
    ),
]
POISON = [*FRAMING, *BODY, *VALUES, *CLEANED]
