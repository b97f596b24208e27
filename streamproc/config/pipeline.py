"""Config: the pipeline declaration (pipelines/*.yaml), validated into a frozen PipelineSpec."""

from __future__ import annotations

import math
import re
import zoneinfo
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from streamproc.config.base import Duration, Frozen, TopicRef, duration_ms
from streamproc.config.models import Models
from streamproc.errors import ConfigError, invalid_yaml

TimeFormat = Literal["epoch_s", "epoch_ms", "epoch_us", "local"]
DurationUnit = Literal["us", "ms", "s", "min", "h"]
PiiTreatment = Literal["hash", "drop", "keep"]
UnitSwitchAction = Literal["convert", "quarantine", "flag"]
_ALPHA2 = re.compile(r"^[A-Z]{2}$")


class SourceHabits(Frozen):
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


class FieldNames(Frozen):
    """Which raw field holds what, by the names of the raw schema's newest version: the
    decoder reads every record as that version, so a field renamed in it (v2's item_count,
    v1's items) is read here by its new name only, whichever version wrote the record. A
    field the newest version dropped (amount_includes_tax) is kept in the reader at its
    default: a v1 record's value is read as before, a v2 record's is null, which the
    normalizer treats as the source's declared habit."""

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
    items: str = "item_count"  # shop.OrderSubmitted v1 named it items
    occurred_at: str = "occurred_at"
    tz: str = "tz"
    session_duration: str = "session_duration"
    version: str = "app_version"
    payment_method: str = "payment_method"


class EntityKeyPart(Frozen):
    """One candidate for the entity key: a raw field, and a prefix that says which it was."""

    field: str
    prefix: str = ""


class Money(Frozen):
    """What amounts in other currencies and with tax are brought to: net euros."""

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


class Plausible(Frozen):
    """What a shop can really receive: a canonical value outside its [min, max] is a broken
    record (the DLQ, with the field's reason), never a feature or a model input."""

    amount_gross_eur: tuple[float, float] = (0.0, 100_000.0)
    tax_rate: tuple[float, float] = (0.0, 0.5)
    items: tuple[int, int] = (1, 10_000)
    session_duration_s: tuple[float, float] = (0.0, 86_400.0)  # a day: longer is a unit slip
    text_chars: int = Field(512, ge=16, description="longest text field kept (names, e-mail)")

    @model_validator(mode="after")
    def _ordered(self) -> Plausible:
        for name in ("amount_gross_eur", "tax_rate", "items", "session_duration_s"):
            low, high = getattr(self, name)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{name}: expected [min, max] with finite min < max")
        return self


class UnitSwitch(Frozen):
    """Undeclared unit changes of numeric fields, found by their magnitude per version."""

    fields: list[str] = ["session_duration"]
    action: UnitSwitchAction = "convert"
    min_reference: int = Field(30, ge=5, description="values seen before judging others")


class Dedupe(Frozen):
    """Which fields make two orders the same content, and how long ids and contents are
    remembered."""

    content_fields: list[str] = ["entity_key", "amount_gross_eur", "items"]
    window: Duration = "10m"
    exact_ttl: Duration = "7d"
    content_ttl: Duration = "1h"

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


class Aggregate(Frozen):
    """Windowed statistics of one numeric field of the clean event."""

    field: str
    ops: list[AggregateOp] = Field(min_length=1)


class FeatureView(Frozen):
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
    ttl: Duration = "8d"

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
            try:
                window_ms, bucket_ms = duration_ms(window), duration_ms(bucket)
            except ValueError:
                raise ValueError(f"{window}: {bucket}: expected durations like 24h: 1h") from None
            if bucket_ms <= 0 or window_ms % bucket_ms:
                raise ValueError(f"{window}: {bucket}: the bucket must divide the window")
        return value

    @model_validator(mode="after")
    def _ratios_name_features(self) -> FeatureView:
        names = set(self.feature_names())
        for ratio, (_field, against) in self.ratios.items():
            if against not in names:
                raise ValueError(f"ratios.{ratio}: {against!r} is not a windowed feature here")
        return self


class Features(Frozen):
    """Online features per entity, in Redis (or in memory for run-file)."""

    version: int = Field(1, ge=1, description="a new version builds beside the live one")
    lateness: Duration = "1h"
    late: LatePolicy = "apply"
    views: list[FeatureView] = []

    @model_validator(mode="after")
    def _unique_names(self) -> Features:
        seen: set[str] = set()
        for view in self.views:
            clash = seen & set(view.feature_names())
            if clash:
                raise ValueError(f"views.{view.name}: feature names used twice: {sorted(clash)}")
            seen |= set(view.feature_names())
        return self


class PipelineSpec(Frozen):
    """A validated pipeline declaration (the shop kind: raw orders cleaned, deduped, keyed)."""

    kind: Literal["shop"] = "shop"  # kind: tabular is streamproc.config.tabular.TabularSpec
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
    plausible: Plausible = Plausible()
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


def load_pipeline(path: Path) -> PipelineSpec:
    """Load and validate a shop pipeline; errors name the file, the line and the field path.
    A tabular declaration is refused here (config.tabular.load_declaration takes both)."""
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
