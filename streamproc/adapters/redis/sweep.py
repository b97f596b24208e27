"""Adapter: deleting a namespace's keys from a Redis that serves others too: SCAN and UNLINK
in slices, so no call blocks it for long."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from redis.asyncio.cluster import RedisCluster

from streamproc.adapters.redis.client import REDIS_ERRORS, AnyRedis, redis_client, redis_failure
from streamproc.config.connections import TlsFiles, redact_url

_UNLINK_SLICE = 1_000  # keys per UNLINK: each call blocks Redis for only a moment


async def unlink_matching(
    client: AnyRedis, match: str, keep: Callable[[str], bool] | None = None
) -> int:
    """UNLINK every key matching the SCAN pattern `match` but those `keep` keeps; how many
    there were. Redis' errors are the caller's to word."""
    deleted, keys = 0, []
    async for raw in client.scan_iter(match=match, count=10_000):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        if keep is None or not keep(key):
            keys.append(key)
        if len(keys) >= _UNLINK_SLICE:
            deleted += await _unlink(client, keys)
            keys = []
    if keys:
        deleted += await _unlink(client, keys)
    return deleted


async def _unlink(client: AnyRedis, keys: list[str]) -> int:
    if isinstance(client, RedisCluster):  # keys of many slots: one at a time
        return sum([int(await client.unlink(key)) for key in keys])
    return int(await client.unlink(*keys))


def delete_namespace(
    url: str, namespace: str, cluster: bool = False, tls: TlsFiles | None = None
) -> int:
    """Delete every key under `namespace:` (a finished demo, benchmark or test); blocks.
    Callable from inside an event loop too: it sweeps in a loop of its own thread."""

    async def sweep() -> int:
        client = redis_client(url, cluster, tls)
        try:
            return await unlink_matching(client, f"{namespace}:*")
        except REDIS_ERRORS as exc:
            where = f"Redis at {redact_url(url)}: cannot delete {namespace}:*"
            raise redis_failure(where, exc) from exc
        finally:
            await client.aclose()

    with ThreadPoolExecutor(1, thread_name_prefix="redis-sweep") as pool:
        return pool.submit(asyncio.run, sweep()).result()
