"""The Redis ACL of the service's user: the commands the worker and `streamproc features get`
issue, on the keys under its namespace only. docs/security.md shows the same line
(tests/unit/test_docs_security.py holds them together)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

# Every command the stores send, and why. A Lua script runs with its caller's permissions,
# so the commands inside the scripts are listed as well.
SERVICE_COMMANDS: tuple[str, ...] = (
    "evalsha",  # every script call (redis-py sends the script's SHA1 first)
    "script|load",  # once per script and server, when EVALSHA answers NOSCRIPT
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
    "zadd",  # served log: the partitions' watermarks
    "zrange",  # trainer: the watermark read
)
# `streamproc demo` and the benchmarks delete their namespace when done. SCAN lists key names
# outside the namespace too, so the service's own user does without these.
CLEANUP_COMMANDS: tuple[str, ...] = ("scan", "unlink")


def service_acl_rules(namespace: str, commands: Sequence[str] = SERVICE_COMMANDS) -> list[str]:
    """The ACL SETUSER rules after the user's name, `on` and password: keys under
    `namespace:` only, no Pub/Sub channels, no command but `commands`."""
    return [f"~{namespace}:*", "resetchannels", "-@all", *(f"+{command}" for command in commands)]


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
