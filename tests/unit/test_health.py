"""/healthz and /readyz for the process without Faust's web server: liveness and readiness as
JSON, metrics beside them."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from streamproc.adapters.health import (
    HEALTH_PATH,
    READY_PATH,
    Liveness,
    health_and_metrics_app,
    serve_health_and_metrics,
)


def _registry_with_a_counter() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("health_test_events", "A counter only this test registers.", registry=registry).inc(3)
    return registry


def _call(
    path: str, liveness: Liveness, reasons: list[str] | None = None
) -> tuple[str, dict[str, str], bytes]:
    answered: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        answered.update(status=status, headers=dict(headers))

    app = health_and_metrics_app(liveness, _registry_with_a_counter(), lambda: reasons or [])
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


def test_readyz_says_why_the_process_is_not_ready() -> None:
    status, headers, body = _call(READY_PATH, Liveness("trainer"), ["redis unavailable for 3 s"])
    assert status.startswith("503")
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"ready": False, "reasons": ["redis unavailable for 3 s"]}
    status, _headers, body = _call(READY_PATH, Liveness("trainer"))
    assert status.startswith("200")
    assert json.loads(body) == {"ready": True, "reasons": []}


def test_other_paths_are_the_registrys_metrics() -> None:
    status, _headers, body = _call("/metrics", Liveness("trainer"))
    assert status.startswith("200")
    assert b"health_test_events_total 3.0" in body


def test_the_server_answers_every_path_on_its_port() -> None:
    reasons = ["the served models not read yet"]
    server = serve_health_and_metrics(
        "127.0.0.1", 0, Liveness("trainer"), _registry_with_a_counter(), lambda: reasons
    )
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(base + HEALTH_PATH, timeout=5) as response:  # noqa: S310
            assert response.status == 200
            assert json.loads(response.read())["role"] == "trainer"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:  # noqa: S310
            assert b"health_test_events_total 3.0" in response.read()
        try:
            urllib.request.urlopen(base + READY_PATH, timeout=5)  # noqa: S310
            raise AssertionError("/readyz answered 2xx while not ready")
        except urllib.error.HTTPError as exc:
            assert exc.code == 503
        reasons.clear()
        with urllib.request.urlopen(base + READY_PATH, timeout=5) as response:  # noqa: S310
            assert json.loads(response.read())["ready"] is True
    finally:
        server.shutdown()
        server.server_close()
