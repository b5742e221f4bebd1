"""The exchange model shared by every source (live proxy, replay).

A source turns what it saw into these immutable records; everything after the
source (sending the copy, comparing, storing, reporting) works on them only and
never on a mitmproxy flow or a file entry.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from comparators.model import Headers, Payload, first_header

DEFAULT_MAX_BODY = 8 * 1024 * 1024  # bytes of a body held for comparison; past it, a digest


class BodyBuffer:
    """A body read in chunks, held up to `limit` bytes; past it only length and SHA-256.

    Memory stays bounded whatever a backend sends; two cut bodies are still
    compared honestly, by their digests (see `Payload.cut`).
    """

    __slots__ = ("_hash", "_kept", "_size", "limit")

    def __init__(self, limit: int = DEFAULT_MAX_BODY) -> None:
        self.limit = limit
        self._kept = bytearray()
        self._size = 0
        self._hash: hashlib._Hash | None = None

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._hash is not None:
            self._hash.update(chunk)
            return
        room = self.limit - len(self._kept)
        if len(chunk) <= room:
            self._kept += chunk
            return
        # Hashing starts only now: bodies under the limit (nearly all) cost nothing extra.
        self._hash = hashlib.sha256(self._kept)
        self._hash.update(chunk)
        self._kept += chunk[:room]

    def payload(self, status: int, headers: Headers) -> Payload:
        """The body as a Payload: whole, or cut with its full length and digest."""
        if self._hash is None:
            return Payload(status, headers, bytes(self._kept))
        return Payload(status, headers, bytes(self._kept), self._size, self._hash.hexdigest())


def capped_payload(status: int, headers: Headers, body: bytes, limit: int) -> Payload:
    """`Payload` of a body already in memory, cut to `limit` bytes (with its digest)."""
    if len(body) <= limit:
        return Payload(status, headers, body)
    full = hashlib.sha256(body).hexdigest()
    return Payload(status, headers, body[:limit], len(body), full)


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
    `lag_ms`: how much of our own delay may be in `elapsed_ms` (a copy sent late, the
    sender's event loop stalled while it was in flight); None where not measured.
    """

    payload: Payload | None
    elapsed_ms: float | None = None
    error: str | None = None
    lag_ms: float | None = None

    @classmethod
    def failed(cls, error: str, elapsed_ms: float | None = None) -> BackendResponse:
        return cls(payload=None, elapsed_ms=elapsed_ms, error=error)


@dataclass(frozen=True, slots=True)
class Served:
    """How the proxy served a request of a controlled route (shadow.control).

    `candidate` is the candidate's answer when the proxy asked it to answer the
    client (it did, or it failed and the primary answered: `fell_back`); the
    worker then sends no copy to the candidate. `reverse`: the candidate answered,
    and the primary gets a copy of the (safe) request to compare with.
    """

    mode: str  # legacy | shadow | canary | candidate
    served_by: str = "primary"
    fell_back: bool = False
    candidate: BackendResponse | None = None
    reverse: bool = False


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
    # Cutover (shadow.control): the route's mode, who answered the client, and whether
    # the candidate was asked first and the primary answered after it failed.
    mode: str | None = None
    served_by: str = "primary"
    fell_back: bool = False
