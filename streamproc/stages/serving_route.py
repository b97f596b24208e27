"""Stage: send each prediction to the serving topic or to the version's shadow topic, as the
serving pointer says for the event's log time (core/serving.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from streamproc.core.serving import ServingPointer
from streamproc.errors import ConfigError
from streamproc.records import OutRecord


class VersionRetired(ConfigError):
    """The worker's version was retired: its namespace is gone, it may not write again."""


class ServingRoute:
    """Per batch, reads the pointer once and routes the batch's predictions."""

    def __init__(
        self,
        pointer: ServingPointer,
        version: str,
        main: str,
        shadow: str,
        observe: Callable[[bool], None] = lambda _serving: None,
    ) -> None:
        """`observe` is told with each batch whether this version is the serving one."""
        self._pointer = pointer
        self._observe = observe
        self._version = version
        self._main = main
        self._shadow = shadow

    async def route(self, predictions: Sequence[OutRecord]) -> list[OutRecord]:
        """`predictions` (all for the declared topic) sent where they belong; VersionRetired
        once this version's namespace was dropped."""
        serving = await self._pointer.read()
        self._observe(serving.version == self._version)
        if serving.retired == self._version:
            raise VersionRetired(
                f"deployment version {self._version} was retired after {serving.version} was "
                "promoted, and its Redis namespace dropped: stop its workers (`streamproc "
                "replay` builds a version anew)"
            )
        routed = []
        for record in predictions:
            serves = serving.serves(self._version, record.timestamp_ms)
            topic = self._main if serves else self._shadow
            routed.append(record if record.topic == topic else replace(record, topic=topic))
        return routed
