"""Fixtures shared by every suite: the repo's schema catalog and a serde over it."""

from __future__ import annotations

import logging
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


@pytest.fixture(autouse=True)
def _logging_handlers_as_before() -> Iterator[None]:
    """A test that sets logging up in-process (a CLI's `main` does) leaves a root handler
    on the stream pytest captured for that test, closed once it ends. Any later record,
    from any thread, then prints a "Logging error" traceback, and Python 3.11's traceback
    code parses source to place its carets: from a client's thread, at the moment the main
    thread parses code too, that broke a later test (CPython 3.11's "AST constructor
    recursion depth mismatch"). pytest's own handlers come and go by themselves."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in before]:
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    root.setLevel(level)


# The service's threads, and the fault harness's of one case (load, monitor, watch,
# supervisor), none of which may outlive its module; but the one thread of ours that lasts
# as long as the process: the snapshot thread.
_GUARDED_THREADS = ("streamproc-", "fault-")
_LASTING_THREADS = ("streamproc-snapshots",)


@pytest.fixture(scope="module", autouse=True)
def _no_thread_of_ours_outlives_its_module() -> Iterator[None]:
    """A test module leaves no thread of the service's or a fault case's running: one that
    goes on serving a client after its test (a sender never closed) logs on, from its
    thread, while later tests run (see _logging_handlers_as_before)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5  # time to finish for threads told to stop
    while left := sorted(
        thread.name
        for thread in set(threading.enumerate()) - before
        if thread.name.startswith(_GUARDED_THREADS) and not thread.name.startswith(_LASTING_THREADS)
    ):
        if time.monotonic() > deadline:
            pytest.fail(f"threads left running by this module: {', '.join(left)}")
        time.sleep(0.1)
