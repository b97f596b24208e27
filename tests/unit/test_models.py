"""Models: pipelines from a whitelist, x from events and served features, late labels."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from river import datasets, evaluate
from river import metrics as river_metrics

from streamproc.adapters.avro.schemas import SchemaCatalog
from streamproc.config.models import (
    MODEL_STEPS,
    Labels,
    ModelInputs,
    Models,
    ModelSpec,
    PromotionRule,
)
from streamproc.config.pipeline import PipelineSpec, load_pipeline
from streamproc.core.learning import (
    UNINFORMED,
    DriftWatch,
    build_pipeline,
    build_x,
    probability,
)
from streamproc.core.prequential import PrequentialRun
from streamproc.scenario.shop import GeneratorConfig, generate, roc_auc, write_scenario
from streamproc.tools.run_file import run_file
from tests.conftest import REPO


@pytest.fixture(scope="module")
def spec() -> PipelineSpec:
    return load_pipeline(REPO / "pipelines/shop_orders.yaml")


@pytest.mark.parametrize("step", sorted(MODEL_STEPS))
def test_every_whitelisted_step_is_built_from_river(step: str) -> None:
    built = build_pipeline(ModelSpec(name="m", pipeline=step))
    assert type(built).__name__ == step
    assert type(built).__module__.startswith(f"river.{MODEL_STEPS[step]}")


@pytest.mark.parametrize("step", ["HoeffdingAdaptiveTreeClassifier", "ARFClassifier"])
def test_a_step_that_draws_random_numbers_is_built_alike_every_time(step: str) -> None:
    """Seeded from the system, two replays of one log learned different models."""
    predictions = []
    for _ in range(2):
        built = build_pipeline(ModelSpec(name="m", pipeline=step))
        rng = random.Random(3)
        for _ in range(1_500):
            fraud = rng.random() < 0.3
            built.learn_one({"a": rng.gauss(2.0 if fraud else 0.0, 1.0), "b": rng.random()}, fraud)
        predictions.append([built.predict_proba_one({"a": v / 2, "b": 0.5}) for v in range(-4, 8)])
    assert predictions[0] == predictions[1]
    declared = ModelSpec(name="m", pipeline=step, params={step: {"seed": 42}})
    assert build_pipeline(declared).seed == 42  # a declared seed is kept


def test_an_unknown_step_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="'os.system' is not a known step"):
        ModelSpec(name="bad", pipeline="StandardScaler | os.system")


def test_declared_pipelines_are_built_with_their_parameters(spec: PipelineSpec) -> None:
    assert spec.models is not None
    champion = build_pipeline(spec.models.champion)
    assert str(champion) == "StandardScaler | LogisticRegression"
    assert champion["LogisticRegression"].optimizer.learning_rate == 0.02


def test_x_has_no_silent_zeros_and_one_hot_categories() -> None:
    inputs = ModelInputs(
        numeric=["amount_count_1h"],
        log=["session_duration_s"],
        present=["customer_id"],
        categorical=["source"],
        matches={"country_is_usual": ("country", "usual_country")},
    )
    event = {"session_duration_s": None, "customer_id": "C1", "source": "web", "country": "DE"}
    features = {"amount_count_1h": (2, "fresh", 0), "usual_country": ("DE", "fresh", 0)}
    x = build_x(inputs, event, features)
    assert x == {
        "amount_count_1h": 2.0,
        "session_duration_s_missing": 1.0,
        "customer_id_present": 1.0,
        "source=web": 1.0,
        "country_is_usual": 1.0,
    }


def _one_model(spec: ModelSpec, hold: str = "1h") -> Models:
    return Models(
        inputs=ModelInputs(numeric=["v"]), labels=Labels(topic="t", hold=hold), champion=spec
    )


def test_labels_are_learned_only_once_their_time_has_come(spec: PipelineSpec) -> None:
    assert spec.models is not None
    run = PrequentialRun(_one_model(spec.models.champion), [("a", True, 5_000)])
    run.score("a", 1_000, {"v": 1.0})
    run.score("b", 4_999, {"v": 1.0})
    assert run.trainer.state.learned == 0
    run.score("c", 5_000, {"v": 1.0})
    assert run.trainer.state.learned == 1


@pytest.mark.slow
async def test_features_bring_the_champion_near_the_best_possible_auc(
    spec: PipelineSpec, tmp_path: Path
) -> None:
    """Offline and prequential, labels delayed as the generator delays them: the champion with
    the served features against the same model without them and the Bayes-optimal AUC."""
    assert spec.models is not None
    scenario = generate(GeneratorConfig(events=12_000, seed=13))
    source, _, _ = write_scenario(scenario, tmp_path / "orders.jsonl")
    catalog = SchemaCatalog.load(REPO / "schemas")
    await run_file(spec, catalog, b"k", source, tmp_path / "out")
    clean = [json.loads(line) for line in (tmp_path / "out/clean.jsonl").read_text().splitlines()]
    served = {
        line["event_id"]: {name: f["value"] for name, f in line["features"].items()}
        for line in map(json.loads, (tmp_path / "out/features.jsonl").read_text().splitlines())
    }
    truth = {t.event_id: t for t in scenario.truth}
    champion = spec.models.champion.name
    aucs = {}
    for with_features in (True, False):
        known = [(o["event_id"], o["is_fraud"], o["occurred_at"]) for o in scenario.outcomes]
        run = PrequentialRun(spec.models.model_copy(update={"challengers": []}), known)
        scores, labels, best = [], [], []
        for record in clean:
            features = served.get(record["event_id"], {}) if with_features else {}
            x = build_x(spec.models.inputs, record, features)
            scores.append(run.score(record["event_id"], record["occurred_at"], x)[champion])
            order = truth[record["event_id"]]
            labels.append(bool(order.is_fraud))
            best.append(order.fraud_probability or 0.0)
        half = len(scores) // 2  # after a warm-up: the model starts knowing nothing
        aucs[with_features] = roc_auc(scores[half:], labels[half:])
        bayes = roc_auc(best[half:], labels[half:])
    assert bayes - aucs[True] < 0.05, (aucs, bayes)
    assert aucs[True] - aucs[False] > 0.02, (aucs, bayes)


def test_the_score_card_counts_labels_as_they_were_served(spec: PipelineSpec) -> None:
    assert spec.models is not None
    run = PrequentialRun(
        _one_model(spec.models.champion), [(f"e{i}", i % 2 == 0, i + 1) for i in range(200)]
    )
    for i in range(200):
        run.score(f"e{i}", i, {"v": 1.0 if i % 2 == 0 else -1.0})
    run.finish(10_000)
    card = run.trainer.state.cards[spec.models.champion.name].snapshot()
    assert card["labels"] == 200
    assert card["roc_auc"] > 0.9  # a separable toy: learned fast
    assert 0 < card["log_loss"] < 0.7


def test_drift_is_seen_when_the_error_rate_moves_and_not_before() -> None:
    rng = random.Random(1)
    watch = DriftWatch()
    steady = [watch.update(float(rng.random() < 0.1)) for _ in range(1_500)]
    assert not any(steady)
    shifted = [watch.update(float(rng.random() < 0.5)) for _ in range(500)]
    assert any(shifted[:200])  # found within 200 labels of the change
    assert watch.detections >= 1


def test_immediate_labels_reproduce_rivers_progressive_validation() -> None:
    """Score then learn, one label at a time: what river.evaluate.progressive_val_score does."""
    dataset = list(datasets.Phishing())
    declared = ModelSpec(name="phishing", pipeline="StandardScaler | LogisticRegression")
    inputs = ModelInputs(numeric=sorted(dataset[0][0]))
    theirs = evaluate.progressive_val_score(
        dataset, build_pipeline(declared), river_metrics.ROCAUC()
    ).get()
    known = [(str(t), label, t) for t, (_, label) in enumerate(dataset)]  # at its record's time
    models = Models(inputs=inputs, labels=Labels(topic="t"), champion=declared)
    run = PrequentialRun(models, known)
    scores, labels = [], []
    for t, (features, label) in enumerate(dataset):
        scores.append(run.score(str(t), t, build_x(inputs, {}, features))["phishing"])
        labels.append(label)
    run.finish(len(dataset))
    assert abs(roc_auc(scores, labels) - theirs) < 0.01
    assert run.trainer.state.learned == len(dataset)


def _models(margin: float) -> Models:
    """A champion that cannot learn (learning rate 0) and a challenger that can."""
    frozen = {"LogisticRegression": {"optimizer": {"SGD": {"lr": 0.0}}}}
    return Models(
        inputs=ModelInputs(numeric=["v"]),
        labels=Labels(topic="t"),
        champion=ModelSpec(name="stuck", pipeline="LogisticRegression", params=frozen),
        challengers=[ModelSpec(name="learner", pipeline="StandardScaler | LogisticRegression")],
        promotion=PromotionRule(margin=margin, window=100),
    )


def _feed(models: Models, labels: int) -> PrequentialRun:
    rng = random.Random(3)
    truth = [rng.random() < 0.5 for _ in range(labels)]
    run = PrequentialRun(models, [(str(t), label, t) for t, label in enumerate(truth)])
    for t, label in enumerate(truth):
        run.score(str(t), t, {"v": (1.0 if label else -1.0) + rng.gauss(0, 0.5)})
    run.finish(labels)
    return run


def test_a_challenger_that_beats_the_champion_by_the_margin_is_promoted() -> None:
    run = _feed(_models(margin=0.05), 400)
    assert run.champion == "learner"
    [promotion] = run.promotions
    assert (promotion.retired, promotion.promoted) == ("stuck", "learner")
    assert promotion.promoted_auc - promotion.retired_auc >= 0.05


def test_no_promotion_below_the_margin() -> None:
    run = _feed(_models(margin=1.0), 400)  # nobody beats anyone by a whole AUC
    assert (run.champion, run.promotions) == ("stuck", [])


def test_a_label_that_comes_before_its_event_waits_for_it(spec: PipelineSpec) -> None:
    assert spec.models is not None
    run = PrequentialRun(_one_model(spec.models.champion), [("late-event", True, 1_000)])
    run.score("other", 2_000, {"v": 1.0})  # the label is here; its order is not (yet)
    assert (len(run.trainer.state.held), run.trainer.state.learned) == (1, 0)
    run.score("late-event", 2_500, {"v": 1.0})
    assert run.trainer.state.learned == 1
    assert run.trainer.state.cards[spec.models.champion.name].labels == 1


def test_a_label_whose_event_never_comes_is_given_up_after_the_hold(spec: PipelineSpec) -> None:
    assert spec.models is not None
    run = PrequentialRun(_one_model(spec.models.champion, hold="1m"), [("rejected", True, 1_000)])
    run.score("other", 1_000, {"v": 1.0})
    run.score("later", 1_000 + 60_000, {"v": 1.0})
    assert run.unjoined == 0  # held for the whole minute
    run.score("much-later", 1_000 + 60_001 + 1_000, {"v": 1.0})
    assert (run.unjoined, run.trainer.state.learned, run.trainer.state.held) == (1, 0, {})


@pytest.mark.parametrize(
    "model",
    [
        "HoeffdingTreeClassifier",
        "HoeffdingAdaptiveTreeClassifier",
        "StandardScaler | LogisticRegression",
    ],
)
def test_a_model_that_saw_only_negatives_scores_low_not_uninformed(model: str) -> None:
    built = build_pipeline(ModelSpec(name="m", pipeline=model))
    assert probability(built, {"a": 1.0}) == UNINFORMED  # nothing learned: the prior
    for i in range(20):
        built.learn_one({"a": float(i % 3)}, False)
    # River's trees answer {False: 1.0}: True was never seen, so its probability is 0.
    assert probability(built, {"a": 1.0}) < 0.5
