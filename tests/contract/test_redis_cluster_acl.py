"""The service's ACL on a Redis Cluster: with CLUSTER_COMMANDS added (docs/security.md), every
store works as the user on every node, with nothing refused; without them, none does."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import redis

from streamproc.adapters.redis.client import redis_client
from streamproc.errors import InfraError
from tests.harness.redis_acl import (
    CLUSTER_COMMANDS,
    SERVICE_COMMANDS,
    create_service_user,
    use_every_store,
)

NAMESPACE = "svc"


@pytest.fixture
def nodes(redis_cluster_url: str) -> Iterator[list[redis.Redis]]:
    """An admin connection to each node: ACL users are per node, as is the ACL log."""
    cluster = redis.RedisCluster.from_url(redis_cluster_url)
    found = cluster.get_nodes()  # type: ignore[no-untyped-call]
    each = [redis.Redis(host=node.host, port=node.port) for node in found]
    yield each
    for node in each:
        node.close()
    cluster.close()


def _user_on_every_node(nodes: list[redis.Redis], commands: tuple[str, ...]) -> tuple[str, str]:
    user, password = f"svc-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    for node in nodes:
        create_service_user(node, user, password, NAMESPACE, commands)
        node.script_flush()  # each node loads the scripts as the user
    return user, password


async def test_with_the_cluster_commands_every_store_works_with_nothing_refused(
    redis_cluster_url: str, nodes: list[redis.Redis]
) -> None:
    user, password = _user_on_every_node(nodes, SERVICE_COMMANDS + CLUSTER_COMMANDS)
    host_port = redis_cluster_url.split("://", 1)[1]
    client = redis_client(f"redis://{user}:{password}@{host_port}", cluster=True)
    try:
        await use_every_store(client, NAMESPACE)
    finally:
        await client.aclose()
    assert [e for node in nodes for e in node.acl_log() if e["username"] == user] == []


@pytest.mark.parametrize(
    ("command", "error"),
    [
        # redis-py takes the refused slot map for a node outside cluster mode
        ("cluster|slots", "a cluster user's ACL without +cluster|slots"),
        ("command", "no permissions to run the 'command' command"),
    ],
)
async def test_each_cluster_command_is_needed(
    redis_cluster_url: str, nodes: list[redis.Redis], command: str, error: str
) -> None:
    assert command in CLUSTER_COMMANDS
    granted = tuple(c for c in SERVICE_COMMANDS + CLUSTER_COMMANDS if c != command)
    user, password = _user_on_every_node(nodes, granted)
    host_port = redis_cluster_url.split("://", 1)[1]
    client = redis_client(f"redis://{user}:{password}@{host_port}", cluster=True)
    try:
        with pytest.raises(InfraError, match=re.escape(error)):
            await use_every_store(client, NAMESPACE)
    finally:
        await client.aclose()
