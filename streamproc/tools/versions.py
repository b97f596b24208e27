"""`streamproc promote | rollback | versions`: which deployment version serves.

Promoting rewrites the serving pointer in one call (adapters/redis/serving.py): the read path
follows it at its next read, the workers with their next batch, and the predictions topic from
a log time a few seconds later (core/serving.py). The version served before stays whole for
the grace period, so a rollback is one more pointer write; after it, the new version's workers
drop its namespace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from streamproc.adapters.redis.serving import RedisServingPointer, RedisVersions
from streamproc.config.deployment import BASE_VERSION
from streamproc.core.serving import Serving
from streamproc.errors import ConfigError


class RefusedSwitch(Exception):
    """A promotion or rollback that may not happen now: the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Switch:
    """What a promotion or rollback works with."""

    pointer: RedisServingPointer
    versions: RedisVersions
    grace_ms: int
    # records `version`'s group has left on the raw topic; None when it has no group
    behind: Callable[[str], int | None]
    # the shadow predictions topic of a version being demoted, created if missing
    make_shadow: Callable[[str], None]
    out: TextIO


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


async def promote(switch: Switch, version: str, force: bool, caught_up_records: int) -> Serving:
    """Makes `version` the serving one; RefusedSwitch when it may not serve."""
    current = await switch.pointer.read()
    if current.version == version:
        raise RefusedSwitch(f"{version} is serving already (since {_when(current.promoted_at_ms)})")
    known = await switch.versions.all()
    if version != BASE_VERSION and version not in known:
        raise RefusedSwitch(
            f"{version} is no version of this deployment (known: "
            f"{', '.join(sorted({BASE_VERSION, *known}))}); build it with `streamproc replay "
            f"--namespace {version}`"
        )
    if current.retired == version:
        raise RefusedSwitch(f"{version} was retired: its state is gone; replay it anew")
    behind = switch.behind(version)
    if not force and (behind is None or behind > caught_up_records):
        state = "has not started" if behind is None else f"is {behind:,} records behind"
        raise RefusedSwitch(
            f"{version} {state} the raw topic's end: wait until its replay reports it caught "
            "up (or pass --force)"
        )
    return await _switch(switch, current, version)


async def rollback(switch: Switch) -> Serving:
    """Serves the previous version again; RefusedSwitch when there is none to return to."""
    current = await switch.pointer.read()
    if not current.previous:
        raise RefusedSwitch("nothing to roll back to: no version was promoted yet")
    if current.retired == current.previous:
        raise RefusedSwitch(
            f"{current.previous} was retired (its grace period after {current.version} was "
            "promoted is over): its state is gone; replay it anew"
        )
    return await _switch(switch, current, current.previous)


async def _switch(switch: Switch, current: Serving, version: str) -> Serving:
    now = int(time.time() * 1000)
    new = current.promoted(version, now, switch.grace_ms)
    switch.make_shadow(current.version)  # where the demoted version's predictions go now
    await switch.pointer.replace(current, new)
    print(
        f"{version} serves from now on: feature reads at once, the predictions topic from "
        f"log time {_when(new.cutover_ms)}; {current.version} goes on as a shadow (its "
        f"predictions to its own topic) and is retired at {_when(new.retire_at_ms)} unless "
        "rolled back before",
        file=switch.out,
    )
    return new


async def listing(
    pointer: RedisServingPointer, versions: RedisVersions, behind: Callable[[str], int | None]
) -> list[dict[str, Any]]:
    """Every version known, with its role and how far behind the raw topic it is."""
    serving = await pointer.read()
    known = await versions.all()
    rows = []
    for version in sorted({BASE_VERSION, *known}, key=lambda v: int(v[1:])):
        about = known.get(version, {})
        role = "serving" if version == serving.version else "shadow"
        if version == serving.retired:
            role = "retired"
        elif version == serving.previous:
            role = f"previous (retired at {_when(serving.retire_at_ms)})"
        rows.append(
            {
                "version": version,
                "role": role,
                "behind": behind(version),
                "pipeline": about.get("pipeline", ""),
                "replayed_from": about.get("from", ""),
            }
        )
    return rows


def require_version_free(version: str, serving: Serving) -> None:
    """A replay builds a version that does not serve: refuse the serving one and v1."""
    if version == BASE_VERSION:
        raise ConfigError(
            f"--namespace {version}: v1 is the deployment's first version (its names carry no "
            "suffix); replay into v2 or later"
        )
    if version == serving.version:
        raise ConfigError(f"--namespace {version}: it is the serving version; pick a new one")
