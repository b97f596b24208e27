"""`topics apply` returns once new partitions serve requests, asks the broker afresh on every
try (never librdkafka's cache alone), and names the Kafka error of each partition it gave up
on."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streamproc.adapters.kafka import admin as kafka
from streamproc.adapters.kafka.admin import KafkaAdmin
from streamproc.config.kafka import KafkaConnection
from streamproc.config.topics import TopicSpec
from streamproc.errors import InfraError


@dataclass
class Partition:
    leader: int = 1
    error: KafkaError | None = None


@dataclass
class Topic:
    partitions: dict[int, Partition]
    error: KafkaError | None = None


@dataclass
class Metadata:
    topics: dict[str, Topic]


def _next(answers: list[Any]) -> Any:
    """The next try's answer; the last one stays."""
    return answers[0] if len(answers) == 1 else answers.pop(0)


@dataclass
class FakeAdminClient:
    """What the broker answers, try after try: per topic its metadata, and the error of an
    offsets request per partition (none: served)."""

    metadata: list[dict[str, Topic]]
    offsets: list[dict[tuple[str, int], int]] = field(default_factory=lambda: [{}])
    metadata_requests: list[str] = field(default_factory=list)

    def list_topics(self, topic: str, timeout: float) -> Metadata:
        self.metadata_requests.append(topic)
        return Metadata({topic: _next(self.metadata)[topic]})

    def list_offsets(self, requests: dict[TopicPartition, Any], **_: Any) -> dict[Any, Any]:
        errors = _next(self.offsets)
        futures: dict[Any, Any] = {}
        for asked in requests:
            future: Future[None] = Future()
            code = errors.get((asked.topic, asked.partition))
            if code is None:
                future.set_result(None)
            else:
                future.set_exception(KafkaException(KafkaError(code)))
            futures[asked] = future
        return futures

    def poll(self, timeout: float) -> int:
        return 0


def _admin(monkeypatch: pytest.MonkeyPatch, fake: FakeAdminClient, timeout_s: float) -> KafkaAdmin:
    monkeypatch.setattr(kafka, "AdminClient", lambda _config: fake)
    return KafkaAdmin(KafkaConnection("127.0.0.1:1"), timeout_s=timeout_s)


def _spec(name: str, partitions: int) -> TopicSpec:
    return TopicSpec(name, partitions, 1, {}, Path(f"{name}.yaml"))


def _served(partitions: int) -> Topic:
    return Topic({p: Partition() for p in range(partitions)})


def test_a_topic_unknown_at_first_is_waited_for_with_fresh_metadata(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unknown = Topic({}, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    fake = FakeAdminClient(metadata=[{"t": unknown}, {"t": unknown}, {"t": _served(2)}])

    _admin(monkeypatch, fake, timeout_s=10)._wait_until_usable([_spec("t", 2)])

    assert fake.metadata_requests == ["t", "t", "t"]


def test_a_leader_that_does_not_serve_yet_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAdminClient(
        metadata=[{"t": _served(2)}],
        offsets=[{("t", 1): KafkaError.NOT_LEADER_FOR_PARTITION}, {}],
    )

    _admin(monkeypatch, fake, timeout_s=10)._wait_until_usable([_spec("t", 2)])

    assert fake.metadata_requests == ["t", "t"]


def test_partitions_never_served_are_named_with_their_kafka_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_leader = Topic(
        {
            0: Partition(leader=-1),
            1: Partition(error=KafkaError(KafkaError.LEADER_NOT_AVAILABLE)),
            2: Partition(),
        }
    )
    fake = FakeAdminClient(
        metadata=[{"a": Topic({}, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)), "b": no_leader}],
        offsets=[{("b", 2): KafkaError.NOT_LEADER_FOR_PARTITION}],
    )

    with pytest.raises(InfraError) as raised:
        _admin(monkeypatch, fake, timeout_s=0.05)._wait_until_usable([_spec("a", 1), _spec("b", 3)])

    assert str(raised.value) == (
        "created partitions not served after 0s: a[0]: UNKNOWN_TOPIC_OR_PART, "
        "b[0]: LEADER_NOT_AVAILABLE, b[1]: LEADER_NOT_AVAILABLE, b[2]: NOT_LEADER_FOR_PARTITION"
    )
