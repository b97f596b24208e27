"""Core: online models declared in the pipeline: River pipelines built from a whitelist of
steps, and the input vector x built from a clean event and the features served to it.

No I/O: the trainer (core.training) learns with these; the worker and the files feed it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from river import compose, drift, metrics, optim

from streamproc.config.models import MODEL_STEPS, ModelInputs, ModelSpec, PromotionRule
from streamproc.errors import EventRejected

# The seed of a step that draws random numbers (ARFClassifier, HoeffdingAdaptiveTreeClassifier)
# when its declaration gives none: River's default, None, seeds from the system, and two
# replays of one log then built models that predicted differently.
UNDECLARED_SEED = 0
# The optimizers a step's parameters may name (the steps: config.models.MODEL_STEPS).
OPTIMIZERS: dict[str, Any] = {"SGD": optim.SGD, "Adam": optim.Adam, "AdaGrad": optim.AdaGrad}


def build_pipeline(spec: ModelSpec) -> Any:
    """The River pipeline a model spec declares, fresh (nothing learned)."""
    steps = []
    for name in (part.strip() for part in spec.pipeline.split("|")):
        params = dict(spec.params.get(name, {}))
        if "optimizer" in params:
            params["optimizer"] = _optimizer(params["optimizer"])
        step = _river_step(name)
        if "seed" in inspect.signature(step).parameters:
            params.setdefault("seed", UNDECLARED_SEED)
        steps.append(step(**params))
    return compose.Pipeline(*steps) if len(steps) > 1 else steps[0]


def _river_step(name: str) -> Any:
    """The River class of a whitelisted step (the declaration refused any other name)."""
    return getattr(importlib.import_module(f"river.{MODEL_STEPS[name]}"), name)


def _optimizer(declared: Any) -> Any:
    """{"SGD": {"lr": 0.05}} → optim.SGD(lr=0.05)."""
    [(name, params)] = dict(declared).items()
    return OPTIMIZERS[name](**(params or {}))


def build_x(
    inputs: ModelInputs, event: Mapping[str, Any], features: Mapping[str, Any]
) -> dict[str, float]:
    """The model's input from the clean event and its served features (values or FeatureValue
    tuples). A missing number is left out, with a `<name>_missing` indicator, never a zero;
    categories are one-hot; `matches` says whether two values are equal."""

    def value(name: str) -> Any:
        if name in features:
            found = features[name]
            return found[0] if isinstance(found, tuple) else found
        return event.get(name)

    x: dict[str, float] = {}
    for names, scale in ((inputs.numeric, float), (inputs.log, _log1p)):
        for name in names:
            _add_number(x, name, value(name), scale)
    for name in inputs.present:
        x[f"{name}_present"] = 0.0 if value(name) in (None, "") else 1.0
    for name in inputs.boolean:
        flag = value(name)
        _add_flag(x, name, None if flag is None else bool(flag))
    for name in inputs.categorical:
        category = value(name)
        x[f"{name}={category if category is not None else '∅'}"] = 1.0
    for name, (left, right) in inputs.matches.items():
        a, b = value(left), value(right)
        _add_flag(x, name, None if a is None or b is None else a == b)
    return x


def _add_number(
    x: dict[str, float], name: str, number: Any, scale: Callable[[float], float]
) -> None:
    if isinstance(number, bool) or not isinstance(number, int | float) or math.isnan(number):
        x[f"{name}_missing"] = 1.0
    else:
        x[name] = _bounded(name, scale(number))


def _add_flag(x: dict[str, float], name: str, flag: bool | None) -> None:
    if flag is None:
        x[f"{name}_missing"] = 1.0
    else:
        x[name] = 1.0 if flag else 0.0


# Beyond this an input is a broken value, not a measurement; its square still fits a float, so
# River's running variances stay finite (one 1e308 made StandardScaler return NaN for good).
INPUT_LIMIT = 1e12


def _bounded(name: str, number: float) -> float:
    if not -INPUT_LIMIT <= number <= INPUT_LIMIT:  # infinities too
        raise EventRejected("invalid_input", f"model input {name} is {number!r}")
    return number


def _log1p(number: float) -> float:
    return math.log1p(max(0.0, float(number)))


UNINFORMED = 0.5  # the score of a model that knows nothing yet


def probability(model: Any, x: Mapping[str, float]) -> float:
    """P(label is true). River leaves out a class it has not seen, so a missing True after
    negatives only is 0, not unknown; only an empty answer (nothing learned) is UNINFORMED."""
    proba = model.predict_proba_one(dict(x))
    if not proba:
        return UNINFORMED
    return float(proba.get(True, 0.0))


class PrequentialScore:
    """A model's rolling quality on the labels it learns (test, then train): ROC AUC over the
    last `window` labels, log loss and accuracy (threshold 0.5), as River computes them."""

    def __init__(self, window: int = 5_000) -> None:
        self._auc = metrics.RollingROCAUC(window_size=window)
        self._log_loss = metrics.LogLoss()
        self._accuracy = metrics.Accuracy()
        self.labels = 0

    def update(self, label: bool, probability_true: float) -> None:
        self._auc.update(label, probability_true)
        self._log_loss.update(label, {True: probability_true, False: 1 - probability_true})
        self._accuracy.update(label, probability_true >= 0.5)  # noqa: PLR2004 - even odds
        self.labels += 1

    def snapshot(self) -> dict[str, float]:
        return {
            "roc_auc": float(self._auc.get()),
            "log_loss": float(self._log_loss.get()),
            "accuracy": float(self._accuracy.get()),
            "labels": float(self.labels),
        }


class SnapshotMismatch(Exception):
    """A snapshot of models declared differently: restoring them would mix two models."""


def spec_hash(inputs: ModelInputs, spec: ModelSpec) -> str:
    """What a model is: its pipeline, parameters and inputs. A change makes a new model."""
    declared = {"inputs": inputs.model_dump(), "model": spec.model_dump()}
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()[:16]


class DriftWatch:
    """ADWIN (River) over a stream of numbers, e.g. a model's absolute error per label or a
    feature's values: says when the recent mean has moved away from the older one."""

    def __init__(self, delta: float = 0.002) -> None:
        self._adwin = drift.ADWIN(delta=delta)
        self.detections = 0

    def update(self, value: float) -> bool:
        self._adwin.update(value)
        if self._adwin.drift_detected:
            self.detections += 1
            return True
        return False


@dataclass(frozen=True, slots=True)
class Promotion:
    """A challenger became champion."""

    after_labels: int
    retired: str
    promoted: str
    retired_auc: float
    promoted_auc: float


def in_sample(key: str, share: float) -> bool:
    """Whether a label is in a sample of `share`: by a hash of its key that every process
    and every replay computes alike (Python's hash() of a str changes per process)."""
    return share >= 1.0 or zlib.crc32(key.encode()) < share * 2**32


def better_champion(
    rule: PromotionRule, champion: str, cards: Mapping[str, PrequentialScore]
) -> Promotion | None:
    """The challenger whose rolling ROC AUC beats the champion's by the rule's margin, both
    over at least `window` labels; None when the champion stays."""
    current = cards[champion]
    if current.labels < rule.window:
        return None
    champion_auc = current.snapshot()["roc_auc"]
    best, best_auc = champion, champion_auc
    for name, card in cards.items():
        auc = card.snapshot()["roc_auc"]
        if name != champion and card.labels >= rule.window and auc > best_auc:
            best, best_auc = name, auc
    if best == champion or best_auc - champion_auc < rule.margin:
        return None
    return Promotion(current.labels, champion, best, champion_auc, best_auc)
