"""Wire format: round trips, every decode failure reason, and schema evolution on read."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde
from streamproc.errors import DecodeError
from tests.builders import ORDER_SUBMITTED, as_decoded, order, order_v2, orders

TOPIC = "shop.order.v1"


def test_frame_is_magic_byte_then_big_endian_schema_id(
    serde: AvroSerde, catalog: SchemaCatalog
) -> None:
    v1, v2 = catalog.versions(ORDER_SUBMITTED)
    for record, written in ((order(), v1), (order_v2(), v2)):
        data = serde.encode(TOPIC, ORDER_SUBMITTED, record)
        magic, schema_id = struct.unpack(">bI", data[:5])
        assert magic == 0
        assert schema_id == written.fingerprint_id  # the version the record's fields fit


@settings(max_examples=200, deadline=None)
@given(record=orders)
def test_round_trip_returns_the_record(serde: AvroSerde, record: dict[str, Any]) -> None:
    decoded = serde.decode(serde.encode(TOPIC, ORDER_SUBMITTED, record), ORDER_SUBMITTED)
    assert decoded == as_decoded(record)  # written as v1, read as v2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "not_wire_format"),
        (b"", "not_wire_format"),
        (b"\x00\x00\x00", "not_wire_format"),
        (b'{"event_id": "json, not avro"}', "not_wire_format"),
        (b"\x00\x7f\xff\xff\xfe" + b"\x02a", "unknown_schema_id"),
    ],
)
def test_bad_frames_are_rejected_with_a_reason(
    serde: AvroSerde, data: bytes | None, reason: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        serde.decode(data, ORDER_SUBMITTED)
    assert caught.value.reason == reason


def test_a_cut_body_is_truncated(serde: AvroSerde) -> None:
    data = serde.encode(TOPIC, ORDER_SUBMITTED, order())
    for cut in (6, len(data) // 2, len(data) - 1):
        with pytest.raises(DecodeError) as caught:
            serde.decode(data[:cut], ORDER_SUBMITTED)
        assert caught.value.reason == "truncated", cut


def test_another_schema_on_the_topic_is_a_mismatch(serde: AvroSerde) -> None:
    outcome = {"event_id": "e1", "is_fraud": False, "occurred_at": 1}
    data = serde.encode("shop.order_outcome.v1", "shop.OrderOutcome", outcome)
    with pytest.raises(DecodeError) as caught:
        serde.decode(data, ORDER_SUBMITTED)
    assert caught.value.reason == "schema_mismatch"
    assert "shop.OrderOutcome" in caught.value.message


def test_trailing_bytes_are_a_mismatch(serde: AvroSerde) -> None:
    data = serde.encode(TOPIC, ORDER_SUBMITTED, order()) + b"\x00\x01"
    with pytest.raises(DecodeError) as caught:
        serde.decode(data, ORDER_SUBMITTED)
    assert caught.value.reason == "schema_mismatch"


def test_a_body_of_another_shape_is_a_mismatch(serde: AvroSerde, catalog: SchemaCatalog) -> None:
    header = struct.pack(">bI", 0, catalog.latest(ORDER_SUBMITTED).fingerprint_id)
    # A string length prefix of 0x7e (63 chars) followed by 3 bytes: ends early or garbles.
    for body in (b"\x7e" + b"abc", b"\x02\xff\xfe"):
        with pytest.raises(DecodeError) as caught:
            serde.decode(header + body, ORDER_SUBMITTED)
        assert caught.value.reason in {"truncated", "schema_mismatch"}


def _write_schema(folder: Path, version: int, extra_fields: list[dict[str, Any]]) -> None:
    schema = {
        "type": "record",
        "name": "Thing",
        "namespace": "test",
        "fields": [{"name": "id", "type": "string"}, *extra_fields],
    }
    (folder / f"test.Thing.v{version}.avsc").write_text(json.dumps(schema))


def test_old_records_are_read_with_the_newest_version(tmp_path: Path) -> None:
    _write_schema(tmp_path, 1, [])
    v1_catalog = SchemaCatalog.load(tmp_path)
    old_bytes = AvroSerde(v1_catalog, EmbeddedRegistry(v1_catalog)).encode(
        "t", "test.Thing", {"id": "a"}
    )

    _write_schema(tmp_path, 2, [{"name": "colour", "type": "string", "default": "blue"}])
    v2_catalog = SchemaCatalog.load(tmp_path)
    decoded = AvroSerde(v2_catalog, EmbeddedRegistry(v2_catalog)).decode(old_bytes, "test.Thing")

    assert decoded == {"id": "a", "colour": "blue"}
