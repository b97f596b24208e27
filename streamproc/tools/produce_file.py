"""Tool: `streamproc produce`: a JSON-lines or CSV file checked row by row against a topic's
value schema, then its valid rows encoded and sent. The file is read twice, to check it and
then to send it, so that no row is held in memory, whatever its size."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamproc.adapters.kafka.producer import Sent, send_records
from streamproc.config.kafka import KafkaConnection
from streamproc.config.topics import TopicSpec
from streamproc.errors import ConfigError
from streamproc.scenario.shop import producer_key
from streamproc.tools.rows import FORMATS, Format, Row, Shape, checked_rows

Key = Callable[[Mapping[str, Any]], bytes | None]
# How the producers of a record type key it, when --key names no field.
_PRODUCER_KEYS: dict[str, Key] = {"shop.OrderSubmitted": producer_key}


@dataclass(frozen=True, slots=True)
class FileToSend:
    """A file, how to read it, the record type its rows must be, and where and with which
    key they go."""

    path: Path
    kind: Format
    shape: Shape
    topic: str
    key: Key


@dataclass(slots=True)
class Checked:
    """What the check found: how many rows are fit to send, how many bad."""

    valid: int = 0
    invalid: int = 0


def value_schema(topic: str, specs: list[TopicSpec]) -> str:
    """The record type `topic` is declared to carry; ConfigError naming the ones that can
    be produced to otherwise."""
    spec = next((spec for spec in specs if spec.name == topic), None)
    if spec is None or spec.value_schema is None:
        producible = ", ".join(spec.name for spec in specs if spec.value_schema)
        why = "is not declared" if spec is None else "declares no value_schema"
        raise ConfigError(
            f"topic {topic} {why} in topics/*.yaml; topics to produce to: {producible}"
        )
    return spec.value_schema


def file_format(path: Path, given: Format | None) -> Format:
    kind = given or FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path}: say --format jsonl or csv (or name it {', '.join(sorted(FORMATS))})"
        )
    return kind


def record_key(shape: Shape, field_name: str | None) -> Key:
    """The producer key: the value of `field_name` as text (none when null), else the key the
    record type's producers use, else none."""
    if field_name is None:
        return _PRODUCER_KEYS.get(shape.name, lambda _record: None)
    if field_name not in shape.fields:
        raise ConfigError(
            f"--key {field_name}: no such field; {shape.name} has {', '.join(shape.fields)}"
        )

    def key(record: Mapping[str, Any]) -> bytes | None:
        value = record.get(field_name)  # a field of one schema version may be another's absent
        if value is None:
            return None
        return (value if isinstance(value, str) else json.dumps(value)).encode()

    return key


def check(source: FileToSend, on_invalid: Callable[[Row], None]) -> Checked:
    """Every row checked, `on_invalid` told of each bad one as it is found; BadFile for a
    header that does not fit."""
    checked = Checked()
    for row in _rows(source):
        if row.record is None:
            checked.invalid += 1
            on_invalid(row)
        else:
            checked.valid += 1
    return checked


def send(
    kafka: KafkaConnection,
    source: FileToSend,
    encode: Callable[[Mapping[str, Any]], bytes],
    on_ack: Callable[[], None],
) -> Sent:
    """The file's valid rows, encoded and sent, every ack waited for."""
    records = (
        (source.topic, source.key(row.record), encode(row.record), None)
        for row in _rows(source)
        if row.record is not None
    )
    return send_records(kafka, records, on_ack=on_ack)


def _rows(source: FileToSend) -> Iterator[Row]:
    try:
        with source.path.open("rb") as lines:
            yield from checked_rows(lines, source.kind, source.shape)
    except OSError as exc:
        raise ConfigError(f"{source.path}: cannot read it: {exc.strerror or exc}") from exc
