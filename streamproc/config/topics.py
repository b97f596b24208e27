"""Config: topic specs from topics/*.yaml, and the plan that brings a cluster in line with them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streamproc.errors import ConfigError, invalid_yaml

CleanupPolicy = Literal["delete", "compact", "compact,delete"]
_NAME = r"^[A-Za-z0-9._-]{1,249}$"


class DlqDeclaration(BaseModel):
    """The dead-letter topic beside an input topic: `<name>.dlq`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partitions: int | None = Field(None, ge=1, description="default: the input's partitions")
    retention_ms: int = Field(30 * 24 * 3600 * 1000, ge=-1)


class TopicDeclaration(BaseModel):
    """One topics/*.yaml file, validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    description: str = ""
    value_schema: str | None = Field(
        None, description="the Avro record its values are (schemas/*.avsc), for `produce`"
    )
    partitions: int = Field(ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1, le=32)
    retention_ms: int = Field(ge=-1, description="-1 keeps records forever")
    cleanup_policy: CleanupPolicy = "delete"
    config: dict[str, str] = Field(default_factory=dict, description="other topic configs")
    dlq: DlqDeclaration | None = None


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as it should exist in the cluster."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]
    source: Path
    value_schema: str | None = None  # None: not Avro of one record (snapshots), or a DLQ


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as it exists in the cluster (config: only the keys the spec declares)."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Plan:
    """What `topics apply` would do: create, alter configs, and drift it must not fix."""

    create: list[TopicSpec] = field(default_factory=list)
    alter: dict[str, dict[str, tuple[str | None, str]]] = field(default_factory=dict)
    drift: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.create or self.alter)


def load_topic_specs(folder: Path) -> list[TopicSpec]:
    """Every topic declared in `folder`, DLQs included; errors name the file and field."""
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    if not files:
        raise ConfigError(f"{folder}: no *.yaml topic specs; set STREAMPROC_TOPICS_DIR")
    specs: dict[str, TopicSpec] = {}
    for path in files:
        for spec in _specs_of(_parse(path), path):
            if spec.name in specs:
                raise ConfigError(
                    f"{path}: topic {spec.name} is also declared in {specs[spec.name].source}"
                )
            specs[spec.name] = spec
    return [specs[name] for name in sorted(specs)]


def plan_changes(specs: Sequence[TopicSpec], cluster: Mapping[str, TopicState]) -> Plan:
    """Compare declarations with the cluster; partition and replica counts are never changed.

    Adding partitions would move keys to other partitions and break per-key order and the
    state keyed by partition, so a mismatch is reported as drift for a person to decide.
    """
    plan = Plan()
    for spec in specs:
        state = cluster.get(spec.name)
        if state is None:
            plan.create.append(spec)
            continue
        if state.partitions != spec.partitions:
            plan.drift.append(
                f"{spec.name}: {state.partitions} partitions in the cluster, {spec.partitions} "
                f"declared in {spec.source}; repartitioning moves keys, so migrate to a new "
                "topic version or update the declaration"
            )
        if state.replication_factor != spec.replication_factor:
            plan.drift.append(
                f"{spec.name}: replication factor {state.replication_factor} in the cluster, "
                f"{spec.replication_factor} declared in {spec.source}; reassign partitions "
                "with kafka-reassign-partitions or update the declaration"
            )
        changes = {
            key: (state.config.get(key), value)
            for key, value in spec.config.items()
            if state.config.get(key) != value
        }
        if changes:
            plan.alter[spec.name] = changes
    return plan


def _parse(path: Path) -> TopicDeclaration:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise invalid_yaml(path, exc) from exc
    try:
        return TopicDeclaration.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc


def _specs_of(declared: TopicDeclaration, path: Path) -> list[TopicSpec]:
    config = {
        "cleanup.policy": declared.cleanup_policy,
        "retention.ms": str(declared.retention_ms),
        **declared.config,
    }
    specs = [
        TopicSpec(
            declared.name,
            declared.partitions,
            declared.replication_factor,
            config,
            path,
            declared.value_schema,
        )
    ]
    if declared.dlq is not None:
        dlq_config = {"cleanup.policy": "delete", "retention.ms": str(declared.dlq.retention_ms)}
        partitions = declared.dlq.partitions or declared.partitions
        specs.append(
            TopicSpec(
                f"{declared.name}.dlq", partitions, declared.replication_factor, dlq_config, path
            )
        )
    return specs
