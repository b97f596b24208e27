"""`streamproc topics apply` against the real broker: idempotent, honest about drift, done
once new partitions serve; and a broker that is not there is one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec

from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.cli import parser as cli
from streamproc.config.topics import TopicSpec, load_topic_specs, plan_changes
from streamproc.errors import InfraError
from tests.conftest import REPO
from tests.integration.conftest import Stack, free_port


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
    assert _apply(monkeypatch, stack, tmp_path) == cli.EXIT_FAILURE
    err = capsys.readouterr().err
    assert f"{name}: 2 partitions in the cluster, 4 declared" in err


def test_repo_topics_exist_as_declared(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _apply(monkeypatch, stack, Path(__file__).resolve().parents[2] / "topics") == 0
    assert "nothing to change" in capsys.readouterr().out


def test_apply_waits_out_a_cached_unknown_topic(stack: Stack, tmp_path: Path) -> None:
    """The first offsets request after CreateTopics can reach the broker before it has applied
    the new topic. librdkafka then caches "unknown topic" and, behind the cluster-wide
    metadata `read_state` cached before, keeps it for metadata.max.age.ms (15 min): every
    later list_offsets failed at once with "No leaders found". Here that answer is cached on
    purpose, as the race leaves it."""
    name = f"it.topics.{uuid.uuid4().hex[:10]}"
    _declare(tmp_path, name, 2, 3_600_000)
    specs = load_topic_specs(tmp_path)
    admin = KafkaAdmin(stack.kafka, timeout_s=10)
    plan = plan_changes(specs, admin.read_state(specs))
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # unannotated in confluent-kafka
    early = admin._client.list_offsets({TopicPartition(name, 0): latest})
    with pytest.raises(KafkaException):
        early[TopicPartition(name, 0)].result(timeout=10)

    admin.apply(plan)


def test_partitions_never_served_are_named_with_their_error(stack: Stack) -> None:
    name = f"it.topics.never.{uuid.uuid4().hex[:10]}"
    admin = KafkaAdmin(stack.kafka, timeout_s=1)
    with pytest.raises(InfraError) as raised:
        admin._wait_until_usable([TopicSpec(name, 2, 1, {}, Path("never.yaml"))])
    assert f"{name}[0]: UNKNOWN_TOPIC_OR_PART" in str(raised.value)
    assert f"{name}[1]: UNKNOWN_TOPIC_OR_PART" in str(raised.value)


def test_a_broker_not_there_is_one_line_per_problem() -> None:
    """librdkafka printed each reconnect to stderr (one every 50 ms) before the error."""
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **os.environ,
        "STREAMPROC_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMPROC_KAFKA_TIMEOUT_S": "3",
        "STREAMPROC_TOPICS_DIR": str(REPO / "topics"),
        "STREAMPROC_LOG_LEVEL": "info",
    }
    result = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streamproc.cli", "topics", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    lines = result.stderr.splitlines()
    assert result.returncode == cli.EXIT_INFRA
    assert lines[-1].startswith(
        f"streamproc: infrastructure error: Kafka at {bootstrap} (PLAINTEXT) "
        "did not answer within 3s"
    ), result.stderr
    # a few lines as librdkafka's view of the brokers changes (2 to 4 seen), not one per
    # reconnect attempt (60 in the 3 s)
    assert len(lines) < 8, result.stderr
