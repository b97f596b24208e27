"""Core: the one trainer of a pipeline's models: labels learned in event-time order, each once,
from the x its event was served; its whole state is what a snapshot holds.

No I/O: the worker polls labels, fetches the served x from Redis and publishes snapshots.
"""

from __future__ import annotations

import heapq
import json
import pickle
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamproc.config.models import Models, ModelSpec
from streamproc.core.learning import (
    DriftWatch,
    PrequentialScore,
    Promotion,
    SnapshotMismatch,
    better_champion,
    build_pipeline,
    in_sample,
    probability,
    spec_hash,
)

_HELD_LABELS_KEPT = 100_000  # labels waiting for their event; beyond, the oldest give up
# A partition of the scored stream that has not moved for this long (wall clock) no longer
# holds the watermark back; and a held label waits at least as long before it is given up: a
# backlog moves the watermark hours of event time in seconds, and an event on a partition a
# few seconds behind the others (not read yet, or its worker restarting) must find its label.
PARTITION_IDLE_MS = 60_000
# A live trainer looks for the held labels' events this often (wall clock), not on every
# read: in a backlog thousands wait (events never scored: rejected, duplicates), and fetching
# all of their x from Redis each loop cost the trainer more than the labels it learned.
HELD_RETRY_MS = 1_000
# The promotion rule is weighed after every this many labels learned, at the same labels in
# every run of the log: weighed after each step, a champion depended on where steps ended
# (how many labels were due when the trainer looked), which is timing.
PROMOTION_EVERY = 10
_BEFORE_ANY_LABEL = -(2**63)  # the frontier of a partition no label was read from yet


@dataclass(frozen=True, slots=True)
class Label:
    """One label record, where it was read (its position is what a snapshot remembers)."""

    event_id: str
    value: bool
    occurred_at_ms: int  # when the label became known, in event time
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class ServedX:
    """What the predict step logged for an event: the x it was served, every model's score
    as served, and when. The label is learned from this, never from a recomputed x."""

    x: dict[str, float]
    scores: dict[str, float]
    occurred_at_ms: int
    version: int
    # event time of the oldest feature state served (its view's newest event then); None
    # when the entity had no features yet: what a point-in-time audit checks x against
    features_as_of: int | None = None

    def dump(self) -> bytes:
        """Compact JSON by orjson, one per scored event: a quarter of json's cost here
        (hotpath_bench served_x 7.2 → 1.9 µs); x is finite, the models refuse anything else."""
        fields = {"x": self.x, "s": self.scores, "t": self.occurred_at_ms, "v": self.version}
        return orjson.dumps({**fields, "f": self.features_as_of})

    @classmethod
    def load(cls, data: bytes) -> ServedX:
        fields = orjson.loads(data)
        return cls(fields["x"], fields["s"], fields["t"], fields["v"], fields.get("f"))


@dataclass(frozen=True, slots=True)
class DriftDetected:
    """ADWIN saw the mean of `stream` move (a model's error or an input's values)."""

    kind: str  # "error" or "feature"
    stream: str
    at_ms: int  # event time of the label that showed it
    labels: int  # labels learned so far
    action: str  # what was done: none, reset_challengers


@dataclass(slots=True)
class TrainingReport:
    """What one step of the trainer did, to count."""

    learned: int = 0
    held: int = 0  # labels whose event was not scored yet: they wait (bounded)
    unjoined: int = 0  # labels given up: no served x within the hold time
    join_delays_ms: list[int] = field(default_factory=list)  # label time - event time
    drift: list[DriftDetected] = field(default_factory=list)
    promotions: list[Promotion] = field(default_factory=list)


@dataclass(slots=True)
class TrainerState:
    """Everything a restart needs; pickled whole into a snapshot."""

    models: dict[str, Any]
    hashes: dict[str, str]
    cards: dict[str, PrequentialScore]
    error_drift: dict[str, DriftWatch]
    feature_drift: dict[str, DriftWatch]
    champion: str
    pinned: bool = False  # set by an operator: no automatic promotion until released
    version: int = 0  # snapshots published so far
    learned: int = 0
    label_offsets: dict[int, int] = field(default_factory=dict)  # next label to read
    held: dict[str, tuple[Label, int]] = field(default_factory=dict)  # id → (label, since)


def fresh_state(models: Models, champion: str | None = None) -> TrainerState:
    specs = _specs(models)
    window, delta = models.promotion.window, models.drift.delta
    return TrainerState(
        models={name: build_pipeline(spec) for name, spec in specs.items()},
        hashes={name: spec_hash(models.inputs, spec) for name, spec in specs.items()},
        cards={name: PrequentialScore(window) for name in specs},
        error_drift={name: DriftWatch(delta) for name in specs},
        feature_drift={name: DriftWatch(delta) for name in models.drift.features},
        champion=champion or models.champion.name,
    )


def _specs(models: Models) -> dict[str, ModelSpec]:
    return {spec.name: spec for spec in models.specs()}


class Trainer:
    """Labels in, learned in order: per label partition, a label is learned (or held, or
    given up) only after every label before it, so `label_offsets` is exact: a restore from
    a snapshot learns each later label once and no earlier one again.

    A label is due when the scored stream's event time (the watermark) reaches the time it
    became known; so a replay, or a backlog read faster than the orders, learns what live
    traffic would have, with no label from the future. The labels are taken in an order of
    the log's alone (see `due`), so two runs over one log learn them alike, but for the labels
    held for an event not scored yet: each is learned when its event is found.
    """

    def __init__(self, models: Models, state: TrainerState | None = None) -> None:
        self.declared = models
        self.state = state or fresh_state(models)
        self._waiting: dict[int, deque[Label]] = {}
        self._read_up_to: dict[int, int] = dict(self.state.label_offsets)
        # Per label partition, the latest time among the labels in sample read from it here
        # (its frontier, see `due`), and the partitions not read to their end at the last read.
        self._latest: dict[int, int] = {}
        self._open: frozenset[int] = frozenset()
        # when each held label was first held here (not in snapshots: a restore starts anew)
        self._held_since_wall: dict[str, int] = {}
        self._held_retry_at_wall = 0

    @property
    def waiting(self) -> int:
        """Labels read but not due yet."""
        return sum(len(queue) for queue in self._waiting.values())

    def label_offsets(self) -> dict[int, int]:
        """Per partition, the first label not yet learned, held or given up."""
        return {
            partition: (queue[0].offset if (queue := self._waiting.get(partition)) else offset)
            for partition, offset in self._read_up_to.items()
        }

    def accept(self, labels: Sequence[Label], at_end: Mapping[int, bool] | None = None) -> int:
        """Takes labels in as read; returns how many were left out of the declared sample
        (done with at once: their offsets move on as a learned label's would).

        `at_end`: every partition of the label topic, and whether the reader has read it to
        its end with this read; None when the labels given are all there are (a file)."""
        share = self.declared.labels.sample
        left_out = 0
        latest = self._latest
        for label in labels:
            partition = label.partition
            self._read_up_to[partition] = label.offset + 1
            if not in_sample(label.event_id, share):
                left_out += 1
                continue
            self._waiting.setdefault(partition, deque()).append(label)
            if label.occurred_at_ms > latest.get(partition, _BEFORE_ANY_LABEL):
                latest[partition] = label.occurred_at_ms
        self._open = frozenset(p for p, end in (at_end or {}).items() if not end)
        return left_out

    def due(
        self, watermark_ms: int, wall_ms: int | None = None, limit: int | None = None
    ) -> list[Label]:
        """The held labels, then the labels whose time has come, at most `limit` of the latter:
        the rest stay waiting, each partition's in offset order, so `label_offsets` stays
        exact. With `wall_ms` (a live trainer), the held ones at most every HELD_RETRY_MS.

        The labels come in the order of one merge of the label partitions: take, of each
        partition's next label, the earliest (time, then partition), each partition's labels
        in offset order. That order is the log's alone, not how far each partition happened to
        be read, nor where batches ended, nor how the watermark moved: every call takes the
        next ones of it. (Live, a partition read to its end is taken to hold nothing more, so
        that an idle one stalls nothing; a label written to it after joins the merge when
        read.)"""
        waiting = self._waiting
        heads = [
            (queue[0].occurred_at_ms, partition, queue[0].offset)
            for partition, queue in waiting.items()
            if queue and queue[0].occurred_at_ms <= watermark_ms
        ]
        heapq.heapify(heads)
        # A partition not read to its end, whose labels read here are all taken, may deliver
        # next a label earlier than any taken yet (a partition is only roughly in time order).
        # It holds back the heads at or after (its frontier, itself), the frontier being the
        # latest time among the labels taken from it here, L. That is enough, though its next
        # label u may be earlier: when the label at L was taken, every other partition's next
        # label g came after it; the partition's labels after L, none later than L, came
        # before g; so if a g was taken since, u was then the partition's next and came after
        # g, so after L; and a head now before L was, when L was taken, behind its partition's
        # g, taken since: it comes before u. Only labels in the sample count: the merge is of
        # them alone (a left-out label's time bounds nothing). The last label's time would be
        # as safe, and holds back the same heads of a finished log. A partition read to its
        # end holds back none; one with nothing read here yet, all.
        frontier = min(
            (
                (self._latest.get(partition, _BEFORE_ANY_LABEL), partition)
                for partition in self._open
                if not waiting.get(partition)
            ),
            default=None,
        )
        ready: list[Label] = []
        while heads and (limit is None or len(ready) < limit):
            at_ms, partition, _ = heads[0]
            if frontier is not None and (at_ms, partition) >= frontier:
                break
            heapq.heappop(heads)
            queue = waiting[partition]
            ready.append(queue.popleft())
            if queue:
                if queue[0].occurred_at_ms <= watermark_ms:
                    heapq.heappush(heads, (queue[0].occurred_at_ms, partition, queue[0].offset))
            elif partition in self._open:
                edge = (self._latest[partition], partition)
                frontier = edge if frontier is None else min(frontier, edge)
        if wall_ms is not None:
            if wall_ms < self._held_retry_at_wall:
                return ready
            self._held_retry_at_wall = wall_ms + HELD_RETRY_MS
        return [label for label, _ in self.state.held.values()] + ready

    def learn(
        self,
        labels: Sequence[Label],
        served: Mapping[str, ServedX],
        watermark_ms: int,
        wall_ms: int | None = None,
    ) -> TrainingReport:
        """Join each label to its served x and learn it; a label without one is held until
        `hold` has passed in event time and, with `wall_ms` (a live trainer), the minimum
        hold in wall-clock time too; then it is given up. Files replay in event time only."""
        report = TrainingReport()
        state = self.state
        hold_ms = self.declared.labels.hold_ms
        held_since_wall = self._held_since_wall
        for label in labels:
            event_id = label.event_id
            x = served.get(event_id)
            if x is None:
                since = state.held.get(event_id, (label, watermark_ms))[1]
                waited_wall = True  # a file replays in event time alone
                if wall_ms is not None:
                    since_wall = held_since_wall.setdefault(event_id, wall_ms)
                    waited_wall = wall_ms - since_wall >= PARTITION_IDLE_MS
                if watermark_ms - since > hold_ms and waited_wall:
                    self._give_up(event_id, report)
                elif event_id not in state.held:
                    state.held[event_id] = (label, since)
                    report.held += 1
                continue
            state.held.pop(event_id, None)
            held_since_wall.pop(event_id, None)
            self._learn_one(label, x, report)
            if state.learned % PROMOTION_EVERY == 0:
                self._consider_promotion(report)
        while len(state.held) > _HELD_LABELS_KEPT:
            self._give_up(next(iter(state.held)), report)
        state.label_offsets = self.label_offsets()
        return report

    def _give_up(self, event_id: str, report: TrainingReport) -> None:
        self.state.held.pop(event_id, None)
        self._held_since_wall.pop(event_id, None)
        report.unjoined += 1

    def _learn_one(self, label: Label, served: ServedX, report: TrainingReport) -> None:
        state = self.state
        state.learned += 1
        report.learned += 1
        report.join_delays_ms.append(label.occurred_at_ms - served.occurred_at_ms)
        rule = self.declared.drift
        for name, model in state.models.items():
            # Test, then train, every model alike on the x the event was served: the served
            # score came from an older snapshot, and only the champion has one.
            p = probability(model, served.x)
            state.cards[name].update(label.value, p)
            model.learn_one(served.x, label.value)
            if state.error_drift[name].update(abs(float(label.value) - p)):
                self._drifted(report, "error", name, label, rule.action)
        for name, watch in state.feature_drift.items():
            value = served.x.get(name)
            if value is not None and watch.update(value):
                self._drifted(report, "feature", name, label, rule.action)

    def _drifted(
        self, report: TrainingReport, kind: str, stream: str, label: Label, action: str
    ) -> None:
        report.drift.append(
            DriftDetected(kind, stream, label.occurred_at_ms, self.state.learned, action)
        )
        if action == "reset_challengers":
            for spec in self.declared.challengers:
                self.state.models[spec.name] = build_pipeline(spec)
                self.state.cards[spec.name] = PrequentialScore(self.declared.promotion.window)

    def _consider_promotion(self, report: TrainingReport) -> None:
        state = self.state
        if state.pinned:
            return
        promotion = better_champion(self.declared.promotion, state.champion, state.cards)
        if promotion is not None:
            state.champion = promotion.promoted
            report.promotions.append(promotion)

    def set_champion(self, name: str, pinned: bool) -> None:
        """An operator's choice (or the automatic rule's, published and read back)."""
        if name in self.state.models:
            self.state.champion = name
        self.state.pinned = pinned

    def scores(self) -> dict[str, dict[str, float]]:
        return {name: card.snapshot() for name, card in self.state.cards.items()}


def dump_state(state: TrainerState, pipeline: str, epoch: int, taken_at_ms: int) -> bytes:
    """A JSON header line (readable without unpickling: `streamproc model list`), then the
    pickled state. Snapshots are read only from our own topic: pickle is trusted there."""
    header = {
        "pipeline": pipeline,
        "epoch": epoch,
        "version": state.version,
        "champion": state.champion,
        "pinned": state.pinned,
        "learned": state.learned,
        "hashes": state.hashes,
        "label_offsets": {str(p): o for p, o in state.label_offsets.items()},
        "held": len(state.held),
        "scores": {name: card.snapshot() for name, card in state.cards.items()},
        "taken_at_ms": taken_at_ms,
    }
    return json.dumps(header).encode() + b"\n" + pickle.dumps(state)


def dump_serving(state: TrainerState, pipeline: str, epoch: int, taken_at_ms: int) -> bytes:
    """What serving workers read: a JSON header line, then each model pickled on its own, so a
    worker unpickles only the champion it serves. The full state (challengers' trees, scores,
    held labels) is the trainer's alone: unpickling it held the GIL for ~10 ms per MB in
    every worker, at every snapshot, in the middle of its batches."""
    header = {
        "pipeline": pipeline,
        "epoch": epoch,
        "version": state.version,
        "champion": state.champion,
        "hashes": state.hashes,
        "taken_at_ms": taken_at_ms,
    }
    models = {name: pickle.dumps(model) for name, model in state.models.items()}
    return json.dumps(header).encode() + b"\n" + pickle.dumps(models)


def load_served_model(data: bytes, name: str, models: Models) -> Any | None:
    """Model `name` of a serving record; None when the record has no such model or it was
    trained under another declaration (the trainer starts it anew and publishes it soon)."""
    header = read_header(data)
    spec = _specs(models).get(name)
    if spec is None or header["hashes"].get(name) != spec_hash(models.inputs, spec):
        return None
    with _split(data)[1] as body:
        pickled: dict[str, bytes] = pickle.loads(body)  # noqa: S301 - our own snapshot topic
    return pickle.loads(pickled[name])  # noqa: S301 - our own snapshot topic


def read_header(data: bytes) -> dict[str, Any]:
    header: dict[str, Any] = json.loads(_split(data)[0])
    return header


def _split(data: bytes) -> tuple[bytes, memoryview]:
    """The header line and a view of the pickle after it, as bytes.partition splits them but
    without copying the body: a snapshot is megabytes, read every few seconds by every worker
    (the follower reads each header up to three times), and each copy was a large transient
    allocation that fragmented the heap (benchmarks/memory_bench.py)."""
    end = data.find(b"\n")
    if end < 0:
        return data, memoryview(b"")
    return data[:end], memoryview(data)[end + 1 :]


def load_state(data: bytes, models: Models) -> tuple[TrainerState, list[str]]:
    """The snapshot's state with every model whose declaration changed started anew (a new
    model: mixing it with the old one's learning would be wrong); names the restarted ones.
    Raises SnapshotMismatch when no model is left to restore."""
    with _split(data)[1] as body:
        state: TrainerState = pickle.loads(body)  # noqa: S301 - our own snapshot topic
    fresh = fresh_state(models, state.champion)
    restarted = [name for name in fresh.models if state.hashes.get(name) != fresh.hashes[name]]
    if len(restarted) == len(fresh.models):
        raise SnapshotMismatch(
            f"no model in the snapshot matches the declaration ({', '.join(restarted)} changed)"
        )
    for name in restarted:
        state.models[name] = fresh.models[name]
        state.cards[name] = fresh.cards[name]
        state.error_drift[name] = fresh.error_drift[name]
    for name in set(state.models) - set(fresh.models):  # no longer declared
        del state.models[name], state.cards[name], state.error_drift[name]
    state.hashes = fresh.hashes
    state.feature_drift = {
        name: state.feature_drift.get(name) or watch for name, watch in fresh.feature_drift.items()
    }
    if state.champion not in state.models:
        state.champion, state.pinned = models.champion.name, False
    return state, restarted
