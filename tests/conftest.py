"""Fixtures shared by every suite: the repo's schema catalog and a serde over it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamproc.adapters.avro.registry import EmbeddedRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.adapters.avro.serde import AvroSerde

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load(REPO / "schemas")


@pytest.fixture(scope="session")
def serde(catalog: SchemaCatalog) -> AvroSerde:
    return AvroSerde(catalog, EmbeddedRegistry(catalog))


def unavailable(message: str) -> None:
    """Skip a test whose real service is missing, except under CI=true, where it fails."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: tests against real services must not skip)")
    pytest.skip(message)
