"""Topic declarations: the repo's topics, validation errors, and the apply plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamproc.config.topics import TopicSpec, TopicState, load_topic_specs, plan_changes
from streamproc.errors import ConfigError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def specs() -> dict[str, TopicSpec]:
    return {spec.name: spec for spec in load_topic_specs(REPO / "topics")}


@pytest.mark.parametrize(
    "name",
    ["shop.order.v1", "shop.order.clean.v1", "shop.order_outcome.v1", "shop.order_prediction.v1"],
)
def test_scenario_topics_have_six_partitions(specs: dict[str, TopicSpec], name: str) -> None:
    assert specs[name].partitions == 6


@pytest.mark.parametrize("input_topic", ["shop.order.v1", "shop.order_outcome.v1"])
def test_every_input_topic_has_a_dlq_beside_it(
    specs: dict[str, TopicSpec], input_topic: str
) -> None:
    dlq = specs[f"{input_topic}.dlq"]
    assert dlq.partitions == specs[input_topic].partitions
    assert dlq.config["cleanup.policy"] == "delete"


def test_state_topics_are_compacted(specs: dict[str, TopicSpec]) -> None:
    assert specs["streamproc.model_snapshots.v1"].config["cleanup.policy"] == "compact"


def _spec(name: str = "t", partitions: int = 3, **config: str) -> TopicSpec:
    return TopicSpec(name, partitions, 1, {"retention.ms": "1000", **config}, Path("t.yaml"))


def test_missing_topics_are_created() -> None:
    plan = plan_changes([_spec()], {})
    assert [spec.name for spec in plan.create] == ["t"]
    assert plan.has_changes


def test_a_topic_as_declared_needs_nothing() -> None:
    state = TopicState("t", 3, 1, {"retention.ms": "1000"})
    plan = plan_changes([_spec()], {"t": state})
    assert not plan.has_changes
    assert plan.drift == []


def test_changed_configs_are_altered() -> None:
    state = TopicState("t", 3, 1, {"retention.ms": "5"})
    plan = plan_changes([_spec()], {"t": state})
    assert plan.alter == {"t": {"retention.ms": ("5", "1000")}}


@pytest.mark.parametrize("partitions_in_cluster", [2, 4])
def test_partition_mismatch_is_drift_not_a_change(partitions_in_cluster: int) -> None:
    state = TopicState("t", partitions_in_cluster, 1, {"retention.ms": "1000"})
    plan = plan_changes([_spec()], {"t": state})
    assert not plan.has_changes
    assert len(plan.drift) == 1
    assert f"{partitions_in_cluster} partitions in the cluster, 3 declared" in plan.drift[0]


def test_replication_mismatch_is_drift() -> None:
    state = TopicState("t", 3, 2, {"retention.ms": "1000"})
    assert "replication factor 2" in plan_changes([_spec()], {"t": state}).drift[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: t\npartitions: 0\nretention_ms: 1\n", "partitions: Input should be greater"),
        ("name: t\npartitions: 1\n", "retention_ms: Field required"),
        ("name: t\npartitions: 1\nretention_ms: 1\ncleanup_policy: keep\n", "cleanup_policy"),
        ("name: t\npartitions: 1\nretention_ms: 1\nretention: 5\n", "retention: Extra inputs"),
        ("name: t\n  partitions: [1\n", "t.yaml:2: not valid YAML"),
    ],
)
def test_bad_declarations_name_the_file_and_field(
    tmp_path: Path, content: str, expected: str
) -> None:
    (tmp_path / "t.yaml").write_text(content)
    with pytest.raises(ConfigError) as caught:
        load_topic_specs(tmp_path)
    assert "t.yaml" in str(caught.value)
    assert expected in str(caught.value)


def test_a_topic_declared_twice_is_an_error(tmp_path: Path) -> None:
    for file_name in ("a.yaml", "b.yaml"):
        (tmp_path / file_name).write_text("name: t\npartitions: 1\nretention_ms: 1\n")
    with pytest.raises(ConfigError, match="also declared in"):
        load_topic_specs(tmp_path)
