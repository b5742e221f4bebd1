"""Sending a recorded request to a backend and capturing its raw answer.

httpx with the aiohttp transport: measured on this project's target machine,
httpcore's own pool costs 1-2 ms of CPU per request, aiohttp's a fraction.
Bodies are read raw (still content-encoded) so both backends' answers are
decoded by the same comparator code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from shadow.model import DEFAULT_MAX_BODY, BackendResponse, BodyBuffer, Request

MARK_HEADER = "x-shadow-copy"

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

    if has(ConnectionRefusedError, aiohttp.ClientConnectorError):
        what = "connection refused"
    elif has(ConnectionResetError):
        what = "connection reset"
    elif has(aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, httpx.ReadError):
        what = "connection closed before the answer was complete"
    elif has(httpx.TimeoutException, TimeoutError, aiohttp.ServerTimeoutError):
        what = f"timeout after {ms:.0f} ms"
    elif has(aiohttp.ClientResponseError, httpx.RemoteProtocolError, httpx.DecodingError):
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
) -> list[tuple[str, str]]:
    """The client's headers for a copy: Host of the target, hop-by-hop removed, marked.

    `overrides` replace every header of the same name (e.g. a real Authorization
    for a target, when the recorded one was redacted).
    """
    host = urlsplit(base_url).netloc
    replaced = {k.lower() for k, _ in overrides}
    headers = [(k, v) for k, v in request.headers if k.lower() not in _DROP | replaced]
    headers.insert(0, ("host", host))
    headers.extend(overrides)
    if mark is not None:
        headers.append((MARK_HEADER, mark))
    return headers


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
    """Sends copies through httpx's aiohttp transport, without httpx's Client layer.

    The Client adds about 0.4 ms of CPU per request (URL and cookie handling,
    auth and redirect hooks) that a copy does not need, and its cookie jar
    would carry one user's Set-Cookie into the next user's copy. Measured
    (benchmarks/README.md): Client 0.75 ms, transport 0.36 ms, raw aiohttp 0.30.
    Create it inside a running event loop.
    """

    def __init__(self, concurrency: int) -> None:
        session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(),
            # Twice the copies in flight: each may go to a candidate and a secondary,
            # and waiting for a pooled connection must not count as backend latency.
            connector=aiohttp.TCPConnector(limit=2 * concurrency, use_dns_cache=True),
            trust_env=False,
        )
        self._transport = AiohttpTransport(client=session)
        self._concurrency = concurrency
        self._raw: httpx.AsyncHTTPTransport | None = None

    def _raw_transport(self) -> httpx.AsyncHTTPTransport:
        # aiohttp writes header values as UTF-8 text, so bytes that are not UTF-8
        # (\xff in a client's header) would reach the candidate changed; httpcore
        # writes them as given. Only such rare requests take this slower road.
        if self._raw is None:
            limits = httpx.Limits(max_connections=2 * self._concurrency)
            self._raw = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        return self._raw

    async def aclose(self) -> None:
        await self._transport.aclose()
        if self._raw is not None:
            await self._raw.aclose()

    async def send(
        self,
        base_url: str,
        request: Request,
        mark: str | None = "1",
        timeout: float = 5.0,
        overrides: Sequence[tuple[str, str]] = (),
        max_body: int = DEFAULT_MAX_BODY,
    ) -> BackendResponse:
        """Send `request` to `base_url`; errors and timeouts become a failed response.

        The answer's body is held up to `max_body` bytes; a longer one is cut and
        carries its full length and SHA-256 (memory stays bounded).
        """
        url = base_url.rstrip("/") + wire_target(request.target)
        headers: list[tuple[bytes, bytes]] = [
            (wire_value(k), wire_value(v))
            for k, v in outgoing_headers(request, base_url, mark, overrides)
        ]
        phases = {"connect": timeout, "read": timeout, "pool": timeout}
        start = time.perf_counter()
        try:
            # The transport's timeouts are per phase; a server trickling bytes needs a total cap.
            async with asyncio.timeout(timeout + 1):
                req = httpx.Request(
                    request.method,
                    url,
                    headers=headers,
                    content=request.body or None,
                    extensions={"timeout": phases},
                )
                transport = self._transport if _utf8(headers) else self._raw_transport()
                resp = await transport.handle_async_request(req)
                body = BodyBuffer(max_body)
                try:
                    async for chunk in resp.stream:  # type: ignore[union-attr]
                        body.add(chunk)
                finally:
                    await resp.aclose()
        except (httpx.HTTPError, aiohttp.ClientError, OSError, ValueError) as exc:
            # (timeouts included: httpx's are HTTPErrors, asyncio's TimeoutError an OSError)
            ms = (time.perf_counter() - start) * 1000
            return BackendResponse.failed(describe_failure(exc, ms), ms)
        ms = (time.perf_counter() - start) * 1000
        raw_headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw)
        return BackendResponse(body.payload(resp.status_code, raw_headers), elapsed_ms=ms)
