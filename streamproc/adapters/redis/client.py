"""Adapter: Redis clients from a URL and TLS files: async for the stores, sync for the tools."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,  # noqa: A004 - redis' own, not the builtin
    NoScriptError,
    RedisClusterException,
    RedisError,
    TimeoutError,  # noqa: A004 - redis' own, not the builtin
    TryAgainError,
)

from streamproc.config.connections import TlsFiles
from streamproc.errors import InfraError, Unavailable

AnyRedis = aioredis.Redis | RedisCluster
# What a failed call raises: a Redis Cluster client that cannot read the slot map raises the
# second, which is no RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException)
# Worth retrying: the server is restarting, paused, unreachable or loading its data (a
# refused command, a script error or a wrong password are not).
_TRANSIENT = (ConnectionError, TimeoutError, BusyLoadingError, ClusterDownError, TryAgainError)
DEFAULT_TIMEOUT_S = 5.0
_NO_SCRIPT = "No matching script"  # Redis' NOSCRIPT reply
ACL_HINT = (
    "refused by the Redis user's ACL: it needs the service's commands on the keys under its "
    'namespace (docs/security.md, "Redis")'
)
# What to fix, by what Redis or OpenSSL say: their words name the symptom, not the setting.
_HINTS = (
    # an ACL refusal of a command or key (NOPERM), and inside a script (Redis 7.0)
    (("NOPERM", "no permissions", "can't run this command", "can't access"), ACL_HINT),
    (
        ("CERTIFICATE_VERIFY_FAILED",),
        "Redis' certificate is not signed by the CA given (STREAMPROC_REDIS_TLS_CA), or does "
        "not name the URL's host",
    ),
    (
        ("CERTIFICATE_REQUIRED",),
        "Redis asks for a client certificate: set STREAMPROC_REDIS_TLS_CERT and _KEY",
    ),
    (
        ("Connection reset by peer", "Connection closed by server"),
        # With TLS 1.3 a server that wants a client certificate may close before its alert
        # is read: the client then sees a reset, not CERTIFICATE_REQUIRED.
        "if Redis speaks TLS on this port, the URL must be rediss://; if it is, Redis may ask "
        "for a client certificate: set STREAMPROC_REDIS_TLS_CERT and _KEY",
    ),
    (
        ("Cluster mode is not enabled",),
        "a single Redis with STREAMPROC_REDIS_CLUSTER=true, or a cluster user's ACL without "
        '+cluster|slots (docs/security.md, "Redis")',
    ),
)


def redis_client(
    url: str,
    cluster: bool = False,
    tls: TlsFiles | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> AnyRedis:
    """A client from a redis://, rediss:// (TLS) or unix:// URL; an ACL user and password go
    in the URL (rediss://user:password@host:6380/0), the TLS files in `tls` (a rediss:// URL
    only). The server's certificate must name the URL's host. With `cluster`, the URL names
    any node of a Redis Cluster. Nothing connects until the first command. A call not
    answered within `timeout_s` fails (Unavailable: the worker rides it through); without a
    timeout, a paused server hangs the worker."""
    if cluster:
        return RedisCluster.from_url(url, **_options(tls, timeout_s))
    return aioredis.Redis.from_url(url, **_options(tls, timeout_s))


def _options(tls: TlsFiles | None, timeout_s: float) -> dict[str, Any]:
    """No CLIENT SETINFO on connecting (driver_info None), so the service's ACL need not
    allow it: refused, redis-py would carry on, but Redis 7.2+ logs every refusal in its ACL
    LOG. The TLS files under redis-py's names; unset ones keep its defaults (the system's
    CAs, no client certificate). It checks the certificate and the host name by default."""
    options: dict[str, Any] = {
        "driver_info": None,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
    }
    if tls is not None:
        files = {"ssl_ca_certs": tls.ca, "ssl_certfile": tls.cert, "ssl_keyfile": tls.key}
        options |= {option: str(path) for option, path in files.items() if path is not None}
    return options


def redis_failure(what: str, error: RedisError | RedisClusterException) -> InfraError:
    """The InfraError of a failed call: what failed, Redis' own words, and what to fix when
    they point at the ACL or at TLS (inside a script, they name neither command nor key).
    Unavailable when retrying may help."""
    text = str(error)
    hints = [hint for marks, hint in _HINTS if any(mark in text for mark in marks)]
    message = f"{what}: {text}" + "".join(f" ({hint})" for hint in hints)
    if isinstance(error, _TRANSIENT) and not isinstance(error, AuthenticationError):
        return Unavailable("redis", message)
    if isinstance(error, NoScriptError) or _NO_SCRIPT in text:
        # SCRIPT FLUSH (or a failover) between redis-py loading a script and calling it: it
        # loads it again on the next try (inside a pipeline the error is a plain reply)
        return Unavailable("redis", f"{message} (the server's scripts were flushed: tried again)")
    return InfraError(message)
