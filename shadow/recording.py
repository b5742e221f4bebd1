"""Recording what passed through the proxy, secrets redacted, ready for replay.

The worker process records (not the proxy), from the same records it compares:
`.har` → HAR 1.2, `.jsonl` → shadow's JSON Lines, anything else → a mitmproxy
flow dump (`mitmproxy -r`, `shadow replay`).
"""

from __future__ import annotations

import time
from http import HTTPStatus
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from comparators.model import Payload
from shadow.errors import ConfigError
from shadow.model import Request
from shadow.redact import redact_headers, redact_query


class Recorder(Protocol):
    def add(
        self,
        request: Request,
        response: Payload | None,
        started_at: float,
        elapsed_ms: float | None,
        url: str,
    ) -> None: ...

    def close(self) -> None: ...


def _b(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in pairs)


class MitmWriter:
    """Writes mitmproxy flows (tnetstring dump) through mitmproxy.io.FlowWriter."""

    def __init__(self, path: str) -> None:
        from mitmproxy import io as mio

        self._fh: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._writer = mio.FlowWriter(self._fh)

    def add(
        self,
        request: Request,
        response: Payload | None,
        started_at: float,
        elapsed_ms: float | None,
        url: str,
    ) -> None:
        from mitmproxy import connection, http
        from mitmproxy.proxy.mode_specs import ProxyMode

        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or "localhost"
        client = connection.Client(
            peername=("127.0.0.1", 0),
            sockname=("127.0.0.1", 0),
            timestamp_start=started_at,
            proxy_mode=ProxyMode.parse("regular"),
        )
        server = connection.Server(address=(host, port))
        flow = http.HTTPFlow(client, server)
        end = started_at + (elapsed_ms or 0.0) / 1000
        flow.request = http.Request(
            host, port, request.method.encode(), parts.scheme.encode() or b"http",
            b"", request.target.encode(), b"HTTP/1.1", http.Headers(_b(request.headers)),
            request.body, None, started_at, started_at,
        )  # fmt: skip
        if response is not None:
            try:
                reason = HTTPStatus(response.status).phrase.encode()
            except ValueError:
                reason = b""
            flow.response = http.Response(
                b"HTTP/1.1", response.status, reason, http.Headers(_b(response.headers)),
                response.body, None, started_at, end,
            )  # fmt: skip
        self._writer.add(flow)

    def close(self) -> None:
        self._fh.close()


def check_record_path(path: str) -> None:
    """Fail at start, not at the first flow, when `path` cannot be written."""
    import os

    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ConfigError(f"cannot record to {path}: directory {parent} does not exist")
    if os.path.isdir(path):
        raise ConfigError(f"cannot record to {path}: it is a directory")


def open_recorder(path: str) -> Recorder:
    """A recorder for `path`, chosen by its extension."""
    try:
        if path.endswith(".har"):
            from shadow.sources.write import HarWriter

            return HarWriter(path)
        if path.endswith(".jsonl"):
            from shadow.sources.write import JsonlWriter

            return JsonlWriter(path)
        return MitmWriter(path)
    except OSError as exc:
        raise ConfigError(f"cannot record to {path}: {exc.strerror or exc}") from None


class RedactingRecorder:
    """Redacts secrets before they reach the file, so recordings are safe to share."""

    def __init__(self, inner: Recorder, base_url: str) -> None:
        self.inner = inner
        self.base_url = base_url.rstrip("/")

    def add(self, request: Request, response: Payload | None, started_at: float | None,
            elapsed_ms: float | None) -> None:  # fmt: skip
        safe_req = Request(
            request.method,
            request.path,
            redact_query(request.query),
            redact_headers(request.headers),
            request.body,
        )
        safe_resp = (
            Payload(response.status, redact_headers(response.headers), response.body)
            if response is not None
            else None
        )
        url = self.base_url + safe_req.target
        self.inner.add(safe_req, safe_resp, started_at or time.time(), elapsed_ms, url)

    def close(self) -> None:
        self.inner.close()


__all__: list[Any] = ["MitmWriter", "RedactingRecorder", "open_recorder"]
