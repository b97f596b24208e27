"""Worker: the one thread that pickles and unpickles snapshots, and hands freed memory back."""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

_T = TypeVar("_T")


# Snapshots (megabytes of pickled models, one every few seconds) are pickled and unpickled in
# this one thread, not in whichever thread of the default executor is free: glibc gives each
# thread that allocates an arena of its own (up to 8 per core) and keeps what is freed there
# for that arena, so the churn grew a heap in every thread it ran in. In one thread the next
# snapshot reuses the previous one's memory, and a trainer's dump never overlaps its
# follower's load (benchmarks/memory_bench.py). Kafka reads and writes stay out of it: a
# follower's read waits on the broker, and must not hold up the trainer's dump.
_SNAPSHOT_THREAD = ThreadPoolExecutor(1, thread_name_prefix="streamproc-snapshots")


async def in_snapshot_thread(work: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_SNAPSHOT_THREAD, partial(work, *args))


def _libc_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] | None = getattr(ctypes.CDLL(None), "malloc_trim", None)
    except OSError:
        return None
    return trim  # glibc's; None elsewhere (musl, macOS), where there is nothing to do


_MALLOC_TRIM = _libc_malloc_trim()


def release_freed_memory() -> None:
    """Hands the heap's free pages back to the OS. glibc returns only the top of a heap by
    itself: the megabytes freed at each hot swap (the previous models, the pickle) stay
    resident wherever something younger lies above them, so RSS crept up snapshot after
    snapshot. Called once per new snapshot: a few ms, in the snapshot thread."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
