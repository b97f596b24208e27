"""An ACL user and password in the URL reach the stores (STREAMPROC_REDIS_URL)."""

from __future__ import annotations

import uuid

import pytest
import redis

from streamproc.adapters.redis.stores import RedisFeatureStore, delete_namespace, redis_client
from streamproc.core.features.state import EntityWrite
from streamproc.errors import InfraError
from tests.integration.conftest import Stack


async def test_an_acl_user_in_the_url_works_within_its_keys_and_is_refused_outside(
    stack: Stack,
) -> None:
    admin = redis.Redis.from_url(stack.redis_url)
    user, password, namespace = f"it-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, "acl-test"
    admin.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=[f"{namespace}:*"], commands=["+@all"]
    )
    host_port = stack.redis_url.split("://", 1)[1]
    try:
        client = redis_client(f"redis://{user}:{password}@{host_port}")
        store = RedisFeatureStore(client, namespace)
        await store.save([EntityWrite("k", {"o|0": None}, {"o|0": "1"}, [], 60_000)], 1)
        assert await store.load(["k"]) == {"k": {"o|0": "1"}}
        await client.aclose()
        outsider = redis_client(f"redis://{user}:{password}@{host_port}")
        denied = RedisFeatureStore(outsider, "elsewhere")  # outside the user's key pattern
        try:
            with pytest.raises(InfraError, match="no permissions"):
                await denied.load(["k"])
        finally:
            await outsider.aclose()
    finally:
        admin.acl_deluser(user)
        delete_namespace(stack.redis_url, namespace)
        admin.close()
