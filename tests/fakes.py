"""Fakes for unit and component tests (the real adapters are tested in contract/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from streamproc.errors import EventRejected
from streamproc.records import OutRecord


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


class HeldAcksSender:
    """A BatchSender whose broker acks only when the test says so: `submitted` holds every
    batch handed over; each batch's `refused()` waits for `acked`, then refuses nothing."""

    def __init__(self) -> None:
        self.submitted: list[list[OutRecord]] = []
        self.acked = asyncio.Event()

    async def submit(self, records: Sequence[OutRecord]) -> _HeldAcks:
        self.submitted.append(list(records))
        return _HeldAcks(self.acked)


class _HeldAcks:
    def __init__(self, acked: asyncio.Event) -> None:
        self._acked = acked

    async def refused(self) -> dict[int, EventRejected]:
        await self._acked.wait()
        return {}
