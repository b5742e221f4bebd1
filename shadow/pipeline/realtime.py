"""A WebSocket conversation copied to one backend, message by message, as it happens.

The proxy hands the worker each message of a live conversation as it passes; a
`TalkCopy` opens its own connection to the candidate with the client's handshake
request, sends the client's messages in the same order and with the same spacing
(each `pace` after the primary got it), and records what the candidate sends back.
When the primary's conversation ends (`end`), it closes its own the same way (or
waits for the candidate to close, when the primary's server closed), and `run`
returns the candidate's conversation as a `BackendResponse` (a `Payload` with
`stream="websocket"`, see comparators/envelope.py).

A refused upgrade is an HTTP answer (status, headers, body); a handshake that is not
answered in time, or a connection that breaks, is a failed response (a candidate
error): the client of the primary never notices either.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from comparators import envelope
from comparators.envelope import Conversation, Frame
from comparators.model import Payload
from shadow.config.tls import BackendTls, client_context
from shadow.model import BackendResponse, Request
from shadow.pipeline.sender import (
    PLAIN,
    StreamLimits,
    describe_failure,
    outgoing_headers,
    proxy_for,
)

# Headers of the client's handshake the WebSocket library writes itself, per connection.
_OWN = frozenset(
    {
        "host", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
        "sec-websocket-accept", "sec-websocket-protocol", "user-agent",
    }
)  # fmt: skip
SETTLE = 0.2  # seconds without a message after which a closing conversation is done
CLOSE_GRACE = 2.0  # seconds the backend may take to answer and close after the primary did


def is_websocket(request: Request) -> bool:
    """Whether `request` asks for a WebSocket upgrade."""
    upgrade = request.header("upgrade")
    return upgrade is not None and upgrade.strip().lower() == "websocket"


def ws_url(base_url: str, target: str) -> str:
    """The ws(s):// URL of `target` on the backend at http(s) `base_url`."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{target}"


@dataclass
class _Closing:
    code: int | None
    reason: str
    by: str  # "client" | "server" | "" (broken)
    ended: str  # "closed" | "limit" | "error"
    expect: int | None = None  # server messages the primary's side had


@dataclass
class TalkCopy:
    """One backend's side of a copied conversation (see the module's docstring)."""

    base_url: str
    request: Request
    overrides: Sequence[tuple[str, str]] = ()
    tls: BackendTls = PLAIN
    timeout: float = 5.0
    limits: StreamLimits = field(default_factory=StreamLimits)
    mark: str | None = "1"
    proxy: str | None = ""
    _inbox: asyncio.Queue[tuple[float, Frame | _Closing, str | bytes | None]] = field(
        default_factory=asyncio.Queue, init=False
    )
    _aborted: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    frames: list[Frame] = field(default_factory=list, init=False)
    dropped: int = field(default=0, init=False)
    # Unix time this conversation was due to open (the primary's 101 plus the pace): if it
    # opens later, every message goes that much later too, so their spacing is kept.
    origin: float | None = field(default=None, init=False)
    shift: float = field(default=0.0, init=False)  # seconds it opened late
    kept: int = field(default=0, init=False)  # bytes of the backend's messages held
    _gone: bool = field(default=False, init=False)  # a send found the connection closed
    closed_at: float | None = field(default=None, init=False)  # monotonic: the end was due

    def client(self, message: Frame, due: float, data: str | bytes | None = None) -> None:
        """The client sent `message` to the primary: send it at unix time `due`.

        `data`: the whole message as sent (text or bytes), when `message` keeps only a
        digest of it (past the conversation's byte budget): the backend gets it whole."""
        self._inbox.put_nowait((due, message, data))

    def end(
        self,
        code: int | None,
        reason: str,
        by: str,
        ended: str,
        due: float,
        expect: int | None = None,
    ) -> None:
        """The primary's conversation ended (`by` whom, how): end this one so at `due`.

        `expect`: how many server messages the primary's side had; when the client closed,
        what comes after `due` counts only until this one has as many."""
        self._inbox.put_nowait((due, _Closing(code, reason, by, ended, expect), None))

    def abort(self) -> None:
        """The primary's conversation never started (refused) or is given up: stop now."""
        self._aborted.set()

    async def run(self) -> BackendResponse:
        """Talk to the backend until the primary's conversation ends; its answer."""
        url = ws_url(self.base_url, self.request.target)
        headers, protocols = self._headers()
        start = time.perf_counter()
        kwargs: dict[str, Any] = {}
        if url.startswith("wss:"):
            kwargs["ssl"] = client_context(self.tls)
        try:
            ws = await connect(
                url,
                additional_headers=headers,
                subprotocols=protocols or None,  # type: ignore[arg-type]
                user_agent_header=self.request.header("user-agent"),
                open_timeout=self.timeout,
                ping_interval=None,  # the client's own pings are not ours to add
                close_timeout=CLOSE_GRACE,
                # A longer message breaks the copy (a candidate error), never our memory.
                max_size=self.limits.message_bytes,
                proxy=proxy_for(url.replace("ws", "http", 1), self.proxy),
                compression="deflate" if self._deflate() else None,
                **kwargs,
            )
        except InvalidStatus as exc:
            ms = (time.perf_counter() - start) * 1000
            resp = exc.response
            body = bytes(resp.body or b"")[: self.limits.message_bytes]
            return BackendResponse(Payload(resp.status_code, _pairs(resp.headers), body), ms)
        except TimeoutError:
            ms = (time.perf_counter() - start) * 1000
            return BackendResponse.failed(
                f"the WebSocket upgrade was not answered within {self.timeout:g} s", ms
            )
        except (OSError, WebSocketException, ssl.SSLError, ValueError) as exc:
            ms = (time.perf_counter() - start) * 1000
            return BackendResponse.failed(f"WebSocket upgrade {describe_failure(exc, ms)}", ms)
        handshake_ms = (time.perf_counter() - start) * 1000
        assert ws.response is not None
        status, resp_headers = ws.response.status_code, _pairs(ws.response.headers)
        t0 = time.monotonic()
        if self.origin is not None:
            self.shift = max(0.0, time.time() - self.origin)
        reader = asyncio.create_task(self._read(ws, t0))
        closing = await self._talk(ws, t0, reader)
        t_end = (time.monotonic() - t0) * 1000
        conv = Conversation(
            envelope.WEBSOCKET,
            tuple(sorted(self.frames, key=lambda f: f.t_ms)),
            ws.close_code,
            ws.close_reason or "",
            closing.by,
            closing.ended,
            self.dropped,
            t_end,
        )
        sent_close = getattr(ws.protocol, "close_sent", None)
        too_big = 1009 in (ws.close_code, getattr(sent_close, "code", None))
        if closing.ended == "error" and too_big:
            return BackendResponse.failed(
                f"sent a WebSocket message over {self.limits.message_bytes} bytes "
                "(--max-body): not followed further",
                handshake_ms,
            )
        if closing.ended == "error":
            return BackendResponse.failed(
                f"the WebSocket connection broke after {len(self.frames)} messages "
                f"(close code {ws.close_code})",
                handshake_ms,
            )
        payload = Payload(status, resp_headers, envelope.encode(conv), stream=envelope.WEBSOCKET)
        return BackendResponse(payload, handshake_ms)

    def _headers(self) -> tuple[list[tuple[str, str]], list[str]]:
        out = outgoing_headers(self.request, self.base_url, self.mark, self.overrides)
        headers = [(k, v) for k, v in out if k.lower() not in _OWN]
        # From the headers as sent, so a per-target header can replace a redacted one.
        protocols = [
            p.strip()
            for k, v in out
            if k.lower() == "sec-websocket-protocol"
            for p in v.split(",")
            if p.strip()
        ]
        return headers, protocols

    def _deflate(self) -> bool:
        offered = self.request.header("sec-websocket-extensions") or ""
        return "permessage-deflate" in offered.lower()

    async def _read(self, ws: Any, t0: float) -> None:
        """Record the backend's messages until its connection closes."""
        limits = self.limits
        with contextlib.suppress(Exception):
            async for message in ws:
                t_ms = (time.monotonic() - t0) * 1000
                if len(self.frames) >= limits.messages:
                    self.dropped += 1
                    continue
                text = isinstance(message, str)
                data = message.encode("utf-8", "surrogatepass") if text else bytes(message)
                room = max(0, limits.message_bytes - self.kept)
                f = envelope.frame("server", t_ms, data, text, room)
                self.kept += len(f.data)
                self.frames.append(f)

    async def _talk(self, ws: Any, t0: float, reader: asyncio.Task[None]) -> _Closing:
        """Send the client's messages on time until the end; how the conversation ended."""
        deadline = t0 + self.limits.seconds + CLOSE_GRACE
        end: _Closing | None = None
        while end is None:
            item = await self._next(reader, deadline)
            if item is None:  # the backend closed, we were aborted, or the time is up
                break
            due, what, whole = item
            if (wait := due + self.shift - time.time()) > 0:
                left = deadline - CLOSE_GRACE - time.monotonic()
                if wait > left:  # due after the time limit (a replay's long pause): stop
                    await asyncio.sleep(max(0.0, left))
                    break
                await asyncio.sleep(wait)
            if isinstance(what, _Closing):
                end = what
                self.closed_at = time.monotonic()
                break
            t_ms = (time.monotonic() - t0) * 1000
            sent = not reader.done()
            if sent:
                try:
                    data: str | bytes = what.data if what.kind == "text" else what.raw
                    await ws.send(whole if whole is not None else data)
                except ConnectionClosed:
                    sent = False
                    self._gone = True  # closed under us (its reader may not know yet)
            self.frames.append(replace(what, side="client", t_ms=t_ms, sent=sent))
        return await self._close(ws, t0, reader, end)

    async def _next(
        self, reader: asyncio.Task[None], deadline: float
    ) -> tuple[float, Frame | _Closing, str | bytes | None] | None:
        if not self._inbox.empty():
            return self._inbox.get_nowait()
        getter = asyncio.ensure_future(self._inbox.get())
        aborted = asyncio.ensure_future(self._aborted.wait())
        try:
            await asyncio.wait(
                {getter, aborted, reader},
                timeout=max(0.0, deadline - time.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            aborted.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            return getter.result()
        return None

    async def _close(
        self, ws: Any, t0: float, reader: asyncio.Task[None], end: _Closing | None
    ) -> _Closing:
        """Let the backend finish, close like the primary's conversation closed."""
        if reader.done() or self._gone:  # the backend closed first (or it broke)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(reader), CLOSE_GRACE)
            rcvd = getattr(ws.protocol, "close_rcvd", None)
            broke = rcvd is None or ws.close_code == 1006
            ended = "error" if broke else "closed"
            return _Closing(ws.close_code, ws.close_reason or "", "server", ended)
        if end is None:  # aborted or out of time: we close it
            end = _Closing(None, "", "", "limit" if not self._aborted.is_set() else "closed")
        if end.by == "server":
            # The primary's server closed: the candidate should close too; give it time.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), CLOSE_GRACE)
            if reader.done():
                return _Closing(ws.close_code, ws.close_reason or "", "server", "closed")
        else:
            await self._settle(reader, end.expect)
        if end.by == "client" and end.expect is not None:
            self._after_close(t0, end.expect)
        code = end.code if end.by == "client" and end.code not in (None, 1005, 1006) else 1000
        with contextlib.suppress(Exception):
            await ws.close(code, end.reason if end.by == "client" else "")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, CLOSE_GRACE)
        by = "client" if end.by == "client" else "shadow"
        # The primary's conversation broke or was given up: this one is closed by us, whole.
        ended = "limit" if end.ended == "limit" else "closed"
        return _Closing(ws.close_code, ws.close_reason or "", by, ended)

    async def _settle(self, reader: asyncio.Task[None], expect: int | None = None) -> None:
        """Wait until the backend has been quiet for SETTLE seconds (at most CLOSE_GRACE), or
        has sent the `expect` server messages the primary did."""
        stop = time.monotonic() + CLOSE_GRACE
        seen = -1
        while time.monotonic() < stop and not reader.done() and seen != len(self.frames):
            if expect is not None and self._server_count() >= expect:
                return
            seen = len(self.frames)
            await asyncio.sleep(SETTLE)

    def _server_count(self) -> int:
        return sum(f.side == "server" for f in self.frames)

    def _after_close(self, t0: float, expect: int) -> None:
        """The client closed at `self.closed_at`: what the backend sent after that moment
        never reached the primary's client either; kept only up to the primary's count
        (a slower backend's last answers), the rest left out."""
        if self.closed_at is None:
            return
        cut = (self.closed_at - t0) * 1000
        kept: list[Frame] = []
        count = 0
        for f in self.frames:
            if f.side == "server":
                if f.t_ms > cut and count >= expect:
                    continue
                count += 1
            kept.append(f)
        self.frames = kept


def _pairs(headers: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in headers.raw_items())
