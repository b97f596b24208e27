"""Adapter: the serving pointer (core/serving.py) and the versions of a deployment, in Redis.

`<base>:serving` is a hash naming the serving version; every change is one script call that
applies only if the pointer still reads what the change was decided on (two operators
promoting at once: one wins, the other is told). `<base>:versions` is a hash of the versions
a replay started, each with what it replays (JSON), for `streamproc versions`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any, cast

from streamproc.adapters.redis.calls import timed_call
from streamproc.adapters.redis.client import REDIS_ERRORS, AnyRedis, redis_failure
from streamproc.adapters.redis.sweep import unlink_matching
from streamproc.config.deployment import serving_key, version_namespace
from streamproc.core.serving import Serving

# KEYS: the pointer. ARGV: the promoted_at_ms it must still hold ('0' for no pointer), then
# field, value pairs of the new pointer. Returns 1 if written, 0 if it had changed.
_SWAP_SCRIPT = """
local now = redis.call('HGET', KEYS[1], 'promoted_at_ms') or '0'
if now ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""
# Keys under a base namespace that belong to no version's state: the pointer, the versions.
_DEPLOYMENT_KEYS = ("serving", "versions")


class PointerMoved(Exception):
    """The pointer changed between its read and the write decided on it."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisServingPointer:
    """The pointer of the deployment under `base`."""

    def __init__(self, client: AnyRedis, base: str) -> None:
        self._client = client
        self._key = serving_key(base)
        self._swap = client.register_script(_SWAP_SCRIPT)

    async def read(self) -> Serving:
        try:
            with timed_call("serving_pointer"):
                raw = cast(dict[Any, Any], await self._client.hgetall(self._key))
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis serving pointer read failed", exc) from exc
        values = {_text(k): _text(v) for k, v in raw.items()}
        if not values:
            return Serving()
        return Serving(
            version=values["version"],
            previous=values.get("previous", ""),
            cutover_ms=int(values.get("cutover_ms", 0)),
            promoted_at_ms=int(values.get("promoted_at_ms", 0)),
            retire_at_ms=int(values.get("retire_at_ms", 0)),
            retired=values.get("retired", ""),
        )

    async def replace(self, read: Serving, new: Serving) -> None:
        """Write `new` if the pointer still is `read`; PointerMoved otherwise."""
        expected = str(read.promoted_at_ms)
        pairs = [str(item) for pair in asdict(new).items() for item in pair]
        try:
            written = await self._swap(keys=[self._key], args=[expected, *pairs])
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis serving pointer write failed", exc) from exc
        if not int(written):
            raise PointerMoved(f"{self._key} changed meanwhile")


class RedisVersions:
    """The versions replays started under `base`, and dropping one's namespace."""

    def __init__(self, client: AnyRedis, base: str) -> None:
        self._client = client
        self._base = base
        self._key = f"{base}:versions"

    async def record(self, version: str, about: dict[str, Any]) -> None:
        try:
            await self._client.hset(self._key, version, json.dumps(about, sort_keys=True))
        except REDIS_ERRORS as exc:
            raise redis_failure(f"Redis: recording version {version} failed", exc) from exc

    async def all(self) -> dict[str, dict[str, Any]]:
        try:
            raw = cast(dict[Any, Any], await self._client.hgetall(self._key))
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis: reading the versions failed", exc) from exc
        return {_text(k): json.loads(_text(v)) for k, v in sorted(raw.items())}

    async def about(self, version: str) -> dict[str, Any] | None:
        """What was recorded of one version; None if nothing was."""
        try:
            raw = await self._client.hget(self._key, version)
        except REDIS_ERRORS as exc:
            raise redis_failure(f"Redis: reading version {version} failed", exc) from exc
        return None if raw is None else cast(dict[str, Any], json.loads(_text(raw)))

    async def drop(self, version: str) -> int:
        """UNLINK every key of `version`'s namespace (v1's: the base's own keys, never
        another version's nor the pointer), in slices; how many there were."""
        namespace = version_namespace(self._base, version)
        not_v1s = re.compile(
            rf"^{re.escape(self._base)}:(v[0-9]+|{'|'.join(_DEPLOYMENT_KEYS)})(:|$)"
        )
        keep = (lambda key: bool(not_v1s.match(key))) if namespace == self._base else None
        try:
            deleted = await unlink_matching(self._client, f"{namespace}:*", keep=keep)
            await self._client.hdel(self._key, version)
        except REDIS_ERRORS as exc:
            raise redis_failure(f"Redis: dropping {namespace}:* failed", exc) from exc
        return deleted
