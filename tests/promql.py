"""What the alert rules and the dashboard may read: the series the service exports (as
scraped), the metric names a PromQL expression reads, and promtool to check them."""

from __future__ import annotations

import re
import shutil
import subprocess

from streamproc.adapters.metrics import StageMetrics
from tests.conftest import unavailable

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
    """Every series name a streamproc process serves, and Prometheus' `up`."""
    names = {
        family.name + suffix
        for family in StageMetrics().registry.collect()
        for suffix in _SUFFIXES[family.type]
    }
    return frozenset(names) | PROMETHEUS_SERIES


def metric_names(expr: str) -> set[str]:
    for pattern in (_STRINGS, _COMMENTS, _MATCHERS, _RANGES, _LABEL_LISTS):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIER.findall(expr) if name.lower() not in _KEYWORDS}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool (stack/stack.sh installs it); without it the test skips, or fails under
    CI=true."""
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not on PATH (Debian: apt-get install prometheus)")
        raise AssertionError("unreachable: unavailable() skips or fails")
    return subprocess.run(  # noqa: S603 - promtool from PATH, with our own arguments
        [path, *args], capture_output=True, text=True, check=False, timeout=60
    )
