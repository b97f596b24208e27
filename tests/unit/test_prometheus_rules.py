"""prometheus/alerts.yml is valid, its promtool tests pass, every alert has a test that fires
it and one that keeps it quiet, reads only metrics the service exports and has its row in
docs/operations.md."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.promql import exported_series, metric_names, promtool

PROMETHEUS = REPO / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _cases() -> list[dict[str, Any]]:
    """Every alert_rule_test case of every promtool test file."""
    return [
        case
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_the_rules_and_the_compose_config_are_valid() -> None:
    # check config reads the rule files too, from beside prometheus.yml
    for kind, path in (("rules", ALERTS), ("config", PROMETHEUS / "prometheus.yml")):
        result = promtool("check", kind, str(path))
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool test files in prometheus/tests"
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_it_and_one_that_keeps_it_quiet() -> None:
    names = {rule["alert"] for rule in _alerts()}
    fired = {case["alertname"] for case in _cases() if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in _cases() if not case.get("exp_alerts")}
    assert names - fired == set(), "alerts no test fires"
    assert names - quiet == set(), "alerts no test keeps quiet"
    assert (fired | quiet) - names == set(), "tests of alerts that do not exist"


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: str(rule["alert"]))
def test_each_alert_says_how_long_how_bad_and_what_to_do(rule: dict[str, Any]) -> None:
    assert "for" in rule
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert {"summary", "description", "runbook"} <= set(rule["annotations"])


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: str(rule["alert"]))
def test_each_alert_reads_only_metrics_the_service_exports(rule: dict[str, Any]) -> None:
    read = metric_names(rule["expr"])
    assert read, "no metric found in the expression: the check would hold nothing"
    assert read - exported_series() == set()


def test_every_alert_has_a_row_in_the_operations_table() -> None:
    page = (REPO / "docs/operations.md").read_text(encoding="utf-8")
    section = page.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    assert rows == {rule["alert"] for rule in _alerts()}
