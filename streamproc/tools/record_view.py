"""Tool (no I/O): a consumed record as the JSON object `streamproc tail` prints a line of and
`dlq inspect` samples: where it is, its time, key, headers as text, and its value decoded. A
value that does not decode is shown with the error and its bytes in base64, never raised."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from streamproc.errors import EventRejected
from streamproc.records import Envelope, Headers

Decode = Callable[[bytes], dict[str, Any]]  # a framed value decoded, or EventRejected


def record_view(record: Envelope, decode: Decode) -> dict[str, Any]:
    """topic, partition, offset, timestamp (epoch ms) and time (UTC), key, headers and value;
    for a value that does not decode, value null, its `error` and `value_base64`."""
    view: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "time": _time(record.timestamp_ms),
        "key": _text(record.key),
        "headers": _headers(record.headers),
        "value": None,
    }
    if record.value is not None:
        try:
            view["value"] = decode(record.value)
        except EventRejected as error:  # a DecodeError, or a registry that lacks the id
            view["error"] = f"{error.reason}: {error}"
            view["value_base64"] = base64.b64encode(record.value).decode()
    return view


def json_line(view: dict[str, Any]) -> str:
    """One line of JSON (NaN and the infinities as null, which JSON has no word for)."""
    return orjson.dumps(view, default=_json_default).decode()


def _time(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    when = dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(data: bytes | None) -> str | dict[str, str] | None:
    """Bytes as UTF-8 text, or as {"base64": ...} when they are not text."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def _headers(headers: Headers) -> dict[str, Any]:
    """By name; a name that comes more than once has the list of its values."""
    shown: dict[str, Any] = {}
    for name, value in headers:
        text = _text(value)
        if name not in shown:
            shown[name] = text
        elif isinstance(shown[name], list):
            shown[name].append(text)
        else:
            shown[name] = [shown[name], text]
    return shown


def _json_default(value: Any) -> Any:
    """What Avro decodes that JSON has no type for: bytes, decimals."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
