"""Config: tabular pipelines (`kind: tabular`): any Avro record of numbers, booleans and strings
plus a label topic, scored and learned from a pipeline YAML alone.

The record is taken as it is (no cleaning stage); x is built from its fields and, when views
are declared, from the features served to its entity. `inputs: auto` derives x from the
source schema. Declared names are checked against the schemas once they are known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from streamproc.config.base import Frozen, TopicRef
from streamproc.config.models import (
    DeclaredModels,
    Labels,
    ModelInputs,
    Models,
)
from streamproc.config.pipeline import (
    Features,
    PipelineSpec,
    declaration_error,
    read_declaration,
    validate_declaration,
)
from streamproc.errors import ConfigError

FieldKind = Literal["numeric", "boolean", "categorical", "other"]
Problem = tuple[tuple[int | str, ...], str]  # (field path in the YAML, what is wrong)
_NUMERIC = frozenset({"int", "long", "float", "double"})


class TabularModels(DeclaredModels):
    """The models of a tabular pipeline: as `models:` of the shop kind, but `inputs` may be
    `auto` and the predictions topic must be named (there is no shop default to fall back on).
    `resolve` turns it into the Models the scorer and the trainer take."""

    inputs: ModelInputs | Literal["auto"] = "auto"
    predictions: TopicRef

    @field_validator("inputs", mode="before")
    @classmethod
    def _auto_or_lists(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":  # one clear message, not one per branch
            raise ValueError(
                f"{value!r}: expected auto, or lists under numeric, log, boolean, present, "
                "categorical and matches"
            )
        return value

    def resolve(self, inputs: ModelInputs) -> Models:
        shared = {name: getattr(self, name) for name in DeclaredModels.model_fields}
        return Models(inputs=inputs, predictions=self.predictions, **shared)


class TabularSpec(Frozen):
    """A validated tabular pipeline declaration."""

    kind: Literal["tabular"]
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: TopicRef
    event_id: str = "event_id"
    time: str | None = Field(None, description="epoch ms field; none: event order")
    entity_key: str | None = Field(None, description="whose record it is (for features)")
    features: Features = Features()
    models: TabularModels | None = None

    @model_validator(mode="after")
    def _features_need_entity_and_time(self) -> TabularSpec:
        if self.features.views and (self.entity_key is None or self.time is None):
            raise ValueError("features.views need entity_key and time (windows are per entity)")
        return self

    def reserved(self) -> set[str]:
        """Fields that identify or time a record or carry its label: never model inputs."""
        names = {self.event_id, self.time, self.entity_key}
        if self.models is not None:
            names |= {self.models.labels.field, self.models.labels.key}
        return {name for name in names if name is not None}


def field_kinds(definition: Mapping[str, Any]) -> dict[str, FieldKind]:
    """How each field of an Avro record schema can enter a model, by its type (a union with
    null counts as its other branch: a missing value gets its own indicator in x)."""
    return {field["name"]: _kind(field["type"]) for field in definition.get("fields", [])}


def _kind(avro_type: Any) -> FieldKind:
    if isinstance(avro_type, list):
        branches = [branch for branch in avro_type if branch != "null"]
        return _kind(branches[0]) if len(branches) == 1 else "other"
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "enum":
            return "categorical"
        return _kind(avro_type.get("type"))
    if avro_type in _NUMERIC:
        return "numeric"
    if avro_type == "boolean":
        return "boolean"
    return "categorical" if avro_type == "string" else "other"


def feature_kinds(features: Features) -> dict[str, FieldKind]:
    """The served features: the latest and the usual value are categories, the rest numbers."""
    kinds: dict[str, FieldKind] = {}
    for view in features.views:
        kinds |= dict.fromkeys(view.feature_names(), "numeric")
        kinds |= dict.fromkeys([*view.last, *view.most_frequent], "categorical")
    return kinds


def auto_inputs(spec: TabularSpec, source: Mapping[str, FieldKind]) -> ModelInputs:
    """The models' x: every usable source field and served feature, reserved ones excepted."""
    kinds = {**source, **feature_kinds(spec.features)}
    usable = {name: kind for name, kind in kinds.items() if name not in spec.reserved()}
    return ModelInputs(
        numeric=[name for name, kind in usable.items() if kind == "numeric"],
        boolean=[name for name, kind in usable.items() if kind == "boolean"],
        categorical=[name for name, kind in usable.items() if kind == "categorical"],
    )


def check_fields(
    spec: TabularSpec, source: Mapping[str, FieldKind], labels: Mapping[str, FieldKind] | None
) -> list[Problem]:
    """Every field the declaration names, against the schemas (`labels`: the label schema's
    fields, None when not checked)."""
    problems: list[Problem] = []
    known = ", ".join(sorted(source))
    for loc, name, kind in _source_fields(spec):
        if name not in source:
            problems.append(
                (loc, f"{name!r} is not a field of {spec.source.schema_name} ({known})")
            )
        elif kind is not None and source[name] != kind:
            problems.append((loc, f"{name!r} is {source[name]} in the schema, expected {kind}"))
    if spec.models is None:
        return problems
    if isinstance(spec.models.inputs, ModelInputs):
        problems += _check_inputs(spec, spec.models.inputs, source)
    problems += _check_labels(spec.models.labels, labels)
    return problems


def _source_fields(
    spec: TabularSpec,
) -> Iterator[tuple[tuple[int | str, ...], str, FieldKind | None]]:
    """Each source field named outside the models: where, which, and the kind it must be
    (None: any)."""
    yield ("event_id",), spec.event_id, None
    if spec.time is not None:
        yield ("time",), spec.time, "numeric"
    if spec.entity_key is not None:
        yield ("entity_key",), spec.entity_key, None
    for index, view in enumerate(spec.features.views):
        for name, aggregate in view.aggregates.items():
            yield ("features", "views", index, "aggregates", name), aggregate.field, "numeric"
        for part in ("last", "most_frequent", "distinct"):
            for name, field in getattr(view, part).items():
                yield ("features", "views", index, part, name), field, None


def _check_inputs(
    spec: TabularSpec, inputs: ModelInputs, source: Mapping[str, FieldKind]
) -> list[Problem]:
    available = {*source, *feature_kinds(spec.features)}
    named: list[tuple[tuple[int | str, ...], str]] = [
        (("models", "inputs", part, index), name)
        for part in ("numeric", "log", "boolean", "present", "categorical")
        for index, name in enumerate(getattr(inputs, part))
    ]
    named += [
        (("models", "inputs", "matches", match), name)
        for match, pair in inputs.matches.items()
        for name in pair
    ]
    return [
        (loc, f"{name!r} is neither a field of {spec.source.schema_name} nor a served feature")
        for loc, name in named
        if name not in available
    ]


def _check_labels(declared: Labels, labels: Mapping[str, FieldKind] | None) -> list[Problem]:
    if labels is None:
        return []
    problems: list[Problem] = []
    for part in ("key", "field", "time_field"):
        name = getattr(declared, part)
        if name not in labels:
            have = ", ".join(sorted(labels))
            problems.append(
                (
                    ("models", "labels", part),
                    f"{name!r} is not a field of the labels' schema "
                    f"{declared.schema_name} ({have})",
                )
            )
    if labels.get(declared.field, "boolean") != "boolean":
        problems.append((("models", "labels", "field"), f"{declared.field!r} must be boolean"))
    return problems


def load_declaration(path: Path) -> PipelineSpec | TabularSpec:
    """Either kind, by its `kind:` (shop when absent); errors as load_pipeline gives them."""
    node, raw = read_declaration(path)
    kind = raw.get("kind", "shop") if isinstance(raw, dict) else "shop"
    if kind == "tabular":
        return validate_declaration(TabularSpec, path, node, raw)
    if kind != "shop":
        raise declaration_error(path, node, [(("kind",), f"{kind!r}: expected shop or tabular")])
    return validate_declaration(PipelineSpec, path, node, raw)


def load_tabular(
    path: Path, schema_of: Callable[[str], Mapping[str, Any]]
) -> tuple[TabularSpec, Models | None]:
    """A tabular declaration checked against its schemas (`schema_of`: a schema's name → its
    Avro definition), and its models with concrete inputs (`auto` derived from the schema)."""
    node, raw = read_declaration(path)
    spec = validate_declaration(TabularSpec, path, node, raw)
    source = field_kinds(schema_of(spec.source.schema_name))
    labels = None if spec.models is None else field_kinds(schema_of(spec.models.labels.schema_name))
    problems = check_fields(spec, source, labels)
    if problems:
        raise declaration_error(path, node, problems)
    if spec.models is None:
        return spec, None
    inputs = spec.models.inputs
    if not isinstance(inputs, ModelInputs):
        inputs = auto_inputs(spec, source)
    if not any(inputs.model_dump().values()):
        raise ConfigError(f"{path}: models.inputs: auto found no numeric, boolean or string field")
    return spec, spec.models.resolve(inputs)
