"""The proxy's half of the cutover: decide per request, ask the candidate, fall back.

The addon asks `Cutover.decide` for every request (a cached lookup, no I/O).
For a request the candidate is to answer, `ask` sends it with the pipeline's
Sender from the proxy's event loop (awaited by mitmproxy's request hook, so other
flows go on) and `response_from` turns a servable answer into the client's
response; otherwise the flow goes on to the primary as usual (the fallback). The
flags come from a FlagWatcher polling the store in the background: no request
waits for Redis or the disk.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from mitmproxy import http
from mitmproxy.net.http import status_codes

from shadow.config.control import ControlConfig
from shadow.config.loader import Config
from shadow.config.tls import BackendTls
from shadow.control.flags import open_store
from shadow.control.routing import Decision, Router
from shadow.control.watch import FlagWatcher
from shadow.model import BackendResponse, Request
from shadow.pipeline.sender import Sender

logger = logging.getLogger(__name__)

# Connections to the candidate for the answers it serves: as many as clients wait (the
# primary gets one per client connection from mitmproxy); a wait for a pooled connection
# would count against [control] timeout and be blamed on the candidate.
SERVE_CONNECTIONS = 10_000
# Hop-by-hop headers (RFC 9110 7.6.1): they describe the candidate's connection, not ours.
_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
     "upgrade", "proxy-authenticate"}
)  # fmt: skip


class Cutover:
    """Route modes for the live proxy: who answers, and the candidate's answers."""

    def __init__(
        self,
        config: Config,
        flags: str,
        candidate: str,
        tls: BackendTls,
        proxy: str | None = None,
    ) -> None:
        self.control: ControlConfig = config.control
        self.router = Router(config.control, config.matcher)
        self.store = open_store(
            flags, polled=True
        )  # resolved by the addon (config.control.flags_spec)
        self.watcher = FlagWatcher(self.store, config.control, log=logger)
        self.candidate = candidate
        self.tls = tls
        self.proxy = proxy
        self.sender: Sender | None = None

    async def start(self) -> None:
        """Read the flags once (never raises: an unreachable store is logged) and watch them."""
        self.sender = Sender(SERVE_CONNECTIONS // 2, self.proxy)
        await self.watcher.start()
        logger.info(f"shadow: route modes from {self.store.describe()}")

    async def aclose(self) -> None:
        await self.watcher.aclose()
        await self.store.aclose()
        if self.sender is not None:
            await self.sender.aclose()

    def decide(self, method: str, path: str, headers: Any, secure: bool) -> Decision:
        w = self.watcher
        return self.router.decide(
            method, path, headers, w.state, stale=w.stale(), ever_read=w.ever_read, secure=secure
        )

    async def ask(self, request: Request) -> BackendResponse:
        """The candidate's answer to `request`, held whole up to [control] max_body."""
        assert self.sender is not None
        c = self.control
        return await self.sender.send(
            self.candidate, request, None, c.timeout, (), c.max_body, self.tls
        )


def response_from(
    flow: http.HTTPFlow, answer: BackendResponse, cookie: str | None = None
) -> http.Response:
    """The client's response made of the candidate's answer (raw body, its encoding kept)."""
    p = answer.payload
    assert p is not None
    fields = [
        (k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
        for k, v in p.headers
        if k.lower() not in _HOP
    ]
    bodyless = flow.request.method.upper() == "HEAD" or p.status in (204, 304) or p.status < 200
    if not bodyless:
        # The body is whole here: its length, not the candidate's framing.
        fields = [(k, v) for k, v in fields if k.lower() != b"content-length"]
        fields.append((b"content-length", str(len(p.body)).encode()))
    if cookie:
        fields.append((b"set-cookie", cookie.encode("latin-1", "replace")))
    now = time.time()
    return http.Response(
        http_version=flow.request.data.http_version,
        status_code=p.status,
        reason=status_codes.RESPONSES.get(p.status, "").encode(),
        headers=http.Headers(fields),
        content=p.body,
        trailers=None,
        timestamp_start=now - (answer.elapsed_ms or 0) / 1000,
        timestamp_end=now,
    )


def bad_gateway(flow: http.HTTPFlow, why: str) -> http.Response:
    """A 502 for a write the candidate may have taken and then failed (never replayed)."""
    return http.Response.make(
        502,
        f"The new backend failed after it may have received this request ({why}); "
        "it was not repeated on the legacy backend.\n",
        {"content-type": "text/plain; charset=utf-8", "x-shadow-served-by": "candidate"},
    )
