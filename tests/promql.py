"""What the alert rules and the dashboard may read: the series the service exports (as
scraped), the metric names a PromQL expression reads, and promtool to check them."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from streamproc.adapters.metrics import StageMetrics

# From the parallel metrics work (issue 17, items 1 and 2), not declared in StageMetrics on this
# branch yet: delete this list once they are.
PENDING_SERIES = frozenset(
    {
        "streamproc_clean_orders_total",
        "streamproc_field_status_total",
        "streamproc_prediction_delay_seconds_bucket",
        "streamproc_prediction_delay_seconds_sum",
        "streamproc_prediction_delay_seconds_count",
        "streamproc_consumer_lag",
        "streamproc_redis_call_seconds_bucket",
        "streamproc_redis_call_seconds_sum",
        "streamproc_redis_call_seconds_count",
        "streamproc_redis_errors_total",
        "streamproc_feature_age_seconds_bucket",
        "streamproc_feature_age_seconds_sum",
        "streamproc_feature_age_seconds_count",
        "streamproc_build_info",
    }
)
# Prometheus' own series about each scrape.
PROMETHEUS_SERIES = frozenset({"up"})
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}

# What is not a metric name in an expression: strings, comments, label matchers, ranges,
# label lists, function calls and keywords. PromQL's grammar is small enough for this.
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_COMMENTS = re.compile(r"#[^\n]*")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][\w:]*\b(?!\s*\()")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan", "atan2"}
)


def exported_series() -> frozenset[str]:
    """Every series name a streamproc process serves, plus the pending ones and `up`."""
    names = {
        family.name + suffix
        for family in StageMetrics().registry.collect()
        for suffix in _SUFFIXES[family.type]
    }
    return frozenset(names) | PENDING_SERIES | PROMETHEUS_SERIES


def metric_names(expr: str) -> set[str]:
    for pattern in (_STRINGS, _COMMENTS, _MATCHERS, _RANGES, _LABEL_LISTS):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIER.findall(expr) if name.lower() not in _KEYWORDS}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool, or skip: the rules and panels are checked wherever it is installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not on PATH (Debian: apt install prometheus)")
    return subprocess.run(  # noqa: S603 - promtool from PATH, with our own arguments
        [path, *args], capture_output=True, text=True, check=False, timeout=60
    )
