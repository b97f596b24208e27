"""Core: the pipeline declaration (pipelines/*.yaml), validated into a frozen PipelineSpec."""

from __future__ import annotations

import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamproc.errors import ConfigError, invalid_yaml

TimeFormat = Literal["epoch_s", "epoch_ms", "epoch_us", "local"]
DurationUnit = Literal["us", "ms", "s", "min", "h"]
PiiTreatment = Literal["hash", "drop", "keep"]
UnitSwitchAction = Literal["convert", "quarantine", "flag"]
_ALPHA2 = re.compile(r"^[A-Z]{2}$")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_MS_PER = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TopicRef(_Frozen):
    topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    schema_name: str = Field(alias="schema", pattern=r"^[A-Za-z_][\w.]*$")


class SourceHabits(_Frozen):
    """How one source writes its events: the units and conventions to convert from."""

    time_format: TimeFormat
    default_tz: str | None = None
    tax_included: bool | None = None
    duration_unit: DurationUnit | None = None

    @field_validator("default_tz")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in zoneinfo.available_timezones():
            raise ValueError(f"unknown IANA time zone {value!r}, e.g. Europe/Berlin")
        return value

    @model_validator(mode="after")
    def _local_needs_zone_rule(self) -> SourceHabits:
        if self.time_format != "local" and self.default_tz is not None:
            raise ValueError("default_tz applies to time_format local only")
        return self


class FieldNames(_Frozen):
    """Which raw field holds what (the raw schema's names)."""

    event_id: str = "event_id"
    source: str = "source"
    customer_id: str = "customer_id"
    name: str = "customer_name"
    email: str = "email"
    country: str = "country"
    amount: str = "amount"
    tax_included: str = "amount_includes_tax"
    tax_rate: str = "tax_rate"
    currency: str = "currency"
    items: str = "items"
    occurred_at: str = "occurred_at"
    tz: str = "tz"
    session_duration: str = "session_duration"
    version: str = "app_version"
    payment_method: str = "payment_method"


class EntityKeyPart(_Frozen):
    """One candidate for the entity key: a raw field, and a prefix that says which it was."""

    field: str
    prefix: str = ""


class Money(_Frozen):
    rates_to_eur: dict[str, float]
    tax_rates: dict[str, float]

    @field_validator("rates_to_eur")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        for code, rate in value.items():
            if not re.fullmatch(r"[A-Z]{3}", code) or rate <= 0:
                raise ValueError(f"{code}: {rate}: expected ISO 4217 code → positive rate")
        if value.get("EUR") != 1.0:
            raise ValueError("EUR must be listed with rate 1.0")
        return value

    @field_validator("tax_rates")
    @classmethod
    def _taxes(cls, value: dict[str, float]) -> dict[str, float]:
        for code, rate in value.items():
            if not _ALPHA2.match(code) or not 0 <= rate < 1:
                raise ValueError(f"{code}: {rate}: expected alpha-2 country → rate in [0, 1)")
        return value


class UnitSwitch(_Frozen):
    """Undeclared unit changes of numeric fields, found by their magnitude per version."""

    fields: list[str] = ["session_duration"]
    action: UnitSwitchAction = "convert"
    min_reference: int = Field(30, ge=5, description="values seen before judging others")
    tolerance_decades: float = Field(0.5, gt=0, lt=1.5)


class Dedupe(_Frozen):
    content_fields: list[str] = ["entity_key", "amount_gross_eur", "items"]
    window: str = "10m"
    exact_ttl: str = "7d"
    content_ttl: str = "1h"

    @field_validator("window", "exact_ttl", "content_ttl")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("expected a duration like 500ms, 30s, 10m, 24h or 7d")
        return value

    @property
    def window_ms(self) -> int:
        return duration_ms(self.window)

    @property
    def exact_ttl_ms(self) -> int:
        return duration_ms(self.exact_ttl)

    @property
    def content_ttl_ms(self) -> int:
        return duration_ms(self.content_ttl)


AggregateOp = Literal["count", "sum", "mean", "min", "max", "stddev"]
LatePolicy = Literal["apply", "divert"]


class Aggregate(_Frozen):
    """Windowed statistics of one numeric field of the clean event."""

    field: str
    ops: list[AggregateOp] = Field(min_length=1)


class FeatureView(_Frozen):
    """One Redis hash per entity: its features share a timestamp and a TTL."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    windows: dict[str, str] = Field(min_length=1, description="window → bucket, e.g. 1h: 5m")
    aggregates: dict[str, Aggregate] = {}
    last: dict[str, str] = {}  # feature name → clean field: its value at the newest event
    most_frequent: dict[str, str] = {}  # feature name → clean field
    distinct: dict[str, str] = {}  # feature name → clean field (exact up to max_distinct)
    ratios: dict[str, tuple[str, str]] = {}  # name → (clean field, feature it is held against)
    since_last: str = "seconds_since_last"  # seconds since the entity's newest event
    max_distinct: int = Field(64, ge=1, le=10_000)
    ttl: str = "8d"

    def feature_names(self) -> list[str]:
        windowed = [
            f"{name}_{op}_{window}"
            for name, aggregate in self.aggregates.items()
            for window in self.windows
            for op in aggregate.ops
        ]
        return [
            *windowed,
            self.since_last,
            *self.last,
            *self.most_frequent,
            *self.distinct,
            *self.ratios,
        ]

    @field_validator("windows")
    @classmethod
    def _buckets_divide_windows(cls, value: dict[str, str]) -> dict[str, str]:
        for window, bucket in value.items():
            if not (_DURATION.match(window) and _DURATION.match(bucket)):
                raise ValueError(f"{window}: {bucket}: expected durations like 24h: 1h")
            if duration_ms(window) % duration_ms(bucket) or duration_ms(bucket) <= 0:
                raise ValueError(f"{window}: {bucket}: the bucket must divide the window")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("expected a duration like 8d")
        return value

    @model_validator(mode="after")
    def _ratios_name_features(self) -> FeatureView:
        names = set(self.feature_names())
        for ratio, (_field, against) in self.ratios.items():
            if against not in names:
                raise ValueError(f"ratios.{ratio}: {against!r} is not a windowed feature here")
        return self


class Features(_Frozen):
    """Online features per entity, in Redis (or in memory for run-file)."""

    version: int = Field(1, ge=1, description="a new version builds beside the live one")
    lateness: str = "1h"
    late: LatePolicy = "apply"
    views: list[FeatureView] = []

    @field_validator("lateness")
    @classmethod
    def _lateness(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("expected a duration like 1h")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Features:
        seen: set[str] = set()
        for view in self.views:
            clash = seen & set(view.feature_names())
            if clash:
                raise ValueError(f"views.{view.name}: feature names used twice: {sorted(clash)}")
            seen |= set(view.feature_names())
        return self


# The River steps a model pipeline may name (streamproc.models builds them).
MODEL_STEPS = frozenset(
    {
        "StandardScaler",
        "MinMaxScaler",
        "LogisticRegression",
        "HoeffdingTreeClassifier",
        "HoeffdingAdaptiveTreeClassifier",
        "ARFClassifier",
    }
)


class ModelInputs(_Frozen):
    """What x is made of: clean fields and served features, by how they enter the model."""

    numeric: list[str] = []
    log: list[str] = []  # numbers entered as log(1 + max(0, v)): ratios, durations
    boolean: list[str] = []
    present: list[str] = []  # 1 when the field has a value (a customer id: not a guest)
    categorical: list[str] = []  # one-hot
    matches: dict[str, tuple[str, str]] = {}  # 1 when two values are equal


class ModelSpec(_Frozen):
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


class Labels(_Frozen):
    """Where the truth comes from, late: a topic of outcomes joined to predictions by key.

    `max_delay` is how long the x served to an event is kept for its label; `hold` is how
    long (in event time) a label whose event has not been scored yet waits for it."""

    topic: str
    schema_name: str = Field("shop.OrderOutcome", alias="schema")
    field: str = "is_fraud"
    key: str = "event_id"
    time_field: str = "occurred_at"
    max_delay: str = "7d"
    hold: str = "1h"

    @field_validator("max_delay", "hold")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("expected a duration like 30m, 24h or 7d")
        return value

    @property
    def max_delay_ms(self) -> int:
        return duration_ms(self.max_delay)

    @property
    def hold_ms(self) -> int:
        return duration_ms(self.hold)


class Snapshots(_Frozen):
    """How often the trainer publishes its models (whichever comes first)."""

    every_labels: int = Field(1_000, ge=1)
    every: str = "30s"

    @field_validator("every")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("expected a duration like 10s or 5m")
        return value

    @property
    def every_ms(self) -> int:
        return duration_ms(self.every)


class Drift(_Frozen):
    """ADWIN on each model's error stream and on these inputs' values; on a detection,
    `reset_challengers` starts the challengers anew (the champion keeps serving)."""

    features: list[str] = []
    delta: float = Field(0.002, gt=0, lt=1)
    action: Literal["none", "reset_challengers"] = "none"


class PromotionRule(_Frozen):
    """A challenger replaces the champion when its rolling ROC AUC over the last `window`
    labels beats the champion's by `margin` (both scored on the same labels)."""

    margin: float = Field(0.01, ge=0, le=1)
    window: int = Field(2_000, ge=50)


class Models(_Frozen):
    inputs: ModelInputs
    labels: Labels
    predictions: TopicRef = TopicRef.model_validate(
        {"topic": "shop.order_prediction.v1", "schema": "shop.OrderPrediction"}
    )
    champion: ModelSpec
    challengers: list[ModelSpec] = []
    promotion: PromotionRule = PromotionRule()
    snapshots: Snapshots = Snapshots()
    drift: Drift = Drift()

    @model_validator(mode="after")
    def _unique_names(self) -> Models:
        names = [self.champion.name, *(c.name for c in self.challengers)]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        numbers = {*self.inputs.numeric, *self.inputs.log, *self.inputs.boolean}
        for name in self.drift.features:
            if name not in numbers:
                raise ValueError(
                    f"drift.features: {name!r} is not a numeric, log or boolean input "
                    f"({', '.join(sorted(numbers))})"
                )
        return self


class PipelineSpec(_Frozen):
    """A validated pipeline declaration (the shop kind: raw orders cleaned, deduped, keyed)."""

    kind: Literal["shop"] = "shop"  # kind: tabular is streamproc.tabular.TabularSpec
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source: TopicRef
    sink: TopicRef
    duplicates: TopicRef
    home_country: str = Field(pattern=_ALPHA2.pattern)
    fields: FieldNames = FieldNames()
    sources: dict[str, SourceHabits]
    money: Money
    country_aliases: dict[str, str] = {}
    payment_methods: list[str] | None = None
    pii: dict[str, PiiTreatment] = {"email": "hash", "customer_name": "keep"}
    # The first part with a value is the entity key; PII fields count by their keyed hash.
    entity_key: list[EntityKeyPart] = [
        EntityKeyPart(field="customer_id"),
        EntityKeyPart(field="email", prefix="guest:"),
    ]
    unit_switch: UnitSwitch = UnitSwitch()
    dedupe: Dedupe = Dedupe()
    features: Features = Features()
    models: Models | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        if self.home_country not in self.money.tax_rates:
            raise ValueError(f"home_country {self.home_country} needs a rate in money.tax_rates")
        for alias, code in self.country_aliases.items():
            if not (_ALPHA2.match(alias) and _ALPHA2.match(code)):
                raise ValueError(f"country_aliases.{alias}: {code}: expected alpha-2 → alpha-2")
        if not self.sources:
            raise ValueError("sources: declare at least one source and its habits")
        known = set(self.fields.model_dump().values())
        for part in self.entity_key:
            if part.field not in known:
                raise ValueError(
                    f"entity_key: {part.field!r} is not a raw field ({', '.join(sorted(known))})"
                )
        return self


def duration_ms(text: str) -> int:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return int(match[1]) * _MS_PER[match[2]]


def load_pipeline(path: Path) -> PipelineSpec:
    """Load and validate a shop pipeline; errors name the file, the line and the field path.
    A tabular declaration is refused here (streamproc.tabular.load_declaration takes both)."""
    node, raw = read_declaration(path)
    if isinstance(raw, dict) and raw.get("kind", "shop") != "shop":
        line = line_of(node, ("kind",))
        raise ConfigError(
            f"{path}:{line}: kind: {raw['kind']}: this command runs shop pipelines only; "
            "run-file runs a tabular one, the worker does not yet"
        )
    return validate_declaration(PipelineSpec, path, node, raw)


Declared = TypeVar("Declared", bound=BaseModel)


def read_declaration(path: Path) -> tuple[Any, Any]:
    """The YAML document's root node (for line numbers) and its values, from one parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the pipeline declaration: {exc.strerror}") from exc
    loader = yaml.SafeLoader(text)  # one parse: the nodes give lines, the document values
    try:
        node = loader.get_single_node()
        raw = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise invalid_yaml(path, exc) from exc
    finally:
        loader.dispose()
    return node, raw


def validate_declaration(model: type[Declared], path: Path, node: Any, raw: Any) -> Declared:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise declaration_error(
            path, node, [(err["loc"], err["msg"]) for err in exc.errors()]
        ) from exc


def declaration_error(
    path: Path, node: Any, problems: list[tuple[tuple[int | str, ...], str]]
) -> ConfigError:
    """One error listing every problem as file:line: field.path: what is wrong."""
    lines = [f"{path}:{line_of(node, loc)}: {_dotted(loc)}: {msg}" for loc, msg in problems]
    return ConfigError("invalid pipeline declaration:\n  " + "\n  ".join(lines))


def _dotted(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def line_of(node: Any, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the deepest YAML node on the error's path."""
    line = 1 if node is None else node.start_mark.line + 1
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
