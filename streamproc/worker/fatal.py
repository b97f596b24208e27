"""Worker: how the worker and the trainer-only process stop on a failure they cannot handle."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import NoReturn

from streamproc.errors import ConfigError, InfraError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # the settings (or the cluster's users, certificates) must change first
EXIT_INFRA = 3  # a supervisor restarts the worker; it resumes from the last committed offset
EXIT_HOOKS_S = 5.0  # the most an exit waits for its hooks (the consumer leaving its group)

_hooks: list[Callable[[], None]] = []


def on_exit(hook: Callable[[], None]) -> None:
    """Run `hook` when the process dies, before it exits: e.g. the consumer leaves its group,
    so that its partitions move at once instead of after the session timeout."""
    _hooks.append(hook)


def die(error: BaseException) -> NoReturn:
    """Stop the process at once, loudly, without committing the batch in flight.

    Per-event errors never get here (the processor turns them into dead letters); what does
    is infrastructure failing past its retries (exit 3), a ConfigError found while running,
    such as Kafka refusing the login (exit 2), or a bug outside the processor. A Faust agent
    that raises dies quietly, and its batch would still be acked and committed on shutdown,
    so exiting hard is what keeps the batch: a restarted worker reads it again.
    """
    known = error if isinstance(error, (ConfigError, InfraError)) else InfraError(f"{error!r}")
    log.critical("worker stopping: %s", known, exc_info=error)
    hooks = threading.Thread(target=_run_hooks, name="streamproc-exit", daemon=True)
    hooks.start()
    hooks.join(EXIT_HOOKS_S)
    logging.shutdown()
    os._exit(EXIT_CONFIG if isinstance(error, ConfigError) else EXIT_INFRA)


def _run_hooks() -> None:
    for hook in _hooks:
        try:
            hook()
        except Exception:
            log.exception("exit hook %s failed", hook)
