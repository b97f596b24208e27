"""`streamproc topics apply` against the real broker: idempotent, and honest about drift."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamproc import cli
from tests.integration.conftest import Stack


def _apply(monkeypatch: pytest.MonkeyPatch, stack: Stack, topics_dir: Path) -> int:
    monkeypatch.setenv("STREAMPROC_KAFKA_BOOTSTRAP", stack.bootstrap)
    monkeypatch.setenv("STREAMPROC_TOPICS_DIR", str(topics_dir))
    # New partitions get leaders within seconds, but a 2-core CI box running the broker under
    # the whole suite once took more than the default 15 s: this test is about idempotence.
    monkeypatch.setenv("STREAMPROC_KAFKA_TIMEOUT_S", "60")
    return cli.main(["topics", "apply"])


def _declare(folder: Path, name: str, partitions: int, retention_ms: int) -> None:
    (folder / f"{name}.yaml").write_text(
        f"name: {name}\npartitions: {partitions}\nretention_ms: {retention_ms}\n"
        "dlq:\n  retention_ms: 1000000\n"
    )


def test_apply_twice_then_nothing_to_change(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"it.topics.{uuid.uuid4().hex[:10]}"
    _declare(tmp_path, name, 3, 3_600_000)

    assert _apply(monkeypatch, stack, tmp_path) == 0
    first = capsys.readouterr().out
    assert f"create {name}: 3 partitions" in first
    assert f"create {name}.dlq: 3 partitions" in first
    # apply returns only once the new partitions serve requests: clients can start at once.
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"it-{name}"})
    try:
        for partition in range(3):
            assert consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=5) == (
                0,
                0,
            )
    finally:
        consumer.close()

    assert _apply(monkeypatch, stack, tmp_path) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_config_changes_are_applied_and_drift_is_reported(
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = f"it.topics.{uuid.uuid4().hex[:10]}"
    _declare(tmp_path, name, 2, 3_600_000)
    assert _apply(monkeypatch, stack, tmp_path) == 0
    capsys.readouterr()

    _declare(tmp_path, name, 2, 7_200_000)
    assert _apply(monkeypatch, stack, tmp_path) == 0
    assert f"alter {name}: retention.ms '3600000' -> '7200000'" in capsys.readouterr().out
    assert _apply(monkeypatch, stack, tmp_path) == 0
    assert "nothing to change" in capsys.readouterr().out

    _declare(tmp_path, name, 4, 7_200_000)
    assert _apply(monkeypatch, stack, tmp_path) == cli.EXIT_DRIFT
    err = capsys.readouterr().err
    assert f"{name}: 2 partitions in the cluster, 4 declared" in err


def test_repo_topics_exist_as_declared(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _apply(monkeypatch, stack, Path(__file__).resolve().parents[2] / "topics") == 0
    assert "nothing to change" in capsys.readouterr().out
