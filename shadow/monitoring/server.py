"""A small HTTP server for /metrics, /healthz and /readyz, in a daemon thread.

The proxy serves the public address (`--metrics`); the worker serves its own
registry on an ephemeral 127.0.0.1 port that only the proxy reads. The thread
only wakes for a request: the live path pays nothing between scrapes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from shadow.errors import ConfigError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format

Exposition = Callable[[], bytes]
Readiness = Callable[[], str | None]  # None: ready; else why not


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exposition: Exposition
    readiness: Readiness


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                self._answer(200, self.server.exposition(), CONTENT_TYPE)
            except Exception as exc:  # a scrape must get an answer, not a hung socket
                self._answer(500, f"metrics failed: {exc}\n".encode(), "text/plain")
        elif path == "/healthz":
            self._answer(200, b"ok\n", "text/plain")
        elif path == "/readyz":
            try:
                why = self.server.readiness()
            except Exception as exc:
                why = f"readiness check failed: {exc}"
            if why is None:
                self._answer(200, b"ready\n", "text/plain")
            else:
                self._answer(503, f"not ready: {why}\n".encode(), "text/plain")
        else:
            self._answer(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes every few seconds would flood the proxy's log


class MetricsServer:
    """Serves `exposition` at /metrics and `readiness` at /readyz on (host, port)."""

    def __init__(
        self, host: str, port: int, exposition: Exposition, readiness: Readiness,
        option: str = "--metrics",
    ) -> None:  # fmt: skip
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            server_class = _Server6 if family == socket.AF_INET6 else _Server
            self._server = server_class((host, port), _Handler, bind_and_activate=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(f"{option} {host}:{port}: cannot listen there ({reason})") from None
        self._server.exposition = exposition
        self._server.readiness = readiness
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="shadow-metrics", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=2)
            self._thread = None
        self._server.server_close()
