"""`python -m tests.faults.injected_worker worker`: a real worker whose stages raise for 1% of
events (case 11), chosen by a hash of the event id, so the test knows which: the clean stage's
normalizer for some raw orders, the feature step's decoder for some clean orders."""

from __future__ import annotations

import contextlib
import sys
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from streamproc.core.normalize import Normalizer
from streamproc.records import Envelope
from streamproc.stages.feature_step import FeatureStep

SHARE = 100  # one event in SHARE fails, per stage
CLEAN, FEATURES = "clean", "features"


class InjectedFault(RuntimeError):
    """What the doomed events raise: a bug in a stage, as far as the worker knows."""


def doomed(event_id: str, stage: str) -> bool:
    """Whether `stage` fails on the event (each stage dooms its own 1%)."""
    return zlib.crc32(f"{stage}/{event_id}".encode()) % SHARE == 0


@contextlib.contextmanager
def injected() -> Iterator[None]:
    """The failures in place, in this process: the worker's, or the oracles' offline run."""
    normalize = Normalizer.normalize
    decode = FeatureStep._decode

    def failing_normalize(self: Normalizer, raw: Mapping[str, Any]) -> Any:
        if doomed(str(raw.get("event_id")), CLEAN):
            raise InjectedFault(f"injected in the clean stage for {raw.get('event_id')}")
        return normalize(self, raw)

    def failing_decode(self: FeatureStep, envelope: Envelope) -> Any:
        record, event = decode(self, envelope)
        if doomed(str(record.get("event_id")), FEATURES):
            raise InjectedFault(f"injected in the feature step for {record.get('event_id')}")
        return record, event

    setattr(Normalizer, "normalize", failing_normalize)  # noqa: B010 - a patch, on purpose
    setattr(FeatureStep, "_decode", failing_decode)  # noqa: B010
    try:
        yield
    finally:
        setattr(Normalizer, "normalize", normalize)  # noqa: B010
        setattr(FeatureStep, "_decode", decode)  # noqa: B010


def main() -> int:
    from streamproc.cli.parser import main as streamproc

    with injected():
        return streamproc(sys.argv[1:])


if __name__ == "__main__":
    # Run as the module it is, so the exception's name in the dead letters is this module's.
    from tests.faults import injected_worker

    sys.exit(injected_worker.main())
