"""grafana/dashboards/streamproc.json: every panel has a title and a query, ids are unique, every
query reads only metrics the service exports and is one Prometheus' parser accepts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.promql import dashboard, exported_series, metric_names, promtool, substituted

DATASOURCES = REPO / "grafana/provisioning/datasources/prometheus.yml"


def _panels() -> list[dict[str, Any]]:
    """Every panel, rows included, and the panels inside a collapsed row."""
    top = dashboard()["panels"]
    return [*top, *(inner for panel in top for inner in panel.get("panels", []))]


def _charts() -> list[dict[str, Any]]:
    return [panel for panel in _panels() if panel["type"] != "row"]


def test_every_panel_has_a_title_and_every_chart_a_query() -> None:
    assert _charts(), "no chart: the checks below would hold nothing"
    for panel in _panels():
        assert panel.get("title"), f"panel {panel['id']} has no title"
    for panel in _charts():
        assert [target["expr"] for target in panel.get("targets", [])], panel["title"]


def test_no_two_panels_share_an_id() -> None:
    ids = [panel["id"] for panel in _panels()]
    assert len(ids) == len(set(ids))


def test_every_query_reads_only_metrics_the_service_exports() -> None:
    unknown = {
        panel["title"]: sorted(metric_names(target["expr"]) - exported_series())
        for panel in _charts()
        for target in panel["targets"]
        if metric_names(target["expr"]) - exported_series()
    }
    assert not unknown, f"panels reading series nothing exports: {unknown}"


def test_every_query_uses_the_provisioned_datasource() -> None:
    (provisioned,) = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    for panel in _charts():
        for holder in (panel, *panel["targets"]):
            assert holder["datasource"]["uid"] == provisioned["uid"], panel["title"]


def test_prometheus_parses_every_query(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:panel_{panel['id']}:{target['refId']}", "expr": expr}
        for panel in _charts()
        for target in panel["targets"]
        for expr in [substituted(target["expr"])]
    ]
    leftover = [rule["expr"] for rule in rules if re.search(r"\$\w", rule["expr"])]
    assert not leftover, f"queries with a variable the dashboard does not define: {leftover}"
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
