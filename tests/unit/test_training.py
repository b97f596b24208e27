"""The trainer: labels learned in event time, once each, from the served x; its snapshots."""

from __future__ import annotations

import json
import random

import pytest

from streamproc.config.models import Drift, Labels, ModelInputs, Models, ModelSpec, PromotionRule
from streamproc.core.learning import SnapshotMismatch, in_sample
from streamproc.core.training import (
    HELD_RETRY_MS,
    PARTITION_IDLE_MS,
    PROMOTION_EVERY,
    Label,
    ServedX,
    Trainer,
    dump_state,
    load_state,
    read_header,
)

LOGREG = ModelSpec(name="logreg", pipeline="StandardScaler | LogisticRegression")
TREE = ModelSpec(name="tree", pipeline="HoeffdingTreeClassifier")


def _models(**changes: object) -> Models:
    declared = Models(
        inputs=ModelInputs(numeric=["v"]),
        labels=Labels(topic="labels", hold="10m"),
        champion=LOGREG,
        challengers=[TREE],
        promotion=PromotionRule(window=50, margin=0.05),
    )
    return declared.model_copy(update=changes)


def _stream(n: int, seed: int = 3) -> tuple[list[Label], dict[str, ServedX]]:
    """Events one minute apart; each label known an hour after its event, on 3 partitions."""
    rng = random.Random(seed)
    labels, served = [], {}
    offsets = [0, 0, 0]
    for i in range(n):
        fraud = rng.random() < 0.3
        value = rng.gauss(2.0 if fraud else 0.0, 1.0)
        served[f"e{i}"] = ServedX({"v": value}, {}, i * 60_000, 0)  # scored as they learn
        partition = i % 3
        labels.append(Label(f"e{i}", fraud, i * 60_000 + 3_600_000, partition, offsets[partition]))
        offsets[partition] += 1
    return labels, served


def _run(trainer: Trainer, labels: list[Label], served: dict[str, ServedX], until: int) -> int:
    trainer.accept(labels)
    due = trainer.due(until)
    return trainer.learn(
        due, {e: served[e] for e in (d.event_id for d in due) if e in served}, until
    ).learned


def test_a_label_is_learned_only_once_the_scored_stream_reaches_its_time() -> None:
    labels, served = _stream(100)
    trainer = Trainer(_models())
    trainer.accept(labels)
    assert trainer.due(labels[0].occurred_at_ms - 1) == []
    due = trainer.due(labels[9].occurred_at_ms)
    assert [label.event_id for label in due] == [f"e{i}" for i in range(10)]
    report = trainer.learn(due, served, labels[9].occurred_at_ms)
    assert report.learned == 10
    assert report.join_delays_ms == [3_600_000] * 10
    assert trainer.waiting == 90
    # per partition, the next label to learn: exact, so a restore learns each label once
    assert trainer.label_offsets() == {0: 4, 1: 3, 2: 3}


def test_a_label_before_its_event_waits_then_is_learned_or_given_up() -> None:
    trainer = Trainer(_models())
    early = Label("late-order", True, 1_000, 0, 0)
    lost = Label("never-scored", False, 1_000, 0, 1)
    trainer.accept([early, lost])
    first = trainer.learn(trainer.due(1_000), {}, 1_000, wall_ms=0)
    assert (first.learned, first.held, first.unjoined) == (0, 2, 0)
    assert trainer.label_offsets() == {0: 2}  # held labels live in the state, not the offsets
    x = ServedX({"v": 1.0}, {}, 900, 0)
    second = trainer.learn(trainer.due(2_000), {"late-order": x}, 2_000, wall_ms=1_000)
    assert (second.learned, second.held, second.unjoined) == (1, 0, 0)
    past_hold = 1_000 + 600_001
    third = trainer.learn(trainer.due(past_hold), {}, past_hold, wall_ms=PARTITION_IDLE_MS)
    assert (third.learned, third.unjoined) == (0, 1)
    assert trainer.state.held == {}


def test_a_backlog_racing_past_the_hold_keeps_a_label_whose_event_is_seconds_behind() -> None:
    """A backlog moves hours of event time in seconds: a partition read a few seconds after
    the others (its first batch not fetched yet, or its worker restarting) still has its
    events scored, and their labels must wait for them, however far the watermark ran."""
    trainer = Trainer(_models())  # hold: 10 minutes of event time
    label = Label("behind", True, 1_000, 0, 0)
    trainer.accept([label])
    assert trainer.learn(trainer.due(1_000), {}, 1_000, wall_ms=0).held == 1
    hours_later = 1_000 + 5 * 3_600_000
    raced = trainer.learn(trainer.due(hours_later), {}, hours_later, wall_ms=3_000)
    assert (raced.learned, raced.unjoined) == (0, 0)
    x = ServedX({"v": 1.0}, {}, 900, 0)
    scored = trainer.learn(trainer.due(hours_later), {"behind": x}, hours_later, wall_ms=5_000)
    assert (scored.learned, scored.unjoined) == (1, 0)


def test_a_live_trainer_looks_for_held_labels_events_once_a_second_not_every_read() -> None:
    """In a backlog thousands of labels wait (their events never scored); fetching all their
    x from Redis on every read cost the trainer more than the labels it learned."""
    trainer = Trainer(_models())
    trainer.accept([Label("held", True, 1_000, 0, 0), Label("next", False, 2_000, 0, 1)])
    due = trainer.due(1_000, wall_ms=0)
    assert [x.event_id for x in due] == ["held"]
    assert trainer.learn(due, {}, 1_000, wall_ms=0).held == 1
    assert [x.event_id for x in trainer.due(2_000, wall_ms=10)] == ["next"]  # not the held one
    assert trainer.due(2_000, wall_ms=HELD_RETRY_MS - 1) == []
    assert [x.event_id for x in trainer.due(2_000, wall_ms=HELD_RETRY_MS)] == ["held"]
    assert [x.event_id for x in trainer.due(2_000)] == ["held"]  # a file: every call


def test_a_file_replays_the_hold_in_event_time_alone() -> None:
    trainer = Trainer(_models())
    trainer.accept([Label("never-scored", False, 1_000, 0, 0)])
    trainer.learn(trainer.due(1_000), {}, 1_000)
    past_hold = 1_000 + 600_001
    assert trainer.learn(trainer.due(past_hold), {}, past_hold).unjoined == 1


def test_a_restore_from_any_snapshot_learns_what_an_uninterrupted_trainer_learns() -> None:
    labels, served = _stream(600)
    declared = _models()
    straight = Trainer(declared)
    _run(straight, labels, served, until=10**12)

    crashed = Trainer(declared)
    _run(crashed, labels[:250], served, until=labels[200].occurred_at_ms)
    data = dump_state(crashed.state, "shop", epoch=1, taken_at_ms=0)
    _run(crashed, labels[250:400], served, until=labels[380].occurred_at_ms)  # lost in the crash
    state, restarted = load_state(data, declared)
    assert restarted == []
    restored = Trainer(declared, state)
    offsets = restored.label_offsets()
    replay = [label for label in labels if label.offset >= offsets.get(label.partition, 0)]
    _run(restored, replay, served, until=10**12)

    assert restored.state.learned == straight.state.learned == 600
    probe = {"v": 1.3}
    for name in ("logreg", "tree"):
        assert restored.state.models[name].predict_proba_one(probe) == straight.state.models[
            name
        ].predict_proba_one(probe)
        assert restored.scores()[name] == straight.scores()[name]


def test_a_snapshot_header_is_readable_without_unpickling() -> None:
    labels, served = _stream(60)
    trainer = Trainer(_models())
    _run(trainer, labels, served, until=10**12)
    trainer.state.version = 7
    header = read_header(dump_state(trainer.state, "shop", epoch=2, taken_at_ms=5))
    assert (header["epoch"], header["version"], header["learned"]) == (2, 7, 60)
    assert header["label_offsets"] == {"0": 20, "1": 20, "2": 20}
    assert set(header["scores"]) == {"logreg", "tree"}


def test_a_changed_declaration_restarts_only_the_models_it_changed() -> None:
    labels, served = _stream(60)
    trainer = Trainer(_models())
    _run(trainer, labels, served, until=10**12)
    data = dump_state(trainer.state, "shop", epoch=1, taken_at_ms=0)
    retuned = TREE.model_copy(update={"params": {"HoeffdingTreeClassifier": {"grace_period": 50}}})
    state, restarted = load_state(data, _models(challengers=[retuned]))
    assert restarted == ["tree"]
    assert state.cards["tree"].labels == 0 and state.cards["logreg"].labels == 60
    with pytest.raises(SnapshotMismatch):
        load_state(data, _models(inputs=ModelInputs(numeric=["w"])))


def test_a_better_challenger_is_promoted_unless_an_operator_pinned_the_champion() -> None:
    labels, served = _stream(400)
    pinned = Trainer(_models(champion=TREE, challengers=[LOGREG]))
    pinned.set_champion("tree", pinned=True)
    assert _run(pinned, labels, served, until=10**12) == 400
    assert pinned.state.champion == "tree"

    free = Trainer(_models(champion=TREE, challengers=[LOGREG]))
    promotions = []
    for start in range(0, 400, 50):
        free.accept(labels[start : start + 50])
        promotions += free.learn(free.due(10**12), served, 10**12).promotions
    assert [(p.retired, p.promoted) for p in promotions] == [("tree", "logreg")]
    assert promotions[0].promoted_auc - promotions[0].retired_auc >= 0.05
    assert free.state.champion == "logreg"


def test_a_promotion_comes_after_the_same_labels_however_the_steps_were_cut() -> None:
    """The rule is weighed every PROMOTION_EVERY labels learned, not after each step: where a
    live trainer's steps end (how many labels were due when it looked) is timing."""
    labels, served = _stream(400)
    runs = []
    for step in (400, 50, 7, 1):
        trainer = Trainer(_models(champion=TREE, challengers=[LOGREG]))
        trainer.accept(labels)
        promotions = []
        while due := trainer.due(10**12, limit=step):
            promotions += trainer.learn(due, served, 10**12).promotions
        runs.append(promotions)
    assert runs[0] and all(run == runs[0] for run in runs)
    assert runs[0][0].after_labels % PROMOTION_EVERY == 0


def test_drift_on_an_input_is_reported_and_can_reset_the_challengers() -> None:
    declared = _models(drift=Drift(features=["v"], action="reset_challengers"))
    trainer = Trainer(declared)
    rng = random.Random(5)
    labels, served = [], {}
    for i in range(3_000):
        shifted = i >= 1_500
        served[f"e{i}"] = ServedX({"v": rng.gauss(5.0 if shifted else 0.0, 1.0)}, {}, i, 0)
        labels.append(Label(f"e{i}", rng.random() < 0.3, i, 0, i))
    trainer.accept(labels)
    report = trainer.learn(trainer.due(10**12), served, 10**12)
    detected = [d for d in report.drift if d.kind == "feature"]
    assert detected and all(d.stream == "v" for d in detected)
    assert 1_500 <= detected[0].labels < 1_700  # seen soon after the shift, not before
    assert trainer.state.cards["tree"].labels < 1_500  # the challenger started anew


def test_drift_may_watch_only_inputs_that_are_numbers() -> None:
    declared = {**_models().model_dump(by_alias=True), "drift": {"features": ["country"]}}
    with pytest.raises(ValueError, match="drift.features: 'country' is not a numeric"):
        Models.model_validate(declared)


def test_a_served_x_round_trips_and_one_logged_before_orjson_still_loads() -> None:
    served = ServedX({"source=∅": 1.0, "amount": 0.1 + 0.2}, {"logreg": 0.25}, 7, 3, None)
    assert ServedX.load(served.dump()) == served
    older = json.dumps(
        {"x": served.x, "s": served.scores, "t": 7, "v": 3, "f": None}, separators=(",", ":")
    ).encode()  # as json wrote it: non-ASCII escaped
    assert ServedX.load(older) == served


def test_every_model_is_scored_by_the_trainer_before_it_learns_not_by_its_served_score() -> None:
    """The comparison is test-then-train for champion and challengers alike: a served score
    (from an older snapshot, the champion's only) never enters a model's card."""
    labels, served = _stream(300)
    stale = {e: ServedX(x.x, {"logreg": 0.5}, x.occurred_at_ms, 0) for e, x in served.items()}
    trainer = Trainer(_models())
    assert _run(trainer, labels, stale, until=10**12) == 300
    cards = trainer.scores()
    assert cards["logreg"]["roc_auc"] > 0.8  # its own scores; the served 0.5s would give 0.5
    assert cards["tree"]["roc_auc"] > 0.7


def test_a_declared_sample_learns_the_same_labels_in_every_process_and_moves_offsets_on() -> None:
    labels, served = _stream(1_000)
    declared = _models(labels=Labels(topic="labels", hold="10m", sample=0.3))
    first, again = Trainer(declared), Trainer(declared)
    left_out = first.accept(labels)
    assert again.accept(labels) == left_out
    assert 600 < left_out < 800  # about 70% left out
    until = labels[-1].occurred_at_ms
    due = first.due(until)
    assert [label.event_id for label in due] == [label.event_id for label in again.due(until)]
    report = first.learn(due, served, until)
    assert report.learned == len(labels) - left_out
    assert all(card.labels == report.learned for card in first.state.cards.values())
    # every label is done with: a restore from these offsets reads nothing again
    assert first.label_offsets() == {0: 334, 1: 333, 2: 333}


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_sample_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="sample"):
        Labels(topic="labels", sample=share)


def test_due_labels_come_in_bounded_steps_in_event_time_order_with_exact_offsets() -> None:
    labels, served = _stream(100)  # three partitions, in event time
    whole = Trainer(_models())
    whole.accept(labels)
    until = labels[-1].occurred_at_ms
    expected = [label.event_id for label in whole.due(until)]
    stepped = Trainer(_models())
    stepped.accept(labels)
    taken: list[str] = []
    while step := stepped.due(until, limit=30):
        assert len(step) <= 30
        taken += [label.event_id for label in step]
        stepped.learn(step, served, until)
        # a restore from these offsets would read exactly the labels not learned yet
        offsets = stepped.label_offsets()
        learned = {(label.partition, label.offset) for label in labels if label.event_id in taken}
        assert all((p, o) in learned for p in offsets for o in range(offsets[p]))
        assert all(
            o >= offsets[p] for p, o in {(lb.partition, lb.offset) for lb in labels} - learned
        )
    assert taken == expected


def _two_partitions(n: int = 240, seed: int = 11) -> tuple[list[list[Label]], dict[str, ServedX]]:
    """Labels of events a minute apart on two partitions, each only roughly in time order (two
    producers: now and then a label written minutes after its neighbours)."""
    rng = random.Random(seed)
    written: list[list[tuple[int, str, bool]]] = [[], []]
    served = {}
    for i in range(n):
        fraud = rng.random() < 0.3
        served[f"e{i}"] = ServedX({"v": rng.gauss(2.0 if fraud else 0.0, 1.0)}, {}, i * 60_000, 0)
        late = rng.randrange(600_000) if rng.random() < 0.2 else 0
        written[rng.randrange(2)].append((i * 60_000 + 3_600_000 + late, f"e{i}", fraud))
    partitions = []
    for partition, labels in enumerate(written):
        # in the order they were written: by the time they became known, give or take a minute
        labels.sort(key=lambda label: label[0] + rng.randrange(-60_000, 60_000))
        partitions.append(
            [Label(e, fraud, at, partition, o) for o, (at, e, fraud) in enumerate(labels)]
        )
    return partitions, served


def _read_in_turns(
    partitions: list[list[Label]],
    served: dict[str, ServedX],
    turns: list[tuple[int, int]],
    tell_ends: bool = True,
) -> tuple[list[str], Trainer]:
    """A trainer reading (partition, count) in `turns`, then the rest, learning after each read
    with a watermark that moves by the step, not by what was read; what it learned, in order."""
    trainer = Trainer(_models())
    read = [0] * len(partitions)
    first = min(label.occurred_at_ms for labels in partitions for label in labels)
    learned: list[str] = []
    rest = [(p, len(labels)) for p, labels in enumerate(partitions)]
    for step, (partition, count) in enumerate([*turns, *rest]):
        labels = partitions[partition][read[partition] : read[partition] + count]
        read[partition] += len(labels)
        at_end = {p: read[p] == len(labels) for p, labels in enumerate(partitions)}
        trainer.accept(labels, at_end if tell_ends else None)
        watermark = first + step * 900_000
        due = trainer.due(watermark, limit=25)
        learned += [label.event_id for label in due]
        trainer.learn(due, served, watermark)
    while due := trainer.due(10**12):
        learned += [label.event_id for label in due]
        trainer.learn(due, served, 10**12)
    return learned, trainer


def test_the_order_labels_are_learned_in_is_the_logs_not_how_its_partitions_were_read() -> None:
    partitions, served = _two_partitions()
    whole = Trainer(_models())  # every label read up front
    whole.accept([label for labels in partitions for label in labels])
    due = whole.due(10**12)
    whole.learn(due, served, 10**12)
    expected = [label.event_id for label in due]
    assert sorted(expected) == sorted(served)
    sizes = [len(labels) for labels in partitions]
    readings = {
        "partition 0 then 1, 20 at a time": [(0, 20)] * 7 + [(1, 20)] * 6,
        "partition 1 then 0, at once": [(1, sizes[1]), (0, sizes[0])],
        "alternating small reads": [(p, 7) for _ in range(40) for p in (0, 1)],
        "uneven reads": [(0, 3), (0, 40), (1, 1), (1, 60), (0, 2), (1, 5), (0, 50)],
    }
    probes = [{"v": v / 4} for v in range(-8, 17)]
    for how, turns in readings.items():
        learned, trainer = _read_in_turns(partitions, served, turns)
        assert learned == expected, how
        assert trainer.label_offsets() == {0: sizes[0], 1: sizes[1]}
        for name, model in trainer.state.models.items():
            # bit for bit: River's floats compared with ==, not approximately
            want = [whole.state.models[name].predict_proba_one(x) for x in probes]
            assert [model.predict_proba_one(x) for x in probes] == want, (how, name)
        assert trainer.scores() == whole.scores()
    # told nothing of the ends, a trainer takes what it has read for all there is: the order
    # then depends on how the partitions were read
    for how in ("partition 0 then 1, 20 at a time", "alternating small reads", "uneven reads"):
        assert _read_in_turns(partitions, served, readings[how], tell_ends=False)[0] != expected


def test_a_partition_read_to_its_end_holds_no_label_of_the_others_back() -> None:
    trainer = Trainer(_models())
    old = Label("old", True, 1_000, 1, 0)
    newer = [Label(f"n{i}", False, 2_000 + i, 0, i) for i in range(5)]
    # partition 1 is idle (one old label, nothing since), partition 2 never had a label;
    # partition 0 is being read and has more to come
    trainer.accept([old, *newer], at_end={0: False, 1: True, 2: True})
    # all of them: partition 0's next label, whatever its time, comes after n4 on it
    assert [label.event_id for label in trainer.due(10_000)] == [
        "old",
        "n0",
        "n1",
        "n2",
        "n3",
        "n4",
    ]
    later = Label("n5", True, 9_000, 0, 5)
    trainer.accept([later], at_end={0: True, 1: True, 2: True})
    assert trainer.due(10_000) == [later]


def test_a_partition_not_read_to_its_end_holds_back_the_labels_after_its_frontier() -> None:
    lagging = [Label(f"b{t}", False, t, 1, o) for o, t in enumerate(range(10, 101, 10))]
    ahead = [Label(f"a{t}", True, t, 0, o) for o, t in enumerate(range(10, 101, 10))]
    trainer = Trainer(_models())
    trainer.accept([*ahead, *lagging[:5]], at_end={0: False, 1: False})  # 1 read up to 50
    first = [label.event_id for label in trainer.due(200)]
    # partition 0's labels up to 50 (at 50 before partition 1's: ties go by partition)
    assert first == ["a10", "b10", "a20", "b20", "a30", "b30", "a40", "b40", "a50", "b50"]
    assert trainer.label_offsets() == {0: 5, 1: 5}  # exact: a restore reads a60 on
    trainer.accept(lagging[5:], at_end={0: True, 1: True})
    rest = [label.event_id for label in trainer.due(200)]
    assert rest == ["a60", "b60", "a70", "b70", "a80", "b80", "a90", "b90", "a100", "b100"]
    # before a label is read from it, a partition not at its end holds back every other
    fresh = Trainer(_models())
    fresh.accept(ahead, at_end={0: True, 1: False})
    assert fresh.due(200) == []
    fresh.accept([], at_end={0: True, 1: True})
    assert len(fresh.due(200)) == len(ahead)


def test_a_partition_frontier_comes_from_labels_in_the_sample_alone() -> None:
    """A left-out label is not in the merge: its time says nothing of what comes after it."""
    declared = _models(labels=Labels(topic="labels", hold="10m", sample=0.5))
    left_out = next(f"x{i}" for i in range(100) if not in_sample(f"x{i}", 0.5))
    trainer = Trainer(declared)
    assert trainer.accept([Label(left_out, True, 5_000, 1, 0)], at_end={0: False, 1: False}) == 1
    kept = [f"k{i}" for i in range(100) if in_sample(f"k{i}", 0.5)][:3]
    trainer.accept(
        [Label(e, True, 1_000 + i, 0, i) for i, e in enumerate(kept)], at_end={0: True, 1: False}
    )
    assert trainer.due(10_000) == []  # partition 1 may still deliver a label before 1_000
    assert trainer.label_offsets() == {0: 0, 1: 1}


@pytest.mark.parametrize("seed", range(10))
def test_any_reads_steps_watermarks_and_restores_learn_the_order_of_the_whole_log(
    seed: int,
) -> None:
    """Label partitions read in random turns (each told at its end only when it is), the
    watermark moving by random steps, bounded steps, a sample, and a restore from a snapshot
    taken mid-way after which the reads go on differently: the labels are learned in the order
    a trainer that read the whole log at once learns them, into the same models."""
    rng = random.Random(seed)
    declared = _models(labels=Labels(topic="labels", hold="10m", sample=rng.choice([1.0, 0.6])))
    partitions: list[list[Label]] = [[] for _ in range(rng.randint(2, 4))]
    served = {}
    for i in range(150):
        served[f"e{i}"] = ServedX({"v": rng.gauss(0.0, 1.0)}, {}, i * 1_000, 0)
        at = i * 1_000 + 60_000 + (rng.randrange(30_000) if rng.random() < 0.3 else 0)
        labels = partitions[rng.randrange(len(partitions))]
        labels.append(Label(f"e{i}", rng.random() < 0.3, at, 0, 0))
    for p, labels in enumerate(partitions):  # written roughly, not strictly, in time order
        labels.sort(key=lambda label: label.occurred_at_ms + rng.randrange(-5_000, 5_000))
        labels[:] = [
            Label(lb.event_id, lb.value, lb.occurred_at_ms, p, o) for o, lb in enumerate(labels)
        ]
    whole = Trainer(declared)
    whole.accept([label for labels in partitions for label in labels])
    expected = whole.due(10**12)
    whole.learn(expected, served, 10**12)

    trainer, learned = Trainer(declared), []
    read = [0] * len(partitions)
    watermark, snapshot, restored = 0, None, False
    while True:
        p = rng.randrange(len(partitions))
        chunk = partitions[p][read[p] : read[p] + rng.randint(0, 6)]
        read[p] += len(chunk)
        trainer.accept(chunk, {q: read[q] == len(lb) for q, lb in enumerate(partitions)})
        watermark += rng.randrange(8_000)
        done = all(read[q] == len(lb) for q, lb in enumerate(partitions))
        step = trainer.due(10**12 if done else watermark, limit=rng.choice([None, 1, 5]))
        trainer.learn(step, served, watermark)
        learned += step
        if snapshot is None and len(learned) > 40:
            trainer.state.label_offsets = trainer.label_offsets()  # as the loop's snapshot does
            snapshot = (dump_state(trainer.state, "shop", epoch=1, taken_at_ms=0), len(learned))
        elif snapshot is not None and not restored and len(learned) > 70:  # a crash: restore
            data, kept = snapshot
            trainer, learned, restored = (
                Trainer(declared, load_state(data, declared)[0]),
                learned[:kept],
                True,
            )
            offsets = trainer.label_offsets()
            read = [offsets.get(q, 0) for q in range(len(partitions))]
        if done and not trainer.waiting:
            break
    assert restored
    assert [label.event_id for label in learned] == [label.event_id for label in expected]
    for name, model in trainer.state.models.items():
        want = whole.state.models[name]
        assert all(
            model.predict_proba_one({"v": v}) == want.predict_proba_one({"v": v})
            for v in (-1.0, 0.3, 2.0)
        )
