"""The local stack the scripts start: a KRaft broker that refuses auto-creation, a bare Redis."""

from __future__ import annotations

import redis
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from tests.integration.conftest import Stack


def test_redis_answers_and_keeps_no_snapshot(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.redis_url)
    assert client.ping()
    client.set("streamproc:it:probe", "1", ex=10)
    assert client.get("streamproc:it:probe") == b"1"


def test_kafka_broker_does_not_create_topics_by_accident(stack: Stack) -> None:
    admin = AdminClient({"bootstrap.servers": stack.bootstrap})
    metadata = admin.list_topics(timeout=10)
    broker_id = next(iter(metadata.brokers))
    resource = ConfigResource(ResourceType.BROKER, str(broker_id))
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["auto.create.topics.enable"].value == "false"
