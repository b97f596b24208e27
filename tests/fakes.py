"""Fakes for unit and component tests (the real adapters are tested in contract/integration)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ExplodingCodec:
    """A codec whose decode fails with a bug-like error for one marked value."""

    def __init__(self, inner: Any, poison: bytes) -> None:
        self._inner = inner
        self._poison = poison

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]:
        if data == self._poison:
            raise RuntimeError("a bug in a step")
        decoded: dict[str, Any] = self._inner.decode(data, expected_name)
        return decoded

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes:
        encoded: bytes = self._inner.encode(topic, schema_name, record)
        return encoded
