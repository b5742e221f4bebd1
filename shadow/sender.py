"""Sending a recorded request to a backend and capturing its raw answer.

httpx with the aiohttp transport: measured on this project's target machine,
httpcore's own pool costs 1-2 ms of CPU per request, aiohttp's a fraction.
Bodies are read raw (still content-encoded) so both backends' answers are
decoded by the same comparator code.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from comparators.model import Payload
from shadow.model import BackendResponse, Request

MARK_HEADER = "x-shadow-copy"

# Hop-by-hop headers (RFC 9110 7.6.1) and those the client library sets itself.
_DROP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "proxy-authorization", "proxy-authenticate", "content-length", "host",
    }
)  # fmt: skip


def make_client(timeout: float, concurrency: int) -> httpx.AsyncClient:
    """A shared client for copies: aiohttp transport, no redirects, bounded pool."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        transport=AiohttpTransport(limits=limits, trust_env=False),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )


def outgoing_headers(request: Request, base_url: str, mark: str | None) -> list[tuple[str, str]]:
    """The client's headers for a copy: Host of the target, hop-by-hop removed, marked."""
    host = urlsplit(base_url).netloc
    headers = [(k, v) for k, v in request.headers if k.lower() not in _DROP]
    headers.insert(0, ("host", host))
    if mark is not None:
        headers.append((MARK_HEADER, mark))
    return headers


async def send(
    client: httpx.AsyncClient,
    base_url: str,
    request: Request,
    mark: str | None = "1",
    total_timeout: float | None = None,
) -> BackendResponse:
    """Send `request` to `base_url`; errors and timeouts become a failed response."""
    url = base_url.rstrip("/") + request.target
    headers = outgoing_headers(request, base_url, mark)
    start = time.perf_counter()
    try:
        # The client's timeouts are per phase; a server trickling bytes needs a total cap.
        async with asyncio.timeout(total_timeout):
            req = client.build_request(request.method, url, headers=headers, content=request.body)
            resp = await client.send(req, stream=True)
            try:
                body = b"".join([chunk async for chunk in resp.aiter_raw()])
            finally:
                await resp.aclose()
    except (httpx.TimeoutException, TimeoutError) as exc:
        ms = (time.perf_counter() - start) * 1000
        return BackendResponse.failed(f"timeout after {ms:.0f} ms ({type(exc).__name__})", ms)
    except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
        ms = (time.perf_counter() - start) * 1000
        return BackendResponse.failed(f"{type(exc).__name__}: {exc}".strip(": "), ms)
    ms = (time.perf_counter() - start) * 1000
    raw_headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.headers.raw)
    return BackendResponse(Payload(resp.status_code, raw_headers, body), elapsed_ms=ms)
