"""docs/metrics.md names every metric the service exports, with its type and labels, and no
metric that does not exist."""

from __future__ import annotations

import ast
import re

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from streamproc.adapters.metrics import StageMetrics
from tests.conftest import REPO

DOC = REPO / "docs/metrics.md"
METRICS_MODULE = REPO / "streamproc/adapters/metrics.py"
METRIC_CLASSES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
_ROW = re.compile(r"^\| `(streamproc_\w+)` \| (\w+) \|([^|]*)\|", re.MULTILINE)


def _exported() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each metric of StageMetrics as scraped (a counter with its _total): type and labels."""
    exported = {}
    for value in vars(StageMetrics()).values():
        if isinstance(value, MetricWrapperBase):
            # prometheus_client keeps name, type and label names in these attributes; no
            # public call gives the label names of a metric that has no sample yet.
            kind = str(value._type)
            name = value._name + ("_total" if kind == "counter" else "")
            exported[name] = (kind, tuple(value._labelnames))
    return exported


def _documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = _ROW.findall(DOC.read_text(encoding="utf-8"))
    names = [name for name, _kind, _labels in rows]
    assert len(names) == len(set(names)), "a metric has two rows in docs/metrics.md"
    return {name: (kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_every_exported_metric_is_documented_and_every_documented_one_exists() -> None:
    exported, documented = _exported(), _documented()
    assert exported, "StageMetrics declares no metric: the test would hold nothing"
    missing = sorted(set(exported) - set(documented))
    unknown = sorted(set(documented) - set(exported))
    assert not missing, f"exported but not in docs/metrics.md: {missing}"
    assert not unknown, f"in docs/metrics.md but not exported: {unknown}"


@pytest.mark.parametrize("page", ["docs/metrics.md", "README.md"])
def test_the_prose_names_no_metric_that_does_not_exist(page: str) -> None:
    series = {
        f"{name}{suffix}"
        for name, (kind, _labels) in _exported().items()
        for suffix in (("", "_bucket", "_sum", "_count") if kind == "histogram" else ("",))
    }
    named = set(re.findall(r"\bstreamproc_\w+", (REPO / page).read_text(encoding="utf-8")))
    assert named - series == set(), f"{page} names series no process exports"


def test_each_documented_metric_has_its_type_and_labels() -> None:
    exported, documented = _exported(), _documented()
    wrong = {
        name: {"doc": documented.get(name), "code": exported[name]}
        for name in exported
        if documented.get(name) != exported[name]
    }
    assert not wrong, f"docs/metrics.md differs from StageMetrics (type, labels): {wrong}"


def test_no_module_but_adapters_metrics_declares_a_metric() -> None:
    """The list above comes from StageMetrics alone: a metric declared elsewhere would be
    exported without this test seeing it."""
    declaring = []
    for path in sorted((REPO / "streamproc").rglob("*.py")):
        if path == METRICS_MODULE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("prometheus_client")
                and {alias.name for alias in node.names} & METRIC_CLASSES
            ):
                declaring.append(str(path.relative_to(REPO)))
            qualified = (
                isinstance(node, ast.Attribute)
                and node.attr in METRIC_CLASSES
                and isinstance(node.value, ast.Name)
                and node.value.id == "prometheus_client"
            )
            if qualified:
                declaring.append(str(path.relative_to(REPO)))
    assert not declaring, f"metrics declared outside StageMetrics: {declaring}"


def _operations_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Operations\n")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_readmes_operations_section_tells_of_every_metric_and_every_alert() -> None:
    section = _operations_section()
    rows = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    alerts = yaml.safe_load((REPO / "prometheus/alerts.yml").read_text(encoding="utf-8"))
    names = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
    assert names, "no alert found in prometheus/alerts.yml: the test would hold nothing"
    assert set(_exported()) - rows == set(), "metrics the README's operations section lacks"
    assert names - rows == set(), "alerts the README's operations section lacks"
    assert rows - set(_exported()) - names == set(), "rows naming no metric and no alert"
