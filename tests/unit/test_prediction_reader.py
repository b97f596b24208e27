"""The SDK's prediction reader against a fake consumer: committed reads only, records decoded to
OrderPrediction, each batch committed once the caller asks for the next, and never one the
caller's loop left."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamproc.adapters.avro.serde import AvroSerde
from streamproc.avro_records import OrderPrediction
from streamproc.errors import InfraError
from streamproc.producer import PREDICTIONS_TOPIC, PredictionReader, Schemas, UnknownTopic
from streamproc.producer import reader as reader_module
from tests.conftest import REPO

SCHEMAS = Schemas(REPO / "schemas")


def prediction(event_id: str) -> OrderPrediction:
    return {
        "event_id": event_id,
        "entity_key": "c-1",
        "fraud_probability": 0.25,
        "model_name": "logreg",
        "model_version": 3,
        "occurred_at": 1_774_746_000_000,
        "predicted_at": 1_774_746_000_100,
        "feature_freshness_ms": None,
        "feature_status": "fresh",
        "latency_ms": 12,
    }


class FakeMessage:
    def __init__(self, value: bytes | None, error: KafkaError | None = None) -> None:
        self._value, self._error = value, error

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> KafkaError | None:
        return self._error


class FakeConsumer:
    """Hands out the `fetches` in turn (then nothing), and counts the commits: `commits[i]`
    is how many fetches had been handed out at commit i."""

    def __init__(self, fetches: list[list[FakeMessage]]) -> None:
        self.fetches = fetches
        self.subscribed: list[str] = []
        self.handed = 0
        self.commits: list[int] = []
        self.closed = False

    def subscribe(self, topics: list[str]) -> None:
        self.subscribed = topics

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.handed == len(self.fetches):
            return []
        self.handed += 1
        return self.fetches[self.handed - 1][:num_messages]

    def commit(self, *, asynchronous: bool) -> object:
        assert asynchronous is False
        if self.commits and self.commits[-1] == self.handed:
            raise KafkaException(KafkaError(KafkaError._NO_OFFSET))
        self.commits.append(self.handed)
        return []

    def close(self) -> None:
        self.closed = True


def _fetches(serde: AvroSerde, *sizes: int) -> list[list[FakeMessage]]:
    encode = serde.encode
    return [
        [
            FakeMessage(encode(PREDICTIONS_TOPIC, "shop.OrderPrediction", prediction(f"{b}-{i}")))
            for i in range(size)
        ]
        for b, size in enumerate(sizes)
    ]


def test_the_consumer_reads_committed_records_only_and_commits_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[dict[str, Any]] = []

    def consumer(config: dict[str, Any]) -> FakeConsumer:
        made.append(config)
        return FakeConsumer([])

    monkeypatch.setattr(reader_module, "Consumer", consumer)
    PredictionReader("127.0.0.1:9092", "fraud-desk", SCHEMAS, start="earliest")
    (config,) = made
    assert config["isolation.level"] == "read_committed"
    assert config["enable.auto.commit"] is False
    assert config["group.id"] == "fraud-desk"
    assert config["auto.offset.reset"] == "earliest"
    assert config["bootstrap.servers"] == "127.0.0.1:9092"


def test_predictions_come_decoded_and_each_batch_is_committed_when_the_next_is_asked(
    serde: AvroSerde,
) -> None:
    consumer = FakeConsumer(_fetches(serde, 2, 1))
    reader = PredictionReader("127.0.0.1:9092", "g", SCHEMAS, client=consumer)
    assert consumer.subscribed == [PREDICTIONS_TOPIC]
    batches = reader.batches(idle_timeout_s=0)
    first = next(batches)
    assert first == [prediction("0-0"), prediction("0-1")]
    assert consumer.commits == []  # the caller is handling it
    assert next(batches) == [prediction("1-0")]
    assert consumer.commits == [1]  # the first fetch, not the second
    assert list(batches) == []  # idle: the loop ends, the last batch committed
    assert consumer.commits == [1, 2]


def test_a_batch_the_loop_leaves_is_not_committed(serde: AvroSerde) -> None:
    consumer = FakeConsumer(_fetches(serde, 1, 1))
    reader = PredictionReader("127.0.0.1:9092", "g", SCHEMAS, client=consumer)

    def handle(batch: list[OrderPrediction]) -> None:
        raise RuntimeError("the caller's handler failed")

    with pytest.raises(RuntimeError), reader:
        for batch in reader.batches():
            handle(batch)
    assert consumer.commits == []
    assert consumer.closed


def test_commit_after_read_and_again_with_nothing_new(serde: AvroSerde) -> None:
    consumer = FakeConsumer(_fetches(serde, 3))
    reader = PredictionReader("127.0.0.1:9092", "g", SCHEMAS, client=consumer)
    assert len(reader.read(max_records=10, timeout_s=0)) == 3
    reader.commit()
    reader.commit()  # nothing read since: not an error
    assert consumer.commits == [1]


def test_a_missing_topic_is_unknown_and_other_errors_are_infrastructure() -> None:
    missing = FakeMessage(None, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
    consumer = FakeConsumer([[missing], [FakeMessage(None, KafkaError(KafkaError._TRANSPORT))]])
    reader = PredictionReader("127.0.0.1:9092", "g", SCHEMAS, client=consumer)
    with pytest.raises(UnknownTopic, match=PREDICTIONS_TOPIC):
        reader.read()
    with pytest.raises(InfraError, match=PREDICTIONS_TOPIC):
        reader.read()
