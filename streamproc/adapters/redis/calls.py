"""Adapter: how long each kind of Redis call takes and how it fails, for the metrics.

The stores are built in many places (the worker, the trainer, the tools); the process's one
observer is set once at start-up (`observe_redis_calls`), as prometheus_client's own default
registry is, instead of being threaded through every store's constructor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from redis.exceptions import ConnectionError, ResponseError, TimeoutError  # noqa: A004

from streamproc.adapters.redis.client import REDIS_ERRORS


class RedisCallObserver(Protocol):
    """Where the timings and failures go (the metrics)."""

    def redis_call(self, call: str, seconds: float) -> None: ...

    def redis_error(self, call: str, error: str) -> None: ...


class _Unobserved:
    def redis_call(self, call: str, seconds: float) -> None:
        pass

    def redis_error(self, call: str, error: str) -> None:
        pass


_observer: RedisCallObserver = _Unobserved()


def observe_redis_calls(observer: RedisCallObserver) -> None:
    """Report every timed call of this process to `observer` from now on."""
    global _observer  # noqa: PLW0603 - one per process, set at start-up
    _observer = observer


def error_kind(error: BaseException) -> str | None:
    """timeout, connection or response; None for a guard's refusal (CONFLICT), which is an
    answer: the batch is recomputed, nothing failed."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionError):
        return "connection"
    if isinstance(error, ResponseError) and str(error).startswith("CONFLICT"):
        return None
    return "response"


@contextmanager
def timed_call(call: str) -> Iterator[None]:
    """Time the Redis call made inside, and count it by kind if it fails (it still raises)."""
    started = time.perf_counter()
    try:
        yield
    except REDIS_ERRORS as exc:
        kind = error_kind(exc)
        if kind is not None:
            _observer.redis_error(call, kind)
        raise
    finally:
        _observer.redis_call(call, time.perf_counter() - started)
