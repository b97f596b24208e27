"""Ports that every layer above names and no core type is needed to state (the stores that
speak in core types are declared beside them: SeenStore in core.dedupe, FeatureStore in
core.features.state, UnitStatsStore in core.unitswitch, ServedLog in stages.scored)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Codec(Protocol):
    """Turns record values into dicts and back (the Avro serde at the edge implements it)."""

    def decode(self, data: bytes | None, expected_name: str | None = None) -> dict[str, Any]: ...

    def encode(self, topic: str, schema_name: str, record: Mapping[str, Any]) -> bytes: ...
