"""Tool (no I/O): a window of the workers' metrics as the sections of `streamproc top`, each a
small table of text cells, drawn live or printed plain by `render`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from streamproc.tools.top.exposition import Labels, label
from streamproc.tools.top.quantile import histogram_quantile
from streamproc.tools.top.window import Window

NONE = "—"
_DELAY_BUCKETS = "streamproc_prediction_delay_seconds_bucket"
_DELAY_ORIGINS = ("event_time", "kafka_timestamp")
_SECONDS_AS_MS = 1.0  # below it, a duration reads best in milliseconds


@dataclass(frozen=True, slots=True)
class Section:
    """A titled table: its first `keys` columns name a row, the others are values."""

    title: str
    columns: tuple[str, ...]
    keys: int
    rows: tuple[tuple[str, ...], ...]


def sections(window: Window) -> list[Section]:
    return [
        _workers(window),
        _health(window),
        Section(
            "records",
            ("", "topic or source", "per s", "total"),
            2,
            (
                *_counted(window, "streamproc_records_consumed_total", ("topic",), "consumed"),
                *_counted(window, "streamproc_records_produced_total", ("topic",), "produced"),
                *_counted(window, "streamproc_clean_orders_total", ("source",), "clean orders"),
            ),
        ),
        _latency(window),
        _lag(window),
        _models(window),
        _counter_section(window, "duplicates", "streamproc_duplicates_total", ("kind",)),
        _counter_section(
            window, "dead letters", "streamproc_dead_letters_total", ("topic", "reason")
        ),
        _counter_section(
            window,
            "unit switches suspected",
            "streamproc_unit_switch_suspected_total",
            ("source", "field"),
        ),
    ]


def _workers(window: Window) -> Section:
    rows = [(url, "up") for url in window.up]
    rows += [(url, f"down: {why}") for url, why in window.down.items()]
    return Section("workers", ("/metrics", "status"), 2, tuple(rows))


def _counter_section(window: Window, title: str, metric: str, keys: tuple[str, ...]) -> Section:
    rows = tuple(_counted(window, metric, keys))
    return Section(title, (*keys, "per s", "total"), len(keys), rows)


def _counted(
    window: Window, metric: str, keys: tuple[str, ...], *prefix: str
) -> list[tuple[str, ...]]:
    """A row per series: its labels, rate and total; a row of dashes for a counter no worker
    has counted yet (or one this version of the worker lacks)."""
    totals = window.totals.get(metric, {})
    if not totals:
        return [(*prefix, *(NONE for _ in keys), NONE, "0")]
    rates = window.rates.get(metric, {})
    return [
        (*prefix, *(label(labels, key) for key in keys), _rate(rates.get(labels)), f"{total:,.0f}")
        for labels, total in sorted(totals.items())
    ]


def _latency(window: Window) -> Section:
    """Over the interval: the buckets' rates, as histogram_quantile over rate() would."""
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for labels, rate in window.rates.get(_DELAY_BUCKETS, {}).items():
        buckets[label(labels, "since")][float(label(labels, "le"))] += rate
    rows = tuple(
        (
            since,
            _duration(histogram_quantile(0.5, buckets[since])),
            _duration(histogram_quantile(0.99, buckets[since])),
        )
        for since in _DELAY_ORIGINS
    )
    return Section("prediction delay", ("since", "p50", "p99"), 1, rows)


def _lag(window: Window) -> Section:
    lag = _by(window.gauges.get("streamproc_consumer_lag", {}), "topic")
    rows = tuple((topic, f"{records:,.0f}") for topic, records in sorted(lag.items()))
    return Section("consumer lag", ("topic", "records"), 1, rows or ((NONE, NONE),))


def _models(window: Window) -> Section:
    quality = window.gauges.get("streamproc_model_quality", {})
    serving = _by(window.gauges.get("streamproc_model_serving", {}), "model")
    scores = {(label(labels, "model"), label(labels, "metric")): v for labels, v in quality.items()}
    models = sorted(set(serving) | {model for model, _metric in scores})
    rows = tuple(
        (
            model,
            _role(serving.get(model)),
            _score(scores.get((model, "roc_auc"))),
            _score(scores.get((model, "log_loss"))),
        )
        for model in models
    )
    version = window.gauges.get("streamproc_model_version", {}).get(())
    title = "models" if version is None else f"models (snapshot version {version:.0f})"
    columns = ("model", "serving", "ROC AUC", "log loss")
    return Section(title, columns, 2, rows or ((NONE, NONE, NONE, NONE),))


def _health(window: Window) -> Section:
    gauges = window.gauges
    rows = [
        (f"outage: {dependency}", _yes(active))
        for dependency, active in sorted(
            _by(gauges.get("streamproc_outage_active", {}), "dependency").items()
        )
    ]
    degraded = gauges.get("streamproc_degraded", {}).get(())
    stalled = gauges.get("streamproc_stalled_seconds", {}).get(())
    rows.append(("Redis state degraded", NONE if degraded is None else _yes(degraded)))
    rows.append(("oldest batch stalled", NONE if stalled is None else f"{stalled:.1f} s"))
    return Section("health", ("condition", "now"), 1, tuple(rows))


def _by(series: Mapping[Labels, float], key: str) -> dict[str, float]:
    """Summed by one label (a topic's partitions, say)."""
    summed: dict[str, float] = defaultdict(float)
    for labels, value in series.items():
        summed[label(labels, key)] += value
    return dict(summed)


def _rate(value: float | None) -> str:
    return NONE if value is None else f"{value:,.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    return f"{seconds * 1000:,.0f} ms" if seconds < _SECONDS_AS_MS else f"{seconds:,.1f} s"


def _score(value: float | None) -> str:
    return NONE if value is None else f"{value:.4f}"


def _role(serving: float | None) -> str:
    if serving is None:
        return NONE
    return "champion" if serving > 0 else "shadow"


def _yes(value: float) -> str:
    return "yes" if value > 0 else "no"
