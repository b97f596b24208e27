"""`streamproc top`: a scrape parsed, two rounds into rates over several workers, the latency
quantiles as Prometheus' histogram_quantile gives them, and the real scrape against a served
exposition and a closed port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streamproc.adapters.metrics import StageMetrics
from streamproc.cli import main
from streamproc.tools.top.exposition import Scrape, parse
from streamproc.tools.top.live import scrape, summary, watching
from streamproc.tools.top.quantile import histogram_quantile
from streamproc.tools.top.render import plain_text
from streamproc.tools.top.sections import Section, sections
from streamproc.tools.top.window import window

RAW = "shop.order.v1"
INF = float("inf")


def _exposition(
    consumed: float, clean: float, buckets: tuple[float, float, float], lag: dict[int, float]
) -> str:
    """The metrics added beside this view (clean orders, prediction delay, consumer lag), as
    prometheus_client would write them, and a counter StageMetrics has."""
    le_01, le_05, le_1 = buckets
    lines = [
        "# TYPE streamproc_records_consumed_total counter",
        f'streamproc_records_consumed_total{{topic="{RAW}"}} {consumed}',
        "# TYPE streamproc_clean_orders_total counter",
        f'streamproc_clean_orders_total{{source="web"}} {clean}',
        "# TYPE streamproc_clean_orders_created gauge",
        'streamproc_clean_orders_created{source="web"} 1.7e9',
        "# TYPE streamproc_prediction_delay_seconds histogram",
    ]
    for since in ("event_time", "kafka_timestamp"):
        for le, count in (("0.1", le_01), ("0.5", le_05), ("1.0", le_1), ("+Inf", le_1)):
            lines.append(
                f'streamproc_prediction_delay_seconds_bucket{{le="{le}",since="{since}"}} {count}'
            )
        lines.append(f'streamproc_prediction_delay_seconds_count{{since="{since}"}} {le_1}')
    lines.append("# TYPE streamproc_consumer_lag gauge")
    for partition, records in lag.items():
        lines.append(f'streamproc_consumer_lag{{partition="{partition}",topic="{RAW}"}} {records}')
    return "\n".join(lines) + "\n"


def _rows(section_title: str, text_sections: list[Section]) -> tuple[tuple[str, ...], ...]:
    (section,) = [s for s in text_sections if s.title.startswith(section_title)]
    return section.rows


def test_a_real_exposition_of_stage_metrics_is_parsed_into_counters_and_gauges() -> None:
    metrics = StageMetrics()
    metrics.consumed.labels(RAW).inc(7)
    metrics.dead_letters.labels(RAW, "invalid_amount").inc(2)
    metrics.model_quality.labels("hat", "roc_auc").set(0.91)
    metrics.serving.labels("hat").set(1)
    metrics.outage("redis", active=True)
    parsed = parse(metrics.exposition().decode(), at=10.0)
    assert parsed.counters["streamproc_records_consumed_total"] == {(("topic", RAW),): 7.0}
    assert parsed.counters["streamproc_dead_letters_total"] == {
        (("reason", "invalid_amount"), ("topic", RAW)): 2.0
    }
    assert parsed.counters["streamproc_outages_total"] == {(("dependency", "redis"),): 1.0}
    assert parsed.gauges["streamproc_model_quality"] == {
        (("metric", "roc_auc"), ("model", "hat")): 0.91
    }
    assert parsed.gauges["streamproc_outage_active"] == {(("dependency", "redis"),): 1.0}
    assert not [name for name in {**parsed.counters, **parsed.gauges} if "_created" in name]


def test_rates_are_the_increase_over_the_interval_and_totals_the_latest_counts() -> None:
    before = parse(_exposition(1_000, 50, (0, 0, 0), {0: 9}), at=100.0)
    after = parse(_exposition(1_600, 80, (0, 0, 0), {0: 4}), at=102.0)
    view = window({"a": before}, {"a": after})
    consumed = (("topic", RAW),)
    assert view.rates["streamproc_records_consumed_total"][consumed] == 300.0  # 600 in 2 s
    assert view.totals["streamproc_records_consumed_total"][consumed] == 1_600
    assert view.rates["streamproc_clean_orders_total"][(("source", "web"),)] == 15.0
    assert "streamproc_clean_orders_created" not in view.gauges
    # a gauge is a level: now, not a rate
    assert view.gauges["streamproc_consumer_lag"] == {(("partition", "0"), ("topic", RAW)): 4}


def test_the_first_round_has_totals_but_no_rates() -> None:
    only = parse(_exposition(1_000, 50, (0, 0, 0), {}), at=100.0)
    view = window({}, {"a": only})
    assert view.rates == {}
    [row] = [r for r in _rows("records", sections(view)) if r[0] == "consumed"]
    assert row == ("consumed", RAW, "—", "1,000")


def test_a_restarted_worker_counts_from_zero_as_prometheus_assumes() -> None:
    before = parse(_exposition(1_000, 50, (0, 0, 0), {}), at=0.0)
    restarted = parse(_exposition(30, 0, (0, 0, 0), {}), at=1.0)
    view = window({"a": before}, {"a": restarted})
    assert view.rates["streamproc_records_consumed_total"][(("topic", RAW),)] == 30.0


def test_several_workers_are_summed_and_their_levels_take_the_highest() -> None:
    a0 = parse(_exposition(100, 0, (0, 0, 0), {0: 5}), at=0.0)
    a1 = parse(_exposition(400, 0, (0, 0, 0), {0: 5}), at=1.0)  # 300/s
    # during a rebalance both report partition 0
    b0 = parse(_exposition(10, 0, (0, 0, 0), {0: 5, 1: 7}), at=0.5)
    b1 = parse(_exposition(110, 0, (0, 0, 0), {0: 5, 1: 7}), at=2.5)  # 50/s
    view = window({"a": a0, "b": b0}, {"a": a1, "b": b1})
    assert view.up == ("a", "b")
    consumed = (("topic", RAW),)
    assert view.rates["streamproc_records_consumed_total"][consumed] == 350.0
    assert view.totals["streamproc_records_consumed_total"][consumed] == 510.0
    shown = sections(view)
    assert ("consumed", RAW, "350.0", "510") in _rows("records", shown)
    assert _rows("consumer lag", shown) == ((RAW, "12"),)  # partition 0's 5 + partition 1's 7


def test_any_workers_outage_shows_and_two_in_one_count_once() -> None:
    def outage(active: float) -> Scrape:
        return Scrape(0.0, {}, {"streamproc_outage_active": {(("dependency", "redis"),): active}})

    assert ("outage: redis", "yes") in _rows(
        "health", sections(window({}, {"a": outage(0), "b": outage(1)}))
    )
    both = window({}, {"a": outage(1), "b": outage(1)})
    assert both.gauges["streamproc_outage_active"] == {(("dependency", "redis"),): 1.0}


def test_the_quantile_interpolates_within_its_bucket_as_histogram_quantile_does() -> None:
    # 10 observations ≤ 0.1 s, 20 in (0.1, 0.5], 10 in (0.5, 1]
    buckets = {0.1: 10.0, 0.5: 30.0, 1.0: 40.0, INF: 40.0}
    # p50: rank 20, the 10th of 20 in (0.1, 0.5] → 0.1 + 0.4 × 10/20
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)
    # p99: rank 39.6, the 9.6th of 10 in (0.5, 1] → 0.5 + 0.5 × 9.6/10
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.98)
    # p05: rank 2 in the first bucket, from 0 → 0.1 × 2/10
    assert histogram_quantile(0.05, buckets) == pytest.approx(0.02)


def test_a_quantile_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.9, {0.1: 5.0, 0.5: 6.0, INF: 10.0}) == 0.5


def test_no_observations_or_no_inf_bucket_give_no_quantile() -> None:
    assert histogram_quantile(0.5, {0.1: 0.0, INF: 0.0}) is None
    assert histogram_quantile(0.5, {0.1: 3.0, 1.0: 4.0}) is None
    assert histogram_quantile(0.5, {}) is None


def test_the_latency_is_over_the_intervals_observations_not_since_the_start() -> None:
    # the interval's bucket increases are 10, 30, 40 (the quantile test's buckets); over all
    # time the p50 would be 0.1 + 0.4 × 15/25 = 0.34 s instead
    before = parse(_exposition(0, 0, (5, 10, 10), {}), at=0.0)
    after = parse(_exposition(0, 0, (15, 40, 50), {}), at=4.0)
    rows = _rows("prediction delay", sections(window({"a": before}, {"a": after})))
    assert rows == (
        ("event_time", "300 ms", "980 ms"),
        ("kafka_timestamp", "300 ms", "980 ms"),
    )


def test_metrics_a_worker_does_not_have_show_as_dashes() -> None:
    view = window({}, {"a": parse(StageMetrics().exposition().decode(), at=0.0)})
    shown = sections(view)
    assert ("clean orders", "—", "—", "0") in _rows("records", shown)
    assert _rows("prediction delay", shown) == (
        ("event_time", "—", "—"),
        ("kafka_timestamp", "—", "—"),
    )
    assert _rows("consumer lag", shown) == (("—", "—"),)


def test_the_plain_summary_shows_the_rates_totals_models_and_health() -> None:
    metrics = StageMetrics()
    metrics.consumed.labels(RAW).inc(1_000)
    metrics.duplicates.labels("retry").inc(4)
    metrics.dead_letters.labels(RAW, "invalid_amount").inc(2)
    metrics.unit_switches.labels("web", "amount").inc(1)
    metrics.model_quality.labels("hat", "roc_auc").set(0.9123)
    metrics.model_quality.labels("hat", "log_loss").set(0.3141)
    metrics.model_quality.labels("logreg", "roc_auc").set(0.87)
    metrics.serving.labels("hat").set(1)
    metrics.serving.labels("logreg").set(0)
    metrics.serving_version.set(12)
    metrics.stalled_seconds.set(2.5)
    before = parse(metrics.exposition().decode(), at=50.0)
    metrics.consumed.labels(RAW).inc(2_500)
    metrics.duplicates.labels("retry").inc(6)
    metrics.dead_letters.labels(RAW, "invalid_amount").inc(3)
    after = parse(metrics.exposition().decode(), at=55.0)
    text = plain_text(window({"http://w1/metrics": before}, {"http://w1/metrics": after}))
    lines = [line.split() for line in text.splitlines()]
    assert ["consumed", RAW, "500.0", "3,500"] in lines  # 2,500 in 5 s
    assert ["retry", "1.2", "10"] in lines
    assert [RAW, "invalid_amount", "0.6", "5"] in lines
    assert ["web", "amount", "0.0", "1"] in lines
    assert "models (snapshot version 12)" in text
    assert ["hat", "champion", "0.9123", "0.3141"] in lines
    assert ["logreg", "shadow", "0.8700", "—"] in lines
    assert ["oldest", "batch", "stalled", "2.5", "s"] in lines
    assert ["http://w1/metrics", "up"] in lines


class _Worker(BaseHTTPRequestHandler):
    """Serves a StageMetrics exposition whose consumed count grows by 100 each scrape."""

    scrapes = 0

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        type(self).scrapes += 1
        metrics = StageMetrics()
        metrics.consumed.labels(RAW).inc(100 * type(self).scrapes)
        body = metrics.exposition()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test's output is pytest's."""


@contextmanager
def _serving() -> Iterator[str]:
    """A worker's /metrics on a free port, counting its own scrapes."""
    handler = type("Worker", (_Worker,), {"scrapes": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def worker_url() -> Iterator[str]:
    with _serving() as url:
        yield url


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as probe:  # a port that was free a moment ago, nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


def test_a_worker_that_does_not_answer_is_down_and_the_others_still_show(
    worker_url: str, closed_url: str
) -> None:
    assert isinstance(scrape(worker_url), Scrape)
    assert isinstance(scrape(closed_url), str)
    assert isinstance(scrape(worker_url.replace("/metrics", "/nothing")), str)  # a 404
    view = summary([worker_url, closed_url], interval_s=0.05)
    assert view.up == (worker_url,)
    assert list(view.down) == [closed_url]
    lines = [line.split() for line in plain_text(view).splitlines()]
    assert [worker_url, "up"] in lines
    assert [closed_url, "down:"] in [line[:2] for line in lines]
    # scraped 3 times: the check above, then the summary's two rounds
    [consumed] = [line for line in lines if line[:2] == ["consumed", RAW]]
    assert consumed[-1] == "300"


def test_the_command_prints_once_and_exits_1_when_no_worker_answers(
    closed_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", "--once", "--interval", "0.05", "--url", closed_url]) == 1
    assert f"{closed_url}  down:" in capsys.readouterr().out
    with _serving() as first, _serving() as second:
        argv = ["top", "--once", "--interval", "0.05", "--url", first, "--url", second]
        assert main(argv) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    # each worker scraped twice, 200 at the second round: summed, 400
    [consumed] = [line for line in lines if line[:2] == ["consumed", RAW]]
    assert consumed[-1] == "400"


def test_the_live_view_follows_the_worker_while_the_body_runs(
    worker_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a terminal here, so rich shows the last view when the body ends."""
    with watching([worker_url], interval_s=0.05):
        print("the body prints above the view")
        time.sleep(0.3)
    out = capsys.readouterr().out
    assert "the body prints above the view" in out
    assert "consumed" in out
    assert "up" in out
