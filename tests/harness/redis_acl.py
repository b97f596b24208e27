"""The Redis ACL of the service's user: the commands the worker and `streamproc features get`
issue, on the keys under its namespace only, and a run of every store that issues them all.
docs/security.md shows the same line (tests/unit/test_docs_security.py holds them together).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis

from streamproc.adapters.redis.client import AnyRedis
from streamproc.adapters.redis.served import RedisServedLog
from streamproc.adapters.redis.stores import (
    RedisFeatureStore,
    RedisLease,
    RedisSeenStore,
)
from streamproc.adapters.redis.units import RedisUnitStatsStore
from streamproc.core.dedupe import Claim, DedupeRules, Sighting
from streamproc.core.features.state import EntityWrite
from streamproc.core.training import ServedX
from streamproc.core.unitswitch import UnitSighting, UnitStatsUpdate

# Every command the stores send, and why. A Lua script runs with its caller's permissions,
# so the commands inside the scripts are listed as well.
SERVICE_COMMANDS: tuple[str, ...] = (
    "evalsha",  # every script call (redis-py sends the script's SHA1 first)
    "script|load",  # once per script and server, when EVALSHA answers NOSCRIPT
    "script|exists",  # a pipeline holding a script call (the served-x log) checks it first
    "get",  # scripts: dedupe, lease; served x fetch
    "set",  # scripts: dedupe, lease; served x log (SET NX PX)
    "hget",  # script: feature save (the offset guards)
    "hset",  # script: feature save
    "hdel",  # script: feature save (expired window slots)
    "hgetall",  # feature load; script: unit-switch state read back
    "hincrby",  # script: unit-switch counts
    "hsetnx",  # script: unit-switch steps and references (the first one stays)
    "pexpire",  # script: feature save, lease renewal
    "incr",  # script: lease epoch
    "zadd",  # served log: the partitions' watermarks; scripts: the erasure indexes
    "zrange",  # trainer: the watermark read
    "zremrangebyscore",  # scripts: expired entries of the erasure indexes
    "time",  # scripts: the erasure indexes' clock
)
# With STREAMPROC_REDIS_CLUSTER=true, redis-py reads the slot map and the command table.
CLUSTER_COMMANDS: tuple[str, ...] = ("cluster|slots", "command")
# `streamproc demo` and the benchmarks delete their namespace when done. SCAN lists key names
# outside the namespace too, so the service's own user does without these.
CLEANUP_COMMANDS: tuple[str, ...] = ("scan", "unlink")


def service_acl_rules(namespace: str, commands: Sequence[str] = SERVICE_COMMANDS) -> list[str]:
    """The ACL SETUSER rules after the user's name, `on` and password: keys under
    `namespace:` only, no Pub/Sub channels, no command but `commands`."""
    return [f"~{namespace}:*", "resetchannels", "-@all", *(f"+{command}" for command in commands)]


def reader_acl_rules(namespace: str) -> list[str]:
    """The rules of an operator who only reads features (`streamproc features get`): the
    feature hashes of every version, and the serving pointer and versions, read only."""
    return [
        f"~{namespace}:features:*",
        f"~{namespace}:v*:features:*",
        f"%R~{namespace}:serving",
        f"%R~{namespace}:versions",
        "resetchannels",
        "-@all",
        "+hgetall",
    ]


def acl_setuser_line(namespace: str) -> str:
    """The line an operator runs (redis-cli) for the user `streamproc`, as docs/security.md
    shows it; CHANGE-ME stands for the password."""
    return " ".join(["ACL SETUSER streamproc reset on >CHANGE-ME", *service_acl_rules(namespace)])


def create_service_user(
    admin: redis.Redis,
    user: str,
    password: str,
    namespace: str,
    commands: Sequence[str] = SERVICE_COMMANDS,
) -> None:
    """(Re)create `user` with the service's ACL; `reset` drops whatever it had before."""
    rules = service_acl_rules(namespace, commands)
    setuser = ("ACL", "SETUSER", user, "reset", "on", f">{password}", *rules)
    admin.execute_command(*setuser)  # type: ignore[no-untyped-call]


RULES = DedupeRules(window_ms=600_000, id_ttl_ms=3_600_000, content_ttl_ms=3_600_000)


async def use_every_store(client: AnyRedis, under: str) -> None:
    """Each store's operations once, taking every path that issues a command of its own
    (what the worker and `streamproc features get` do), and the answers they must give; in a
    namespace of their own under `under`."""
    namespace = f"{under}:{uuid.uuid4().hex[:8]}"
    seen = RedisSeenStore(client, f"{namespace}:shop")
    sighting = Sighting("e1", 0, 10, 1_000)
    first = [Claim(sighting, "fp", "c1")]
    assert [v.kind for v in await seen.claim(first, RULES)] == [None]
    again = [Claim(Sighting("e1", 1, 99, 1_000), "fp", "c1")]
    assert [(v.kind, v.first) for v in await seen.claim(again, RULES)] == [("retry", sighting)]

    units = RedisUnitStatsStore(client, f"{namespace}:shop")
    group = ("app", "session_duration", "5")
    await units.send(UnitStatsUpdate([UnitSighting(0, 1, group, 3)]))
    stats = await units.exchange(UnitStatsUpdate(steps={group: 60.0}, references={group[:2]: "4"}))
    assert (stats.counts[group][3], stats.steps, stats.references) == (
        1,
        {group: 60.0},
        {group[:2]: "4"},
    )

    features = RedisFeatureStore(client, f"{namespace}:features")
    await features.save([EntityWrite("c1", {"o|0": None}, {"o|0": "1", "old": "x"}, [], 60_000)], 1)
    await features.save([EntityWrite("c1", {"o|0": "1"}, {"o|0": "2"}, ["old"], 60_000)], 2)
    assert await features.load(["c1", "nobody"]) == {"c1": {"o|0": "2"}}

    served = RedisServedLog(client, f"{namespace}:shop", idle_ms=60_000)
    x = ServedX({"a": 1.0}, {"m": 0.5}, 1_000, 1)
    await served.log(
        [("e1", x)], 60_000, {0: 5_000, 1: 2_000}, wall_ms=1_000, entities={"c1": ["e1"]}
    )
    assert await served.fetch(["e1"]) == {"e1": x}
    assert await served.watermark(wall_ms=1_000) == 2_000

    lease = RedisLease(client, namespace, "app/shop", holder="worker-1")
    epoch = await lease.hold(15_000)
    assert epoch >= 1 and await lease.hold(15_000) == epoch  # taken, then renewed
    assert await RedisLease(client, namespace, "app/shop", "worker-2").hold(15_000) == 0
