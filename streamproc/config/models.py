"""Config: the `models:` declaration of a pipeline: inputs, labels, River pipelines from a
whitelist, promotion, snapshots and drift."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from streamproc.config.base import Duration, Frozen, TopicRef, duration_ms

# The River steps a model pipeline may name, each with the River module that holds it
# (core.learning builds them from this table alone). A whitelist: a pipeline file must never
# be a way to import arbitrary code.
MODEL_STEPS: dict[str, str] = {
    "StandardScaler": "preprocessing",
    "MinMaxScaler": "preprocessing",
    "LogisticRegression": "linear_model",
    "HoeffdingTreeClassifier": "tree",
    "HoeffdingAdaptiveTreeClassifier": "tree",
    "ARFClassifier": "forest",
}


class ModelInputs(Frozen):
    """What x is made of: clean fields and served features, by how they enter the model."""

    numeric: list[str] = []
    log: list[str] = []  # numbers entered as log(1 + max(0, v)): ratios, durations
    boolean: list[str] = []
    present: list[str] = []  # 1 when the field has a value (a customer id: not a guest)
    categorical: list[str] = []  # one-hot
    matches: dict[str, tuple[str, str]] = {}  # 1 when two values are equal

    def names(self) -> frozenset[str]:
        """Every field or feature x is built from."""
        paired = (name for pair in self.matches.values() for name in pair)
        lists = (self.numeric, self.log, self.boolean, self.present, self.categorical)
        return frozenset((*(name for names in lists for name in names), *paired))


class ModelSpec(Frozen):
    """A declared model: its name and its River pipeline, with parameters per step."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    pipeline: str = Field(
        description='River steps joined by "|", e.g. StandardScaler | LogisticRegression'
    )
    params: dict[str, dict[str, Any]] = {}

    @field_validator("pipeline")
    @classmethod
    def _known_steps(cls, value: str) -> str:
        for step in (part.strip() for part in value.split("|")):
            if step not in MODEL_STEPS:
                raise ValueError(f"{step!r} is not a known step ({', '.join(sorted(MODEL_STEPS))})")
        return value


class Labels(Frozen):
    """Where the truth comes from, late: a topic of outcomes joined to predictions by key.

    `max_delay` is how long the x served to an event is kept for its label; `hold` is how
    long (in event time) a label whose event has not been scored yet waits for it. `sample`
    is the share of labels the models learn from, when training every label costs more CPU
    than the host has (chosen by a hash of the key: every replay learns the same labels, and
    every model the same ones, so the champion and challengers stay comparable); the others
    are counted as `sampled_out`."""

    topic: str
    schema_name: str = Field("shop.OrderOutcome", alias="schema")
    field: str = "is_fraud"
    key: str = "event_id"
    time_field: str = "occurred_at"
    max_delay: Duration = "7d"
    hold: Duration = "1h"
    sample: float = Field(1.0, gt=0, le=1)

    @property
    def max_delay_ms(self) -> int:
        return duration_ms(self.max_delay)

    @property
    def hold_ms(self) -> int:
        return duration_ms(self.hold)


class Snapshots(Frozen):
    """How often the trainer publishes its models (whichever comes first). Workers take a
    snapshot at most every STREAMPROC_FOLLOW_INTERVAL_S (5 s), so a busier cadence only costs:
    at 1,400 labels/s, a snapshot every 1,000 labels was 16% of the trainer's CPU. A restarted
    trainer learns again at most `every_labels` labels."""

    every_labels: int = Field(20_000, ge=1)
    every: Duration = "10s"

    @property
    def every_ms(self) -> int:
        return duration_ms(self.every)


class Drift(Frozen):
    """ADWIN on each model's error stream and on these inputs' values; on a detection,
    `reset_challengers` starts the challengers anew (the champion keeps serving)."""

    features: list[str] = []
    delta: float = Field(0.002, gt=0, lt=1)
    action: Literal["none", "reset_challengers"] = "none"


class PromotionRule(Frozen):
    """A challenger replaces the champion when its rolling ROC AUC over the last `window`
    labels beats the champion's by `margin` (both scored on the same labels)."""

    margin: float = Field(0.01, ge=0, le=1)
    window: int = Field(2_000, ge=50)


class DeclaredModels(Frozen):
    """What every pipeline kind declares of its models alike."""

    labels: Labels
    champion: ModelSpec
    challengers: list[ModelSpec] = []
    promotion: PromotionRule = PromotionRule()
    snapshots: Snapshots = Snapshots()
    drift: Drift = Drift()

    def specs(self) -> tuple[ModelSpec, ...]:
        """Every declared model, the champion first."""
        return (self.champion, *self.challengers)

    @model_validator(mode="after")
    def _unique_names(self) -> DeclaredModels:
        """Scores, snapshots and the champion choice go by model name: two alike would clash."""
        names = [spec.name for spec in self.specs()]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return self


class Models(DeclaredModels):
    """The `models:` of a shop pipeline, or a tabular one's once its inputs are known."""

    inputs: ModelInputs
    predictions: TopicRef = TopicRef.model_validate(
        {"topic": "shop.order_prediction.v1", "schema": "shop.OrderPrediction"}
    )

    @model_validator(mode="after")
    def _drift_on_numbers(self) -> Models:
        numbers = {*self.inputs.numeric, *self.inputs.log, *self.inputs.boolean}
        for name in self.drift.features:
            if name not in numbers:
                raise ValueError(
                    f"drift.features: {name!r} is not a numeric, log or boolean input "
                    f"({', '.join(sorted(numbers))})"
                )
        return self
