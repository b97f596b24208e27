"""/healthz for the process without Faust's web server: liveness as JSON, metrics beside it."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from streamproc.adapters.health import (
    HEALTH_PATH,
    Liveness,
    health_and_metrics_app,
    serve_health_and_metrics,
)


def _registry_with_a_counter() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("health_test_events", "A counter only this test registers.", registry=registry).inc(3)
    return registry


def _call(path: str, liveness: Liveness) -> tuple[str, dict[str, str], bytes]:
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        answered.update(status=status, headers=dict(headers))

    app = health_and_metrics_app(liveness, _registry_with_a_counter())
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
    body: Iterable[bytes] = app(environ, start_response)
    return answered["status"], answered["headers"], b"".join(body)


def test_healthz_answers_200_with_the_role_and_uptime() -> None:
    started = time.monotonic() - 12.0
    status, headers, body = _call(HEALTH_PATH, Liveness("trainer", started))
    assert status.startswith("200")
    assert headers["Content-Type"] == "application/json"
    report = json.loads(body)
    assert report["status"] == "ok"
    assert report["role"] == "trainer"
    assert 12.0 <= report["uptime_s"] < 60.0


def test_other_paths_are_the_registrys_metrics() -> None:
    status, _headers, body = _call("/metrics", Liveness("trainer"))
    assert status.startswith("200")
    assert b"health_test_events_total 3.0" in body


def test_the_server_answers_both_paths_on_its_port() -> None:
    server = serve_health_and_metrics(
        "127.0.0.1", 0, Liveness("trainer"), _registry_with_a_counter()
    )
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(base + HEALTH_PATH, timeout=5) as response:  # noqa: S310
            assert response.status == 200
            assert json.loads(response.read())["role"] == "trainer"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:  # noqa: S310
            assert b"health_test_events_total 3.0" in response.read()
    finally:
        server.shutdown()
        server.server_close()
