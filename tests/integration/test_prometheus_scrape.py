"""A real Prometheus server scrapes a real worker: the series it stores count what was sent, the
scrape passes `promtool check metrics`, Prometheus answers every query of the Grafana dashboard,
and the alert rules of prometheus/alerts.yml fire on bad records and on a stopped worker (their
`for:` shortened to nothing)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from streamproc.adapters.avro.serde import AvroSerde
from tests.builders import order
from tests.conftest import REPO, unavailable
from tests.integration.conftest import (
    RAW_ORDERS,
    Stack,
    Worker,
    free_port,
    produce_raw_orders,
    stop_worker,
)
from tests.promql import dashboard_queries

ORDERS = 200
BAD_RECORDS = 50  # a fifth of what is read: far above the DLQ alert's 1%
WAVES = 5
WAVE_GAP_S = 2.5  # scraped every second
WAIT_S = 90.0


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    log: Path

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as response:  # noqa: S310
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def value(self, expression: str) -> float | None:
        """An instant query's one value (None: no series yet)."""
        result = self.get("/api/v1/query", query=expression)["result"]
        assert len(result) <= 1, f"{expression} gives {len(result)} series"
        return float(result[0]["value"][1]) if result else None

    def firing(self) -> set[tuple[str, str]]:
        """(alert name, its topic label or "") of every alert firing now."""
        return {
            (alert["labels"]["alertname"], alert["labels"].get("topic", ""))
            for alert in self.get("/api/v1/alerts")["alerts"]
            if alert["state"] == "firing"
        }


def _eventually(what: str, check: Callable[[], bool], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            pytest.fail(f"not within {WAIT_S:.0f} s: {what}\n{tail}")
        time.sleep(0.5)


def _rules_without_waiting(folder: Path) -> Path:
    """prometheus/alerts.yml with every `for:` at 0s: an alert fires at its first true
    evaluation, so the test need not wait out minutes."""
    text = (REPO / "prometheus/alerts.yml").read_text(encoding="utf-8")
    rules = folder / "alerts.yml"
    rules.write_text(re.sub(r"(?m)^(\s+for:) \S+$", r"\1 0s", text), encoding="utf-8")
    return rules


@pytest.fixture
def prometheus(worker: Worker, tmp_path: Path) -> Iterator[PrometheusServer]:
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("no prometheus server on PATH (Debian: apt-get install prometheus)")
    target = urllib.parse.urlsplit(worker.metrics_url).netloc
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(_rules_without_waiting(tmp_path))],
        "scrape_configs": [
            {"job_name": "streamproc-worker", "static_configs": [{"targets": [target]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - Debian's prometheus, found on PATH
            [
                str(binary),
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=out,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", log)
    try:
        _eventually("Prometheus ready", lambda: _answers(f"{server.url}/-/ready"), log)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def test_prometheus_stores_what_the_worker_counted_and_fires_its_alerts(
    stack: Stack, worker: Worker, prometheus: PrometheusServer, serde: AvroSerde
) -> None:
    # in waves a few scrapes apart: a rate sees a counter grow between two scrapes, not the
    # value a series is first scraped at
    run = uuid.uuid4().hex[:8]
    orders = [
        order(event_id=f"{run}-{i}", customer_id=f"{run}-c{i % 7}", items=i + 1)
        for i in range(ORDERS)
    ]
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    per_wave, bad_per_wave = ORDERS // WAVES, BAD_RECORDS // WAVES
    for wave in range(WAVES):
        produce_raw_orders(stack, serde, orders[wave * per_wave : (wave + 1) * per_wave])
        for i in range(bad_per_wave):
            producer.produce(RAW_ORDERS, f"not avro {wave}/{i}".encode())
        assert producer.flush(30) == 0
        time.sleep(WAVE_GAP_S)

    def stored(expression: str, expected: float) -> Callable[[], bool]:
        return lambda: prometheus.value(expression) == expected

    raw = f'topic="{RAW_ORDERS}"'
    expected = {
        f"sum(streamproc_records_consumed_total{{{raw}}})": ORDERS + BAD_RECORDS,
        f'sum(streamproc_dead_letters_total{{{raw},reason="not_wire_format"}})': BAD_RECORDS,
        'sum(streamproc_clean_orders_total{source="web"})': ORDERS,
        'sum(streamproc_prediction_delay_seconds_count{since="kafka_timestamp"})': ORDERS,
        'count(streamproc_build_info{job="streamproc-worker"})': 1,
        'up{job="streamproc-worker"}': 1,
    }
    for expression, value in expected.items():
        _eventually(f"{expression} == {value}", stored(expression, value), worker.log)
    # the web orders' tax rate is the country's: each one counted as defaulted
    _eventually(
        "the defaulted tax rates",
        stored('sum(streamproc_field_status_total{field="tax_rate",status="defaulted"})', ORDERS),
        worker.log,
    )
    checked = subprocess.run(  # noqa: S603 - Debian's promtool
        [shutil.which("promtool") or "promtool", "check", "metrics"],
        input=worker.metrics(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # every chart of the dashboard, as Grafana sends it: accepted, and most of them drawn
    answered = {
        title: prometheus.get("/api/v1/query", query=query)["result"]
        for title, query in dashboard_queries()
    }
    drawn = [title for title, result in answered.items() if result]
    for title in ("Records consumed per second, by topic", "Consumer lag, by topic and partition"):
        assert title in drawn, f"{title}: no series"

    dlq_alert = ("StreamprocDeadLetterRateHigh", RAW_ORDERS)
    _eventually(f"{dlq_alert} firing", lambda: dlq_alert in prometheus.firing(), prometheus.log)
    assert ("StreamprocWorkerDown", "") not in prometheus.firing()
    stop_worker(worker)
    _eventually(
        "StreamprocWorkerDown firing",
        lambda: ("StreamprocWorkerDown", "") in prometheus.firing(),
        prometheus.log,
    )
