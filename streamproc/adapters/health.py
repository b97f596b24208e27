"""Adapter: liveness and readiness. The /healthz and /readyz answers every process gives, and
for the process that has no Faust web server (the trainer-only one) a small HTTP server for
/healthz, /readyz and /metrics."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
HEALTH_CONTENT_TYPE = "application/json"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True, slots=True)
class Liveness:
    """What /healthz says: the process answers, so it is alive; its role and uptime help an
    operator tell the processes of a deployment apart."""

    role: str  # "worker" or "trainer"
    started: float = field(default_factory=time.monotonic)

    def body(self) -> bytes:
        uptime_s = round(time.monotonic() - self.started, 1)
        return json.dumps({"status": "ok", "role": self.role, "uptime_s": uptime_s}).encode()


def readiness(reasons: list[str]) -> tuple[int, bytes]:
    """What /readyz answers, status and body, given why the process is not ready (none:
    ready)."""
    body = json.dumps({"ready": not reasons, "reasons": reasons}).encode()
    return (503 if reasons else 200), body


Readiness = Callable[[], list[str]]  # why the process is not ready (empty: ready)


def health_and_metrics_app(
    liveness: Liveness, registry: CollectorRegistry, not_ready: Readiness
) -> WsgiApp:
    """/healthz answers with `liveness`, /readyz with `not_ready`; any other path is the
    metrics, as prometheus_client's own server has always answered this process's scrapes."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path in {HEALTH_PATH, READY_PATH}:
            status, body = (200, liveness.body()) if path == HEALTH_PATH else readiness(not_ready())
            headers = [("Content-Type", HEALTH_CONTENT_TYPE), ("Content-Length", str(len(body)))]
            start_response(f"{status} {HTTPStatus(status).phrase}", headers)
            return [body]
        answer: Iterable[bytes] = metrics(environ, start_response)
        return answer

    return app


def address_family(host: str, port: int) -> socket.AddressFamily:
    """IPv4 or IPv6, as `host` resolves: what a socket bound to (host, port) needs."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in progress must not hold up the process's exit

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily) -> None:
        self.address_family = family  # read by the base class when it makes the socket
        super().__init__(address, _QuietHandler)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """A scrape every few seconds is not worth a log line."""


def serve_health_and_metrics(
    host: str, port: int, liveness: Liveness, registry: CollectorRegistry, not_ready: Readiness
) -> WSGIServer:
    """Answer /healthz, /readyz and /metrics on (host, port) from a daemon thread, so a busy
    event loop (the trainer learning a batch) does not delay a scrape. Returns the server
    (shutdown())."""
    server = _ThreadingServer((host, port), address_family(host, port))
    server.set_app(health_and_metrics_app(liveness, registry, not_ready))
    threading.Thread(target=server.serve_forever, name="streamproc-web", daemon=True).start()
    return server
