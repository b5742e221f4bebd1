"""Streamed answers (server-sent events) pass through the proxy as they arrive.

mitmproxy buffers a whole response by default; a `text/event-stream` whose events
come 300 ms apart would reach the client only at its end. The addon streams such
answers as they come and compares them event by event (tests/integration/test_websocket.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from shadow.store.writer import reading
from tests.conftest import Server, run_proxy, serve

pytestmark = pytest.mark.integration

EVENTS = 5
GAP = 0.3  # seconds between events


async def _events(request: Request) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(EVENTS):
            yield f'data: {{"step": {i}}}\n\n'.encode()
            await asyncio.sleep(GAP)

    return StreamingResponse(gen(), media_type="text/event-stream")


async def _plain(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


APP = Starlette(routes=[Route("/api/process-updates", _events), Route("/api/ok", _plain)])


@pytest.fixture(scope="module")
def sse() -> Iterator[Server]:
    with serve(APP) as s:
        yield s


def _first_event_and_total(url: str) -> tuple[float, float, int]:
    """Seconds to the first event, to the end, and the number of events read."""
    t0 = time.monotonic()
    first = None
    seen = 0
    with (
        httpx.Client(timeout=10, trust_env=False) as client,
        client.stream("GET", f"{url}/api/process-updates") as resp,
    ):
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data:"):
                seen += 1
                if first is None:
                    first = time.monotonic() - t0
    assert first is not None
    return first, time.monotonic() - t0, seen


def test_events_reach_the_client_as_they_come(sse: Server, tmp_path: Path) -> None:
    direct_first, direct_total, direct_seen = _first_event_and_total(sse.url)
    db = tmp_path / "s.duckdb"
    with run_proxy(sse.url, sse.url, db, tmp_path) as proxy:
        # Warm first: the proxy's and the worker's start (imports on 2 cores) is not what
        # is measured here, buffering is.
        with httpx.Client(timeout=10, trust_env=False) as client:
            assert client.get(f"{proxy.url}/api/ok").json() == {"ok": True}
        first, total, seen = _first_event_and_total(proxy.url)
        proxy.stop()
    assert seen == direct_seen == EVENTS
    # Buffered, the first event would come with the last, after (EVENTS - 1) * GAP = 1.2 s.
    assert first < direct_first + 0.5 < GAP * (EVENTS - 1)
    assert total < direct_total + 1.0
    with reading(str(db)) as con:
        rows = con.execute(
            "SELECT endpoint, verdict, skip_reason, primary_status, candidate_status "
            "FROM shadow_exchange_outcomes(NULL) ORDER BY endpoint"
        ).fetchall()
    assert rows == [
        ("GET /api/ok", "match", None, 200, 200),
        ("GET /api/process-updates", "match", None, 200, 200),  # its copy, event by event
    ]


def test_bytes_that_are_not_utf8_do_not_stop_storage(sse: Server, tmp_path: Path) -> None:
    """A raw \\xff\\xfe in the path is stored escaped, and every later row still lands."""
    import socket

    db = tmp_path / "u.duckdb"
    with run_proxy(sse.url, sse.url, db, tmp_path) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(
                b"GET /api/\xff\xfe?q=\xfa HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"X-Raw: \xc3\x28\r\nConnection: close\r\n\r\n"
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 ")  # whatever the primary thinks of it
        with httpx.Client(timeout=10, trust_env=False) as client:
            for _ in range(3):
                assert client.get(f"{proxy.url}/api/ok").status_code == 200
        proxy.stop()
    with reading(str(db)) as con:
        rows = con.execute("SELECT path, query, notes FROM exchanges ORDER BY ts").fetchall()
        ended = con.execute("SELECT ended_at IS NOT NULL FROM runs").fetchall()
    assert len(rows) == 4 and ended == [(True,)]
    path, query, notes = rows[0]
    assert (path, query) == ("/api/\\xff\\xfe", "q=\\xfa")
    assert "not UTF-8" in notes
