"""The exchange model shared by every source (live proxy, replay).

A source turns what it saw into these immutable records; everything after the
source (sending the copy, comparing, storing, reporting) works on them only and
never on a mitmproxy flow or a file entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from comparators.model import Headers, Payload, first_header


@dataclass(frozen=True, slots=True)
class Request:
    """A client request as received: method, path, raw query, headers, body."""

    method: str
    path: str
    query: str = ""
    headers: Headers = ()
    body: bytes = b""

    @property
    def target(self) -> str:
        """Path plus query string, as sent on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive), or None."""
        return first_header(self.headers, name)


@dataclass(frozen=True, slots=True)
class BackendResponse:
    """What one backend answered, or the error that replaced its answer.

    `payload` is None exactly when `error` is set (connection refused, timeout).
    `elapsed_ms` is the time from sending the request to the end of the body.
    """

    payload: Payload | None
    elapsed_ms: float | None = None
    error: str | None = None

    @classmethod
    def failed(cls, error: str, elapsed_ms: float | None = None) -> BackendResponse:
        return cls(payload=None, elapsed_ms=elapsed_ms, error=error)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and both backends' answers, before comparison."""

    id: str
    request: Request
    primary: BackendResponse
    candidate: BackendResponse | None  # None when the copy was not sent (skipped)
    endpoint: str  # "GET /api/analysis/{id}"
    started_at: float  # unix seconds
    source: str = "proxy"  # "proxy" | "replay:<file>"
    skip_reason: str | None = None
    secondary: BackendResponse | None = field(default=None)
