"""Config: what every declaration (pipelines/*.yaml) is built from: frozen models, durations
and topic references."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_MS_PER = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class Frozen(BaseModel):
    """The base of every declaration: an unknown key is an error, a loaded one never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def duration_ms(text: str) -> int:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return int(match[1]) * _MS_PER[match[2]]


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError("expected a duration like 500ms, 30s, 10m, 24h or 7d")
    return value


Duration = Annotated[str, AfterValidator(_duration)]


class TopicRef(Frozen):
    """A topic and the schema of its record values."""

    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    schema_name: str = Field(alias="schema", pattern=r"^[A-Za-z_][\w.]*$")
