"""What the alert rules and the dashboard may read: the series the service exports (as
scraped), the metric names a PromQL expression reads, and promtool to check them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

from streamproc.adapters.metrics import StageMetrics
from tests.conftest import REPO, unavailable

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


DASHBOARD = REPO / "grafana/dashboards/streamproc.json"
# Grafana's own variables, each replaced by a value of its kind before promtool parses a query.
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m"}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def substituted(expr: str) -> str:
    """The query with Grafana's variables and the dashboard's (as their match-all value)."""
    variables = dict(GRAFANA_VARIABLES)
    for variable in dashboard()["templating"]["list"]:
        variables[variable["name"]] = variable.get("allValue", ".*")
    for name in sorted(variables, key=len, reverse=True):  # $__interval after $__rate_interval
        expr = expr.replace(f"${{{name}}}", variables[name]).replace(f"${name}", variables[name])
    return expr


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query as Prometheus receives it) of every chart of the dashboard."""
    top = dashboard()["panels"]
    panels = [*top, *(inner for panel in top for inner in panel.get("panels", []))]
    return [
        (panel["title"], substituted(target["expr"]))
        for panel in panels
        if panel["type"] != "row"
        for target in panel.get("targets", [])
    ]
