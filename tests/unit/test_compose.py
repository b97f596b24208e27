"""docker-compose.yml cannot run here (no Docker engine); parse it and check it is consistent."""

from __future__ import annotations

from typing import Any

import yaml

from tests.conftest import REPO


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_the_stack_and_the_worker() -> None:
    assert {"kafka", "redis", "topics", "worker"} <= set(_compose()["services"])


def test_kafka_is_the_version_the_local_stack_fetches() -> None:
    pom = (REPO / "stack/pom.xml").read_text()
    image = _compose()["services"]["kafka"]["image"]
    assert image.startswith("apache/kafka:")
    assert f"<kafka.version>{image.split(':')[1]}</kafka.version>" in pom


def test_the_worker_starts_after_topics_exist_and_reaches_the_broker_inside() -> None:
    services = _compose()["services"]
    worker = services["worker"]
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    internal = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{worker['environment']['STREAMPROC_KAFKA_BOOTSTRAP']}" in internal
    assert services["topics"]["command"] == ["topics", "apply"]


def test_prometheus_and_grafana_read_the_repo_files_and_reach_the_worker() -> None:
    services = _compose()["services"]
    for volume in [*services["prometheus"]["volumes"], *services["grafana"]["volumes"]]:
        assert (REPO / volume.split(":")[0]).exists(), volume
    config = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"streamproc-worker", "streamproc-trainer"} <= set(jobs)
    (target,) = jobs["streamproc-worker"]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert f"{port}:{port}" in services[host]["ports"]
