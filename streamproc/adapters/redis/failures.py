"""Adapter: what a failed Redis call means for the worker: worth retrying (the server is
restarting, paused, unreachable or loading its data) or not (a script error, a refused
command, a wrong password)."""

from __future__ import annotations

from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    ConnectionError,  # noqa: A004 - redis' own, not the builtin
    RedisError,
    TimeoutError,  # noqa: A004 - redis' own, not the builtin
    TryAgainError,
)

from streamproc.errors import InfraError, Unavailable

_TRANSIENT = (ConnectionError, TimeoutError, BusyLoadingError, ClusterDownError, TryAgainError)


def redis_failure(what: str, error: RedisError) -> InfraError:
    """The error to raise for `error` during `what`: Unavailable when retrying may help."""
    message = f"Redis {what} failed: {error}"
    if isinstance(error, _TRANSIENT) and not isinstance(error, AuthenticationError):
        return Unavailable("redis", message)
    return InfraError(message)
