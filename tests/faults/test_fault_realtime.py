"""Real-time traffic under faults: floods, huge messages, garbage frames, open conversations.

Whatever the candidate does, the client's conversation with the primary is untouched;
what we hold stays bounded (measured: the peak RSS of the worker); every conversation
ends as one row, and the run's accounting adds up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from shadow.store.writer import reading
from tests.conftest import Server, run_proxy, serve
from tests.faults.faultkit import (
    PeakMemory,
    RawServer,
    accounting,
    find_worker,
    live_count,
    stop,
    wait_ready,
    wait_until,
)

pytestmark = pytest.mark.integration


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query on a closed store, with the outcome macros (the one definition)."""
    with reading(str(db)) as con:
        return con.execute(sql).fetchall()


FLOOD = 10_000  # 100,000: benchmarks/realtime_bench.py --flood (mitmproxy relays ~1,500/s here)
BIG = 10 * 1024 * 1024
MiB = 1024 * 1024


def ws_app() -> Starlette:
    """`flood N`: N small messages; `big`: one 10 MB message; `echo X`: X back; `hold`:
    nothing more (the conversation stays open)."""

    async def talk(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                command = await ws.receive_text()
                if command.startswith("flood "):
                    for i in range(int(command.split()[1])):
                        await ws.send_text(f'{{"n": {i}}}')
                    await ws.send_text('{"done": true}')
                elif command == "big":
                    await ws.send_bytes(b"\x01" * BIG)
                elif command.startswith("echo "):
                    await ws.send_text(json.dumps({"echo": command[5:]}))
                elif command == "push":  # a tick every 50 ms until the client goes
                    for i in range(400):
                        await ws.send_text(json.dumps({"type": "tick", "n": i}))
                        await asyncio.sleep(0.05)
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/ws", talk)])


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    with serve(ws_app()) as s:
        yield s


def ws(url: str) -> str:
    return url.replace("http", "ws", 1) + "/ws"


async def flood(url: str) -> int:
    got = 0
    async with connect(ws(url), proxy=None, max_size=None) as c:
        await c.send(f"flood {FLOOD}")
        while True:
            message = await asyncio.wait_for(c.recv(), 60)
            got += 1
            if message == '{"done": true}':
                return got


def test_a_flood_of_messages_is_bounded(backend: Server, tmp_path: Path) -> None:
    db = tmp_path / "flood.duckdb"
    with run_proxy(backend.url, backend.url, db, tmp_path) as proxy:
        worker = find_worker(proxy)
        wait_ready(db)
        asyncio.run(echo(proxy.url, 1))  # a conversation first: what any one costs is in
        peak = PeakMemory(worker)
        peak.sample()
        before = peak.worker_peak
        peak.start()
        assert asyncio.run(flood(proxy.url)) == FLOOD + 1  # the client got every message
        stop(proxy)
        peak.finish()
    # The copy followed 1000 messages (--stream-messages) and let the rest go: counted.
    [(kind, client, primary, candidate, p_end, c_end, dropped)] = rows(
        db,
        "SELECT kind, client_messages, primary_messages, candidate_messages, primary_ended,"
        " candidate_ended, dropped FROM conversations ORDER BY primary_messages DESC LIMIT 1",
    )
    assert (kind, client, p_end, c_end) == ("websocket", 1, "limit", "limit")
    assert primary == 999 and candidate == 1000 - 1 and dropped > 0
    assert rows(db, "SELECT verdict FROM shadow_exchange_outcomes(NULL)") == [("match",)] * 2, (
        rows(db, "SELECT path, kind, primary_value, candidate_value FROM differences LIMIT 5"),
        rows(db, "SELECT notes FROM exchanges"),
    )
    accounting(db).check(answered=2)
    # 10,000 messages crossed the worker's side; what it held stayed bounded.
    assert peak.worker_peak - before < 64 * MiB, (before, peak.worker_peak)


async def big(url: str) -> bytes:
    async with connect(ws(url), proxy=None, max_size=None) as c:
        await c.send("big")
        message = await asyncio.wait_for(c.recv(), 60)
        await c.send("echo after")
        await asyncio.wait_for(c.recv(), 10)
        assert isinstance(message, bytes)
        return message


def test_a_10_mb_message_is_a_candidate_error_the_client_never_sees(
    backend: Server, tmp_path: Path
) -> None:
    """The client gets it whole from the primary; the candidate's copy of the conversation
    stops at the message over --max-body (8 MiB): a candidate error, memory bounded."""
    db = tmp_path / "big.duckdb"
    with run_proxy(backend.url, backend.url, db, tmp_path) as proxy:
        assert asyncio.run(big(proxy.url)) == b"\x01" * BIG  # whole, for the client
        stop(proxy)
    [(verdict, error)] = rows(
        db, "SELECT verdict, candidate_error FROM shadow_exchange_outcomes(NULL)"
    )
    assert verdict == "candidate_error"
    assert f"message over {8 * MiB} bytes (--max-body)" in error
    accounting(db).check(answered=1)


def test_event_streams_open_at_shutdown_are_compared_and_do_not_hold_it(
    tmp_path: Path,
) -> None:
    """Streams of a minute, the proxy stopped after a second: compared as far as they got
    (`limit`), and the stop does not wait for the streams' end."""

    async def slow(request: Any) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(300):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(0.2)

        return StreamingResponse(gen(), media_type="text/event-stream")

    async def read(url: str, got: list[int]) -> None:
        with contextlib.suppress(httpx.HTTPError):
            async with (
                httpx.AsyncClient(timeout=30, trust_env=False) as client,
                client.stream("GET", f"{url}/events") as resp,
            ):
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        got.append(int(line[5:]))

    db = tmp_path / "sse-stop.duckdb"
    app = Starlette(routes=[Route("/events", slow)])
    with serve(app) as server, run_proxy(server.url, server.url, db, tmp_path) as proxy:

        async def run() -> float:
            got: list[list[int]] = [[], []]
            tasks = [asyncio.create_task(read(proxy.url, g)) for g in got]
            await asyncio.sleep(1.5)
            assert all(g for g in got)  # both streams flow
            seconds = await asyncio.to_thread(stop, proxy)
            await asyncio.gather(*tasks)
            return seconds

        seconds = asyncio.run(run())
    assert seconds < 15, seconds  # not the 30 s drain timeout
    found = rows(
        db,
        "SELECT o.verdict, c.kind, c.primary_ended, c.candidate_ended "
        "FROM shadow_exchange_outcomes(NULL) o JOIN conversations c USING (exchange_id)",
    )
    assert found == [("match", "sse", "limit", "limit")] * 2
    accounting(db).check(answered=2)


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A candidate that accepts the upgrade properly, then sends bytes that are no frame."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + b"\xff\x7fgarbage" * 100
    )
    await writer.drain()
    await asyncio.sleep(2)


async def echo(url: str, n: int = 3) -> list[Any]:
    async with connect(ws(url), proxy=None) as c:
        out = []
        for i in range(n):
            await c.send(f"echo {i}")
            out.append(json.loads(await asyncio.wait_for(c.recv(), 10)))
        return out


def test_a_candidate_sending_garbage_frames_is_a_candidate_error(
    backend: Server, tmp_path: Path
) -> None:
    db = tmp_path / "garbage.duckdb"
    with (
        RawServer(_garbage) as candidate,
        run_proxy(backend.url, candidate.url, db, tmp_path) as proxy,
    ):
        assert asyncio.run(echo(proxy.url)) == [{"echo": str(i)} for i in range(3)]
        stop(proxy)
    [(verdict, error)] = rows(
        db, "SELECT verdict, candidate_error FROM shadow_exchange_outcomes(NULL)"
    )
    assert verdict == "candidate_error" and "broke" in error, rows(
        db, "SELECT candidate_body, candidate_error, notes FROM exchanges"
    )
    accounting(db).check(answered=1)


async def hold(url: str, opened: asyncio.Event, release: asyncio.Event) -> None:
    async with connect(ws(url), proxy=None) as c:
        await c.send("echo 1")
        await c.recv()
        opened.set()
        await release.wait()


def test_conversations_open_at_shutdown_are_compared_as_far_as_they_got(
    backend: Server, tmp_path: Path
) -> None:
    db = tmp_path / "open.duckdb"

    async def run(proxy: Any) -> None:
        opened = [asyncio.Event() for _ in range(3)]
        release = asyncio.Event()
        tasks = [asyncio.create_task(hold(proxy.url, o, release)) for o in opened]
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 20)
        await asyncio.sleep(0.5)  # the copies' messages reach the candidate
        await asyncio.to_thread(stop, proxy)  # SIGINT while the clients still talk
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    with run_proxy(backend.url, backend.url, db, tmp_path) as proxy:
        asyncio.run(run(proxy))
    found = rows(
        db,
        "SELECT o.verdict, c.primary_ended, c.candidate_ended, c.client_messages "
        "FROM shadow_exchange_outcomes(NULL) o JOIN conversations c USING (exchange_id)",
    )
    assert found == [("match", "limit", "limit", 1)] * 3
    accounting(db).check(answered=3)


def test_past_stream_seconds_the_copy_ends_and_the_client_goes_on(
    backend: Server, tmp_path: Path
) -> None:
    db = tmp_path / "seconds.duckdb"

    async def talk(url: str) -> list[Any]:
        async with connect(ws(url), proxy=None) as c:
            out = []
            for i in range(4):
                await c.send(f"echo {i}")
                out.append(json.loads(await asyncio.wait_for(c.recv(), 10)))
                await asyncio.sleep(0.6)
            return out

    with run_proxy(backend.url, backend.url, db, tmp_path, "--stream-seconds", "1") as proxy:
        assert asyncio.run(talk(proxy.url)) == [{"echo": str(i)} for i in range(4)]
        stop(proxy)
    [(verdict, p_end, c_end, client)] = rows(
        db,
        "SELECT o.verdict, c.primary_ended, c.candidate_ended, c.client_messages "
        "FROM shadow_exchange_outcomes(NULL) o JOIN conversations c USING (exchange_id)",
    )
    assert (verdict, p_end, c_end) == ("match", "limit", "limit") and client == 2
    accounting(db).check(answered=1)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_client_leaving_a_pushing_server_is_no_difference(
    backend: Server, tmp_path: Path, how: str
) -> None:
    """The server pushes until the client goes: what the candidate pushed after the client
    had gone (closed, or the connection reset) never reached anyone: no difference."""

    async def talk(url: str) -> int:
        async with connect(ws(url), proxy=None) as c:
            await c.send("push")
            for _ in range(10):
                await asyncio.wait_for(c.recv(), 10)
            if how == "reset":
                c.transport.abort()  # a TCP reset: no closing handshake
                return 10
        return 10

    db = tmp_path / f"push-{how}.duckdb"
    with run_proxy(backend.url, backend.url, db, tmp_path) as proxy:
        for _ in range(2):
            asyncio.run(talk(proxy.url))
        time.sleep(1.0)
        stop(proxy)
    assert rows(db, "SELECT verdict FROM shadow_exchange_outcomes(NULL)") == [("match",)] * 2
    assert rows(db, "SELECT count(*) FROM differences") == [(0,)]
    accounting(db).check(answered=2)


def test_a_conversation_past_the_cap_is_stored_at_once_as_skipped(
    backend: Server, tmp_path: Path
) -> None:
    """--stream-connections 1: a second conversation is not copied; its row (the 101, the
    reason) is stored right away, not when the proxy stops."""
    db = tmp_path / "cap.duckdb"

    async def run(url: str) -> None:
        async with connect(ws(url), proxy=None) as first:
            await first.send("echo 1")
            await first.recv()
            async with connect(ws(url), proxy=None) as second:
                await second.send("echo 2")
                assert json.loads(await second.recv()) == {"echo": "2"}
            found = await asyncio.to_thread(
                wait_until,
                lambda: (
                    live_count(
                        db,
                        "SELECT count(*) FROM exchanges WHERE skip_reason "
                        "LIKE 'dropped: 1 WebSocket%'",
                    )
                    == 1
                ),
                15,
            )
            assert found, "the skipped conversation was not stored while the proxy ran"

    with run_proxy(backend.url, backend.url, db, tmp_path, "--stream-connections", "1") as proxy:
        wait_ready(db)
        asyncio.run(run(proxy.url))
        stop(proxy)
    assert sorted(
        rows(db, "SELECT verdict, primary_status FROM shadow_exchange_outcomes(NULL)")
    ) == [
        ("match", 101),
        ("skipped", 101),
    ]
    accounting(db).check(answered=2)
