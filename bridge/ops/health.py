"""One small HTTP server for operators: `/metrics` (Prometheus), `/healthz` (alive) and `/ready`.

`/ready` answers 200 `{"ready": true}` when the source reached every table's stream and every sink is
connected, else 503 with `{"ready": false, "not_ready": ["kafka sink: no connection to ...", ...]}`.
Off unless `metrics.port` is set; it runs in a daemon thread and never blocks the pipeline.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.errors import ConfigError
from bridge.ops import metrics

log = logging.getLogger(__name__)
Readiness = Callable[[], list[str]]


def producer_readiness(producer, servers: str) -> str | None:
    """None while a kafka-python producer holds a connection to a broker, else why it cannot deliver.

    Reads the producer's own `connection-count` metric: it drops to 0 when the broker goes away and comes
    back once the producer reconnected (it retries by itself, whether or not records are waiting).
    """
    if producer is None:
        return f"not connected yet to a Kafka broker at {servers}"
    connections = (producer.metrics() or {}).get("producer-metrics", {}).get("connection-count")
    if connections is not None and connections < 1:
        return f"no connection to a Kafka broker at {servers}"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(metrics.REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._send(200, b'{"alive": true}\n', "application/json")
        elif path == "/ready":
            try:
                problems = self.server.readiness()
            except Exception as error:  # a readiness check that breaks must not hide the server
                problems = [f"readiness check failed: {error!r}"]
            body = {"ready": not problems} | ({"not_ready": problems} if problems else {})
            self._send(503 if problems else 200, (json.dumps(body) + "\n").encode(), "application/json")
        else:
            self._send(404, b'{"error": "not found; try /metrics, /healthz or /ready"}\n', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class HealthServer(ThreadingHTTPServer):
    """Serves `/metrics`, `/healthz` and `/ready` on (host, port) from a daemon thread until `stop()`."""

    daemon_threads = True

    def __init__(self, host: str, port: int, readiness: Readiness) -> None:
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            raise ConfigError(f"metrics.port: cannot listen on {host}:{port}: {error.strerror or error}") from None
        self.readiness = readiness
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="health-server", daemon=True
        )

    @property
    def port(self) -> int:
        """The port listened on (the chosen one when 0 was asked for)."""
        return self.server_address[1]

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("metrics and health on http://%s:%d (/metrics, /healthz, /ready)", self.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
