"""The fault harness's servers: a broker killed and restarted keeps its data; a redis-server
restarted without persistence comes back empty."""

from __future__ import annotations

from pathlib import Path

import redis
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streamproc.adapters.kafka.producer import produce_all
from streamproc.config.kafka import KafkaConnection
from tests.harness.processes import KafkaBroker, RedisServer


def test_a_killed_broker_restarts_with_its_records(tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path / "kafka").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("t", 1, 1)])["t"].result(30)
        assert (
            produce_all(
                KafkaConnection(broker.bootstrap), "t", [(b"k", b"v%d" % i, None) for i in range(5)]
            )
            == 5
        )
        broker.restart(down_s=1)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition("t", 0), timeout=30)
        finally:
            consumer.close()
        assert (low, high) == (0, 5)
    finally:
        broker.kill()


def test_a_restarted_redis_without_persistence_is_empty(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        server.restart()
        assert client.get("k") is None
        client.close()
    finally:
        server.kill()
