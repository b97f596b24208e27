"""A Confluent-compatible registry's compatibility check, from our client and the `schemas
check` command: v1 and v2 registered under the raw topic's subject, v3 refused.

The registry is tests/harness/registry.py's stand-in (no real registry runs on this machine);
set STREAMPROC_TEST_REGISTRY_URL to run the same tests against a real one as well (each test
uses a subject of its own there)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamproc.adapters.avro.registry import ConfluentRegistry
from streamproc.adapters.avro.schemas import SchemaCatalog, load_schema_file
from streamproc.cli import parser as cli
from streamproc.errors import InfraError
from tests.builders import ORDER_SUBMITTED
from tests.conftest import REPO
from tests.harness.registry import registry_server

V3 = REPO / "tests/fixtures/schemas/shop.OrderSubmitted.v3.avsc"
REAL = os.environ.get("STREAMPROC_TEST_REGISTRY_URL")


@pytest.fixture(params=["stand-in", "real"])
def registry_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "real":
        if not REAL:
            pytest.skip("no real registry: set STREAMPROC_TEST_REGISTRY_URL")
        yield REAL
        return
    with registry_server() as (url, _state):
        yield url


@pytest.fixture
def topic() -> str:
    return f"shop.order.evolution-{uuid.uuid4().hex[:8]}"  # a subject of its own


def _register_v1_and_v2(registry: ConfluentRegistry, catalog: SchemaCatalog, topic: str) -> None:
    v1, v2 = catalog.versions(ORDER_SUBMITTED)
    ids = [registry.id_for(topic, v1), registry.id_for(topic, v2)]
    assert ids[0] != ids[1]
    assert [registry.writer_schema(i) for i in ids] != [None, None]


def test_the_registry_takes_v1_then_v2_and_refuses_v3(
    registry_url: str, catalog: SchemaCatalog, topic: str
) -> None:
    registry = ConfluentRegistry.from_url(registry_url)
    _register_v1_and_v2(registry, catalog, topic)
    subject = f"{topic}-value"
    v2 = catalog.latest(ORDER_SUBMITTED)
    assert registry.compatibility(subject, v2.definition).compatible is True
    verdict = registry.compatibility(subject, load_schema_file(V3).definition)
    assert verdict.compatible is False
    assert "sales_channel" in " ".join(verdict.messages)
    with pytest.raises(
        InfraError, match=f"schema registry refused shop.OrderSubmitted for {topic}"
    ):
        registry.id_for(topic, load_schema_file(V3))


def test_a_subject_without_versions_has_nothing_to_check_against(
    registry_url: str, catalog: SchemaCatalog, topic: str
) -> None:
    registry = ConfluentRegistry.from_url(registry_url)
    verdict = registry.compatibility(f"{topic}-value", catalog.latest(ORDER_SUBMITTED).definition)
    assert verdict.compatible is None and verdict.messages


def test_an_unreachable_registry_is_an_infra_error(catalog: SchemaCatalog) -> None:
    with registry_server() as (url, _state):
        pass  # closed: nothing listens there now
    registry = ConfluentRegistry.from_url(url, {"timeout": 2})
    with pytest.raises(InfraError, match="schema registry unreachable"):
        registry.compatibility("x-value", catalog.latest(ORDER_SUBMITTED).definition)


@pytest.fixture
def configured(
    registry_url: str,
    catalog: SchemaCatalog,
    topic: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """v1 and v2 registered for `topic`, which a topics folder of its own declares as the
    carrier of shop.OrderSubmitted; the command's settings point at both. Returns the topic."""
    _register_v1_and_v2(ConfluentRegistry.from_url(registry_url), catalog, topic)
    folder = tmp_path / "topics"
    folder.mkdir()
    (folder / f"{topic}.yaml").write_text(
        f"name: {topic}\npartitions: 1\nretention_ms: 3600000\nvalue_schema: {ORDER_SUBMITTED}\n"
    )
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("STREAMPROC_SCHEMA_REGISTRY_URL", registry_url)
    monkeypatch.setenv("STREAMPROC_TOPICS_DIR", str(folder))
    return topic


def test_schemas_check_reports_the_registrys_verdict(
    configured: str, capsys: pytest.CaptureFixture[str]
) -> None:
    subject = f"{configured}-value"
    assert cli.main(["schemas", "check"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out  # the folder's newest versions are asked about: v2 fits
    assert f"ok   registry: shop.OrderSubmitted v2 is compatible with subject {subject}" in out

    assert cli.main(["schemas", "check", "--candidate", str(V3)]) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert "FAIL shop.OrderSubmitted v3" in err  # refused here,
    assert f"FAIL registry refuses shop.OrderSubmitted v3 for subject {subject}: " in err
    assert "sales_channel" in err.split("FAIL registry refuses")[1]  # and by the registry
