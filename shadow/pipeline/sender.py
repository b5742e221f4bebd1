"""Sending a recorded request to a backend and capturing its raw answer.

Plain `http://` copies (no TLS settings, no outbound proxy: nearly all) go through
the small HTTP/1.1 client of shadow.pipeline.http1; the rest through httpx's
transports (aiohttp's, or httpcore's for HTTP/2, client certificates, a chosen SNI,
proxies). Measured on this project's target machine: httpcore's own pool costs
1-2 ms of CPU per request, httpx over aiohttp about 0.3 ms, the small client about
a fifth of that. Bodies are read raw (still content-encoded) so both backends'
answers are decoded by the same comparator code.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from comparators import envelope
from comparators.decode import DEFAULT_DECODED_LIMIT, media_type
from comparators.model import Headers, Payload
from shadow.config.tls import BackendTls, client_context
from shadow.model import DEFAULT_MAX_BODY, BackendResponse, BodyBuffer, Request
from shadow.pipeline import http1

MARK_HEADER = "x-shadow-copy"
SSE_TYPE = "text/event-stream"
MAX_CHUNK_TIMES = 100_000  # chunk times kept per followed stream (the events' times)


@dataclass(frozen=True)
class StreamLimits:
    """How much of one real-time answer is captured (per side), and how many at once."""

    messages: int = 1000  # messages (or events) of a conversation; past it: "limit"
    seconds: float = 60.0  # how long one conversation or stream is followed
    # Bytes of one conversation's messages kept (per side); past them, each message is kept
    # as its length and SHA-256 only.
    message_bytes: int = DEFAULT_MAX_BODY
    connections: int = 100  # conversations copied at once; past it, skipped and counted


# Hop-by-hop headers (RFC 9110 7.6.1) and those the client library sets itself.
_DROP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "proxy-authorization", "proxy-authenticate", "content-length", "host",
    }
)  # fmt: skip


ERROR_TEXT_CAP = 512  # characters of an error's text kept per row


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (cycles cut)."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def describe_failure(exc: BaseException, ms: float) -> str:
    """A failed send named for what it was: refused, reset, closed, timeout, bad answer.

    httpx's aiohttp transport reports a refused connection as ConnectTimeout, and a
    reset as a read error: the cause chain says what really happened. The text is
    capped at ERROR_TEXT_CAP characters (a garbage answer can be long).
    """
    chain = _chain(exc)
    detail = " <- ".join(f"{type(e).__name__}: {e}".strip(": ") for e in chain)

    def has(*types: type[BaseException]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if has(ssl.SSLCertVerificationError, aiohttp.ClientConnectorCertificateError):
        what = "certificate verify failed"  # (aiohttp's is a ClientConnectorError too)
    elif has(ssl.SSLError):
        what = "TLS failed"
    elif has(ConnectionRefusedError, aiohttp.ClientConnectorError, http1.ConnectFailed):
        what = "connection refused"  # (any failure to connect, as aiohttp names it)
    elif has(ConnectionResetError):
        what = "connection reset"
    elif has(
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,
        httpx.ReadError,
        http1.Incomplete,
    ):
        what = "connection closed before the answer was complete"
    elif has(httpx.TimeoutException, TimeoutError, aiohttp.ServerTimeoutError):
        what = f"timeout after {ms:.0f} ms"
    elif has(
        aiohttp.ClientResponseError,
        httpx.RemoteProtocolError,
        httpx.DecodingError,
        http1.BadAnswer,
    ):
        what = "bad answer (not HTTP as expected)"
    else:
        what = "failed"
    text = f"{what} ({detail})"
    if len(text) > ERROR_TEXT_CAP:
        text = text[: ERROR_TEXT_CAP - 30] + f"... [{len(text)} chars in all]"
    return text


def wire_value(value: str) -> bytes:
    """A header as the client sent it: latin-1 text (mitmproxy's reading), raw bytes kept
    as lone surrogates back to bytes, and beyond latin-1 (a hand-written file) UTF-8."""
    try:
        return value.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape")


def wire_target(target: str) -> str:
    """The path and query for the copy; raw bytes that are not UTF-8 are percent-encoded."""
    if target.isascii():
        return target
    try:
        target.encode("utf-8")
        return target
    except UnicodeEncodeError:
        raw = target.encode("utf-8", "surrogateescape")
        return quote(raw, safe="/?&=%:@!$'()*+,;~-._")


def outgoing_headers(
    request: Request,
    base_url: str,
    mark: str | None,
    overrides: Sequence[tuple[str, str]] = (),
    keep_host: bool = False,
) -> list[tuple[str, str]]:
    """The client's headers for a copy: Host of the target, hop-by-hop removed, marked.

    `overrides` replace every header of the same name (e.g. a real Authorization
    for a target, when the recorded one was redacted). `keep_host`: the client's
    own Host goes instead (an ingress in front of the target routes by it).
    """
    # The target's host and port: never its user info (http://user:pw@host is no Host).
    host = urlsplit(base_url).netloc.rpartition("@")[2]
    if keep_host:
        host = request.header("host") or request.header(":authority") or host
    replaced = {k.lower() for k, _ in overrides}
    headers = [(k, v) for k, v in request.headers if k.lower() not in _DROP | replaced]
    headers.insert(0, ("host", host))
    headers.extend(overrides)
    if mark is not None:
        headers.append((MARK_HEADER, mark))
    return headers


PLAIN = BackendTls()  # no TLS settings of its own: the system's CAs, HTTP/1.1
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def proxy_for(url: str, explicit: str | None = None) -> str | None:
    """The outbound proxy for a copy to `url`: `explicit` ("" for none), else the
    environment's HTTPS_PROXY / HTTP_PROXY unless NO_PROXY (or loopback) exempts it."""
    if explicit is not None:
        return explicit or None
    host = urlsplit(url).hostname or ""
    if host in _LOOPBACK or host.startswith("127."):
        return None  # a proxy for the whole machine never means the machine itself
    proxies = urllib.request.getproxies_environment()
    if _no_proxy(host, proxies.get("no", ""), urlsplit(url).port):
        return None
    return proxies.get(urlsplit(url).scheme) or proxies.get("all")


def _no_proxy(host: str, no_proxy: str, port: int | None = None) -> bool:
    """Whether NO_PROXY exempts `host`: "*", names and domain suffixes, name:port, CIDRs."""
    host = host.lower()
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower().lstrip(".")
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
            continue
        if address is not None and "/" in name:
            try:
                if address in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


def _utf8(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """True when every header name and value is valid UTF-8 (ASCII, nearly always)."""
    for k, v in headers:
        if not (k.isascii() and v.isascii()):
            try:
                k.decode("utf-8")
                v.decode("utf-8")
            except UnicodeDecodeError:
                return False
    return True


class Sender:
    """Sends copies: plain HTTP through shadow.pipeline.http1, the rest through httpx's
    transports, without httpx's Client layer.

    The Client adds about 0.4 ms of CPU per request (URL and cookie handling,
    auth and redirect hooks) that a copy does not need, and its cookie jar
    would carry one user's Set-Cookie into the next user's copy. Measured
    (benchmarks/README.md): Client 0.75 ms, transport 0.36 ms, raw aiohttp 0.30;
    shadow.pipeline.http1 about 0.07 (benchmarks/profiles/README.md).
    Create it inside a running event loop.
    """

    def __init__(self, concurrency: int, proxy: str | None = None) -> None:
        # aiohttp's, made when first needed (plain copies never need them): aiohttp sends a
        # request again when a kept-alive connection turns out closed (RFC 9112 9.3.1), for
        # every idempotent method, PUT and DELETE included. For a write that is a second
        # write (or, if the retry cannot connect, a request that looks never sent): only
        # safe methods may be retried, so writes go through a session that never retries.
        self._aiohttp: dict[bool, AiohttpTransport] = {}
        self._concurrency = concurrency
        self._proxy = proxy
        # Plain http:// copies (nearly all): the small HTTP/1.1 client (shadow.pipeline.http1).
        self._http1 = http1.Client(2 * concurrency)
        self._plain_targets: dict[str, tuple[str, int, str] | None] = {}
        # httpcore transports, one per (TLS settings, proxy): for what aiohttp cannot do.
        self._others: dict[tuple[BackendTls, str | None], httpx.AsyncHTTPTransport] = {}

    @staticmethod
    def _session(concurrency: int, retry: bool) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            # Twice the copies in flight: each may go to a candidate and a secondary,
            # and waiting for a pooled connection must not count as backend latency.
            connector=aiohttp.TCPConnector(limit=2 * concurrency, use_dns_cache=True),
            trust_env=False,
        )
        if not retry:
            # No public switch (aiohttp 3.10-3.13): the attribute its request loop reads.
            session._retry_connection = False
        return session

    def _other_transport(self, tls: BackendTls, proxy: str | None) -> httpx.AsyncHTTPTransport:
        key = (tls, proxy)
        transport = self._others.get(key)
        if transport is None:
            limits = httpx.Limits(max_connections=2 * self._concurrency)
            transport = httpx.AsyncHTTPTransport(
                verify=client_context(tls),
                http2=tls.http2,
                proxy=proxy,
                limits=limits,
                trust_env=False,
            )
            self._others[key] = transport
        return transport

    def _route(
        self, url: str, tls: BackendTls, headers: Sequence[tuple[bytes, bytes]], method: str = "GET"
    ) -> tuple[httpx.AsyncBaseTransport, dict[str, Any]]:
        """The transport for one copy, and the request extensions it needs."""
        proxy = proxy_for(url, self._proxy)
        # aiohttp writes header values as UTF-8 text, so bytes that are not UTF-8
        # (\xff in a client's header) would reach the target changed; httpcore writes
        # them as given. It also does HTTP/2, client certificates, a chosen SNI and
        # proxies per target; plain copies (nearly all) keep the faster aiohttp.
        if tls == PLAIN and proxy is None and _utf8(headers):
            safe = method.upper() in ("GET", "HEAD", "OPTIONS")
            transport = self._aiohttp.get(safe)
            if transport is None:
                session = self._session(self._concurrency, retry=safe)
                transport = self._aiohttp[safe] = AiohttpTransport(client=session)
            return transport, {}
        extensions: dict[str, Any] = {}
        if tls.keep_host and url.startswith("https:"):
            host = next((v for k, v in headers if k.lower() == b"host"), b"").decode("latin-1")
            try:
                name = urlsplit(f"//{host}").hostname if host else None
            except ValueError:  # a client's malformed Host: the target's own name then
                name = None
            if name:
                extensions["sni_hostname"] = name
        return self._other_transport(tls, proxy), extensions

    async def aclose(self) -> None:
        await self._http1.aclose()
        for session in self._aiohttp.values():
            await session.aclose()
        for transport in self._others.values():
            await transport.aclose()

    async def send(
        self,
        base_url: str,
        request: Request,
        mark: str | None = "1",
        timeout: float = 5.0,
        overrides: Sequence[tuple[str, str]] = (),
        max_body: int = DEFAULT_MAX_BODY,
        tls: BackendTls = PLAIN,
        limits: StreamLimits | None = None,
        stop: asyncio.Event | None = None,
    ) -> BackendResponse:
        """Send `request` to `base_url`; errors and timeouts become a failed response.

        The answer's body is held up to `max_body` bytes; a longer one is cut and
        carries its full length and SHA-256 (memory stays bounded). With `limits`, an
        event stream (`text/event-stream`) is followed for up to `limits.seconds` and
        `limits.messages` events (or until `stop` is set: the pipeline is closing) and
        comes back as a conversation (`stream="sse"`).
        """
        start = time.perf_counter()
        try:
            plain = self._plain(base_url, tls)
            # The transport's timeouts are per phase; a server trickling bytes needs a total cap.
            async with asyncio.timeout(timeout + 1) as deadline:
                if plain is not None:
                    got = await self._send_plain(
                        base_url, plain, request, mark, timeout, overrides, max_body, limits
                    )
                else:
                    got = await self._send_transport(
                        base_url, request, mark, timeout, overrides, max_body, tls, limits
                    )
                status, raw_headers, body = got
                if isinstance(body, BodyBuffer):
                    ms = (time.perf_counter() - start) * 1000
                    return BackendResponse(body.payload(status, raw_headers), elapsed_ms=ms)
                # An event stream may last: followed for its own time, then cut ("limit").
                assert limits is not None
                deadline.reschedule(asyncio.get_running_loop().time() + limits.seconds + 2)
                try:
                    ms = (time.perf_counter() - start) * 1000
                    raw, ended, times, t_end = await _follow(body[0], limits, max_body, stop)
                finally:
                    await body[1]()
        except (httpx.HTTPError, aiohttp.ClientError, OSError, ValueError, ssl.SSLError) as exc:
            # (timeouts included: httpx's are HTTPErrors, asyncio's TimeoutError an OSError)
            ms = (time.perf_counter() - start) * 1000
            return BackendResponse.failed(describe_failure(exc, ms), ms)
        conv = envelope.sse_conversation(
            raw_headers, raw, ended, DEFAULT_DECODED_LIMIT, limits.messages, times, t_end
        )
        payload = Payload(status, raw_headers, envelope.encode(conv), stream="sse")
        return BackendResponse(payload, elapsed_ms=ms)

    def _plain(self, base_url: str, tls: BackendTls) -> tuple[str, int, str] | None:
        """(host, port, path prefix) when a copy to `base_url` goes through the small
        HTTP/1.1 client: plain http, no TLS settings, no outbound proxy, no user info
        (else None: httpx's transports)."""
        if tls != PLAIN:
            return None
        if base_url in self._plain_targets:
            return self._plain_targets[base_url]
        target: tuple[str, int, str] | None = None
        try:
            parts = urlsplit(base_url)
            if (
                parts.scheme == "http"
                and parts.hostname
                and "@" not in parts.netloc
                and proxy_for(base_url, self._proxy) is None
            ):
                target = (parts.hostname, parts.port or 80, parts.path.rstrip("/"))
        except ValueError:  # a bad port: the transports say so
            target = None
        if len(self._plain_targets) < 64:
            self._plain_targets[base_url] = target
        return target

    async def _send_plain(
        self,
        base_url: str,
        plain: tuple[str, int, str],
        request: Request,
        mark: str | None,
        timeout: float,
        overrides: Sequence[tuple[str, str]],
        max_body: int,
        limits: StreamLimits | None,
    ) -> tuple[int, Headers, BodyBuffer | _Streamed]:
        host, port, prefix = plain
        headers = [
            (wire_value(k), wire_value(v))
            for k, v in outgoing_headers(request, base_url, mark, overrides)
        ]
        method = request.method
        body = request.body
        if body or method.upper() in ("POST", "PUT", "PATCH"):
            headers.append((b"content-length", str(len(body)).encode()))
        head = http1.request_head(method, prefix + wire_target(request.target), headers)
        answer = await self._http1.request(
            host,
            port,
            head,
            body,
            head_only=method.upper() == "HEAD",
            timeout=timeout,
            max_body=max_body,
            retry=method.upper() in ("GET", "HEAD", "OPTIONS"),
            stream_if=_is_event_stream if limits is not None else None,
        )
        if answer.body is not None:
            return answer.status, answer.headers, answer.body
        return answer.status, answer.headers, (answer.chunks(), answer.aclose)

    async def _send_transport(
        self,
        base_url: str,
        request: Request,
        mark: str | None,
        timeout: float,
        overrides: Sequence[tuple[str, str]],
        max_body: int,
        tls: BackendTls,
        limits: StreamLimits | None,
    ) -> tuple[int, Headers, BodyBuffer | _Streamed]:
        """Through httpx's transports: aiohttp, or httpcore for TLS settings, proxies and
        header bytes aiohttp would change."""
        url = base_url.rstrip("/") + wire_target(request.target)
        headers: list[tuple[bytes, bytes]] = [
            (wire_value(k), wire_value(v))
            for k, v in outgoing_headers(request, base_url, mark, overrides, tls.keep_host)
        ]
        phases = {"connect": timeout, "read": timeout, "pool": timeout}
        transport, extensions = self._route(url, tls, headers, request.method)
        req = httpx.Request(
            request.method,
            url,
            headers=headers,
            content=request.body or None,
            extensions={"timeout": phases, **extensions},
        )
        resp = await transport.handle_async_request(req)
        raw_headers = _pairs(resp.headers.raw)
        if limits is not None and media_type(raw_headers) == SSE_TYPE:
            return resp.status_code, raw_headers, (aiter(resp.stream), resp.aclose)  # type: ignore[arg-type]
        body = BodyBuffer(max_body)
        try:
            async for chunk in resp.stream:  # type: ignore[union-attr]
                body.add(chunk)
        finally:
            await resp.aclose()
        return resp.status_code, raw_headers, body


# A streamed answer: its chunks, and what lets go of its connection.
_Streamed = tuple[AsyncIterator[bytes], Callable[[], Awaitable[None]]]


def _is_event_stream(headers: Headers) -> bool:
    return media_type(headers) == SSE_TYPE


def _pairs(raw: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)


async def _follow(
    chunks: AsyncIterator[bytes],
    limits: StreamLimits,
    max_body: int,
    stop: asyncio.Event | None = None,
) -> tuple[bytes, str, list[tuple[int, float]], float]:
    """An event stream's bytes until it ends, a limit (time, events, bytes) is reached or
    `stop` is set; how it ended: "closed" (by the server), "limit" or "error" (it broke);
    (bytes so far, ms) per chunk, and when it ended (ms since its headers)."""
    kept = bytearray()
    times: list[tuple[int, float]] = []
    events = 0
    t0 = time.monotonic()
    end = t0 + limits.seconds
    it = aiter(chunks)
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None

    def result(ended: str) -> tuple[bytes, str, list[tuple[int, float]], float]:
        return bytes(kept), ended, times, (time.monotonic() - t0) * 1000

    try:
        while True:
            left = end - time.monotonic()
            if left <= 0 or (stopped is not None and stopped.done()):
                return result("limit")
            step = asyncio.ensure_future(anext(it))
            waiting = {step} if stopped is None else {step, stopped}
            await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                with contextlib.suppress(BaseException):
                    await step
                return result("limit")
            try:
                chunk = step.result()
            except StopAsyncIteration:
                return result("closed")
            except (httpx.HTTPError, aiohttp.ClientError, OSError, http1.BadAnswer):
                return result("error")
            kept += chunk[: max(0, max_body - len(kept))]
            if len(times) < MAX_CHUNK_TIMES:
                times.append((len(kept), (time.monotonic() - t0) * 1000))
            # Roughly (a separator split between chunks is missed): parsing counts exactly.
            events += chunk.count(b"\n\n") + chunk.count(b"\r\n\r\n")
            if len(kept) >= max_body or events >= limits.messages:
                return result("limit")
    finally:
        if stopped is not None:
            stopped.cancel()
