"""Fixtures shared by every suite: the repo's schema catalog and a serde over it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
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


# The one thread of ours that lasts as long as the process: the snapshot thread.
_LASTING_THREADS = ("streamproc-snapshots",)


@pytest.fixture(scope="module", autouse=True)
def _no_thread_of_ours_outlives_its_module() -> Iterator[None]:
    """A test module leaves no thread of the service's running: one that goes on serving a
    client after its test (a sender never closed) logs into streams pytest has closed, and
    its tracebacks, printed as the main thread parses code, broke a later test (CPython
    3.11's "AST constructor recursion depth mismatch")."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5  # time to finish for threads told to stop
    while left := sorted(
        thread.name
        for thread in set(threading.enumerate()) - before
        if thread.name.startswith("streamproc-") and not thread.name.startswith(_LASTING_THREADS)
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"threads left running by this module: {', '.join(left)}")
        time.sleep(0.1)
