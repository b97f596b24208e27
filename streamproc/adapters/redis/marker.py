"""Adapter: knowing that Redis still holds the deployment's state.

A Redis restarted without persistence, flushed, or replaced answers every call as if nothing
happened: features read as empty, dedupe forgets, and the service would go on serving wrong
numbers silently. So each namespace carries a marker, `<namespace>:state:epoch`, set when its
state begins, and the workers commit their offsets with that epoch as metadata. Every batch
checks the marker (one script call). Missing after a start, or missing at a start while the
committed offsets name an epoch, the state is lost: the first worker to see it records the
loss (`<namespace>:state:degraded`, with when and why) and a new epoch, in one script; every
worker then reports the state as degraded (log, metric, /readyz) until an operator has
rebuilt it by replay, or accepts it, and clears the mark (`streamproc state accept`).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from streamproc.adapters.redis.calls import timed_call
from streamproc.adapters.redis.client import REDIS_ERRORS, AnyRedis, redis_failure

log = logging.getLogger(__name__)

# KEYS: epoch, degraded. ARGV: a new epoch, the reason if the epoch is missing, and whether a
# missing epoch is a loss (0: a namespace's first start). Returns {epoch, degraded or ""}.
_CHECK_SCRIPT = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
  if ARGV[3] == '1' then redis.call('SET', KEYS[2], ARGV[2]) end
end
return {epoch, redis.call('GET', KEYS[2]) or ''}  -- '' : not degraded
"""


@dataclass(frozen=True, slots=True)
class StateMark:
    """What the marker says: the state's epoch, and why it is degraded ("" when it is not)."""

    epoch: str
    degraded: str


class RedisStateMarker:
    """The marker of one namespace (keys share a hash tag: one Redis Cluster slot)."""

    def __init__(self, client: AnyRedis, namespace: str) -> None:
        tag = f"{namespace}:state:{{{namespace}}}"
        self._keys = [f"{tag}:epoch", f"{tag}:degraded"]
        self._script = client.register_script(_CHECK_SCRIPT)
        self._client = client

    async def check(self, first_start: bool = False) -> StateMark:
        """The marker now; a missing one is recorded as a loss unless `first_start` (no
        consumer of the deployment has committed anything yet: there was no state)."""
        reason = (
            f"Redis lost this deployment's state (found without its marker at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}): features, dedupe memory "
            "and served vectors are incomplete until rebuilt by replay"
        )
        args = [uuid.uuid4().hex, reason, "0" if first_start else "1"]
        try:
            with timed_call("marker"):
                epoch, degraded = await self._script(keys=self._keys, args=args)
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis state marker check failed", exc) from exc
        return StateMark(_text(epoch), _text(degraded))

    async def read(self) -> StateMark | None:
        """The marker as it is, changing nothing; None when there is none."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key in self._keys:
                    pipe.get(key)
                epoch, degraded = await pipe.execute()
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis state marker read failed", exc) from exc
        if epoch is None:
            return None
        return StateMark(_text(epoch), _text(degraded) if degraded is not None else "")

    async def accept(self) -> bool:
        """Clear the degraded mark (the state was rebuilt, or is accepted as it is); whether
        it was set. An empty mark is no mark: the service's ACL user need not DEL."""
        mark = await self.read()
        try:
            await self._client.set(self._keys[1], "")
        except REDIS_ERRORS as exc:
            raise redis_failure("Redis state marker clear failed", exc) from exc
        return mark is not None and bool(mark.degraded)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
