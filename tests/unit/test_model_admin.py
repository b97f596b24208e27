"""The operator's model commands over an in-memory snapshot topic: each one's effect on the
champion choice published, and what `streamproc model list` prints of a deployment."""

from __future__ import annotations

import time

import pytest

from streamproc.adapters.kafka.model_snapshots import ChampionChoice, champion_key, models_key
from streamproc.config.models import Labels, ModelInputs, Models, ModelSpec
from streamproc.core.training import Label, dump_state, fresh_state
from streamproc.errors import ConfigError
from streamproc.tools.model_admin import ModelControl, report_lines
from tests.fakes import MemorySnapshotTopic

SCOPE = "app/shop"
MODELS = Models(
    inputs=ModelInputs(numeric=["v"]),
    labels=Labels(topic="labels"),
    champion=ModelSpec(name="logreg", pipeline="StandardScaler | LogisticRegression"),
    challengers=[
        ModelSpec(name="tree", pipeline="HoeffdingTreeClassifier"),
        ModelSpec(name="hat", pipeline="HoeffdingAdaptiveTreeClassifier"),
    ],
)


def _command(topic: MemorySnapshotTopic) -> ModelControl:
    """What a `streamproc model` command works with: a process of its own, reading the
    topic from its start."""
    return ModelControl(MemorySnapshotTopic(topic.log), SCOPE, MODELS)  # type: ignore[arg-type]


def _published(topic: MemorySnapshotTopic) -> ChampionChoice:
    data = topic.latest(champion_key(SCOPE))
    assert data is not None
    return ChampionChoice.load(data)


def _snapshot(topic: MemorySnapshotTopic, champion: str = "logreg", version: int = 3) -> None:
    """A trainer's snapshot: 120 labels scored alike by every model (0.9 for a true one,
    0.1 for a false one), and one label held."""
    state = fresh_state(MODELS, champion)
    for i in range(120):
        for card in state.cards.values():
            card.update(bool(i % 2), 0.9 if i % 2 else 0.1)
    state.version, state.learned, state.label_offsets = version, 120, {0: 121}
    state.held["late"] = (Label("late", True, 0, 0, 120), 0)
    topic.publish(models_key(SCOPE), dump_state(state, SCOPE, 2, int(time.time() * 1000)))


def test_promote_pins_a_declared_model_and_remembers_the_one_it_replaces() -> None:
    topic = MemorySnapshotTopic()
    _snapshot(topic)
    returned = _command(topic).promote("tree")
    published = _published(topic)
    assert returned == published
    assert (published.champion, published.pinned, published.by) == ("tree", True, "operator")
    assert published.previous == ["logreg"]  # the snapshot's champion, none chosen before
    assert _command(topic).report().champion == "tree"


def test_promote_refuses_a_model_the_pipeline_does_not_declare() -> None:
    topic = MemorySnapshotTopic()
    with pytest.raises(ConfigError, match="'forest' is not declared.*logreg, tree, hat"):
        _command(topic).promote("forest")
    assert topic.log == []  # nothing published


def test_rollback_serves_the_champion_before_and_pins_it() -> None:
    topic = MemorySnapshotTopic()
    _command(topic).promote("tree")
    _command(topic).promote("hat")
    assert _published(topic).previous == ["tree", "logreg"]
    back = _command(topic).rollback()
    assert (back.champion, back.pinned, back.previous) == ("tree", True, ["logreg"])
    assert _published(topic) == back
    _command(topic).rollback()
    assert (_published(topic).champion, _published(topic).previous) == ("logreg", [])


def test_rollback_without_an_earlier_champion_publishes_nothing() -> None:
    topic = MemorySnapshotTopic()
    with pytest.raises(ConfigError, match="no earlier champion"):
        _command(topic).rollback()
    assert topic.log == []


def test_release_keeps_the_champion_and_hands_the_choice_back_to_the_rule() -> None:
    topic = MemorySnapshotTopic()
    _command(topic).promote("hat")
    released = _command(topic).release()
    assert (released.champion, released.pinned, released.by) == ("hat", False, "operator")
    assert released.previous == ["logreg"]  # a later rollback still finds it
    assert _published(topic) == released


def test_the_report_lists_each_model_with_its_role_quality_and_labels() -> None:
    topic = MemorySnapshotTopic()
    _snapshot(topic, champion="logreg", version=3)
    _command(topic).promote("tree")
    lines = report_lines(_command(topic).report())
    assert lines[0].startswith(f"{SCOPE}: snapshot v3 (epoch 2, ")
    assert lines[0].endswith("120 labels learned, 1 held")
    assert lines[1] == "label offsets: {'0': 121}"
    rows = {line.split()[0]: line.split() for line in lines[3:6]}
    assert rows["tree"][1:3] == ["champion", "(pinned)"]
    assert rows["logreg"][1] == rows["hat"][1] == "challenger"
    # ROC AUC, log loss (-ln 0.9), accuracy, labels
    assert rows["logreg"][2:] == ["1.0000", "0.1054", "1.0000", "120"]
    assert lines[6] == "earlier champions: logreg"


def test_the_report_of_a_deployment_without_a_snapshot_says_so() -> None:
    topic = MemorySnapshotTopic()
    assert report_lines(_command(topic).report()) == [
        f"{SCOPE}: no snapshot yet (no trainer has published one)"
    ]
