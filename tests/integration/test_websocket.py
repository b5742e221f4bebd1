"""WebSocket conversations and event streams through a real proxy (docs/realtime.md).

Real uvicorn backends on 127.0.0.1, a real `shadow proxy` between, a real
`websockets` client: the client's conversation with the primary is untouched,
and the candidate's copy of it is compared message by message.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect

from shadow.store.writer import reading
from tests.conftest import Server, free_port, run_proxy, serve

pytestmark = pytest.mark.integration

STEPS = (0, 50, 100)


def app(slip: bool = False, refuse: bool = False, events: int = 5) -> Starlette:
    """A progress channel: `hello`, then three `progress` messages per client message.

    `slip`: the second progress of each answer carries its number as a string;
    `refuse`: the upgrade is refused (403); `events`: the SSE stream's length.
    """

    async def talk(ws: WebSocket) -> None:
        if refuse:
            await ws.close(code=1008)  # before accept: uvicorn answers the upgrade with 403
            return
        await ws.accept()
        await ws.send_text(json.dumps({"type": "hello", "version": 1}))
        try:
            while True:
                job = await ws.receive_text()
                for i, step in enumerate(STEPS):
                    value: Any = str(step) if slip and i == 1 else step
                    await ws.send_text(
                        json.dumps({"type": "progress", "job": job, "progress": value})
                    )
                    await asyncio.sleep(0.01)
        except WebSocketDisconnect:
            pass

    async def stream(request: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[bytes]:
            for i in range(events):
                yield f'event: progress\ndata: {{"step": {i}}}\n\n'.encode()
                await asyncio.sleep(0.05)

        return StreamingResponse(gen(), media_type="text/event-stream")

    return Starlette(routes=[WebSocketRoute("/ws/progress", talk), Route("/api/stream", stream)])


@pytest.fixture(scope="module")
def primary() -> Iterator[Server]:
    with serve(app()) as s:
        yield s


async def converse(url: str, jobs: tuple[str, ...] = ("a", "b")) -> list[str]:
    """Talk to the progress channel at `url` (http://...): what the client received."""
    got: list[str] = []
    async with connect(url.replace("http", "ws", 1) + "/ws/progress", proxy=None) as ws:
        got.append(str(await ws.recv()))
        for job in jobs:
            await ws.send(job)
            for _ in STEPS:
                got.append(str(await asyncio.wait_for(ws.recv(), 5)))
    return got


def outcomes(db: Path) -> list[tuple[Any, ...]]:
    with reading(str(db)) as con:
        return con.execute(
            "SELECT endpoint, verdict, candidate_error FROM shadow_exchange_outcomes(NULL) "
            "ORDER BY endpoint"
        ).fetchall()


def differences(db: Path) -> list[tuple[Any, ...]]:
    with reading(str(db)) as con:
        return con.execute(
            "SELECT path, kind, primary_value, candidate_value FROM differences ORDER BY path"
        ).fetchall()


def test_the_candidates_slip_is_found_at_its_message(primary: Server, tmp_path: Path) -> None:
    direct = asyncio.run(converse(primary.url))
    db = tmp_path / "ws.duckdb"
    with (
        serve(app(slip=True)) as candidate,
        run_proxy(primary.url, candidate.url, db, tmp_path) as proxy,
    ):
        proxied = asyncio.run(converse(proxy.url))
        proxy.stop()
    assert proxied == direct  # the client's conversation is the primary's, message for message
    assert outcomes(db) == [("GET /ws/progress", "differ", None)]
    # Each answer's second progress (server messages 2 and 5, after `hello`) differs in type.
    assert differences(db) == [
        ("$ws[2].progress", "type_changed", "50", '"50"'),
        ("$ws[5].progress", "type_changed", "50", '"50"'),
    ]
    with reading(str(db)) as con:
        row = con.execute(
            "SELECT kind, client_messages, primary_messages, candidate_messages, primary_ended,"
            " candidate_ended FROM conversations"
        ).fetchall()
    assert row == [("websocket", 2, 7, 7, "closed", "closed")]


def test_the_same_conversation_matches(primary: Server, tmp_path: Path) -> None:
    db = tmp_path / "same.duckdb"
    with (
        serve(app()) as candidate,
        run_proxy(primary.url, candidate.url, db, tmp_path) as proxy,
    ):
        for _ in range(3):
            asyncio.run(converse(proxy.url, ("x",)))
        proxy.stop()
    assert outcomes(db) == [("GET /ws/progress", "match", None)] * 3
    assert differences(db) == []


def test_a_candidate_refusing_the_upgrade_changes_nothing_for_the_client(
    primary: Server, tmp_path: Path
) -> None:
    direct = asyncio.run(converse(primary.url))
    db = tmp_path / "refused.duckdb"
    with (
        serve(app(refuse=True)) as candidate,
        run_proxy(primary.url, candidate.url, db, tmp_path) as proxy,
    ):
        assert asyncio.run(converse(proxy.url)) == direct
        proxy.stop()
    [(endpoint, verdict, error)] = outcomes(db)
    assert (endpoint, verdict) == ("GET /ws/progress", "candidate_error")
    assert "refused the WebSocket upgrade" in error and "403" in error


def test_a_candidate_that_never_answers_the_upgrade_is_an_error(
    primary: Server, tmp_path: Path
) -> None:
    """A server that takes the connection and says nothing: the client never notices."""
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                held.append(listener.accept()[0])
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    db = tmp_path / "silent.duckdb"
    try:
        with run_proxy(
            primary.url, f"http://127.0.0.1:{port}", db, tmp_path, "--timeout", "1"
        ) as proxy:
            direct = asyncio.run(converse(primary.url))
            assert asyncio.run(converse(proxy.url)) == direct
            proxy.stop()
    finally:
        listener.close()
        for conn in held:
            conn.close()
    [(_, verdict, error)] = outcomes(db)
    assert verdict == "candidate_error"
    assert "not answered within 1 s" in error


def test_an_event_stream_is_compared_event_by_event(primary: Server, tmp_path: Path) -> None:
    db = tmp_path / "sse.duckdb"
    with (
        serve(app(events=4)) as candidate,
        run_proxy(primary.url, candidate.url, db, tmp_path) as proxy,
    ):
        with (
            httpx.Client(timeout=10, trust_env=False) as client,
            client.stream("GET", f"{proxy.url}/api/stream") as resp,
        ):
            data = [line for line in resp.iter_lines() if line.startswith("data:")]
        proxy.stop()
    assert len(data) == 5  # the client got the primary's whole stream
    assert outcomes(db) == [("GET /api/stream", "differ", None)]
    assert differences(db) == [("$sse[4]", "removed", '{"step": 4}', "null")]
    with reading(str(db)) as con:
        row = con.execute(
            "SELECT kind, primary_messages, candidate_messages, primary_ended, candidate_ended "
            "FROM conversations"
        ).fetchall()
    assert row == [("sse", 5, 4, "closed", "closed")]


def test_socketio_and_event_streams_of_the_example_backends(
    legacy: Server, candidate: Server, tmp_path: Path
) -> None:
    """The examples' slips (SLIP 12, 13) at their message paths; the handshake's sid, the
    pings and the acks' ids are no differences."""
    from examples.realtime import drive_realtime

    direct = asyncio.run(drive_realtime(legacy.url, conversations=2, streams=2))
    db = tmp_path / "examples.duckdb"
    with run_proxy(legacy.url, candidate.url, db, tmp_path) as proxy:
        proxied = asyncio.run(drive_realtime(proxy.url, conversations=2, streams=2))
        proxy.stop()
    assert proxied.errors == [] and direct.errors == []
    # The clients got the primary's conversations and streams, event for event.
    assert [c.events for c in proxied.conversations] == [c.events for c in direct.conversations]
    assert [s.events for s in proxied.streams] == [s.events for s in direct.streams]
    with reading(str(db)) as con:
        verdicts = con.execute(
            "SELECT endpoint, verdict, count(*) FROM shadow_exchange_outcomes(NULL) "
            "WHERE endpoint LIKE '%socketio%' OR endpoint LIKE '%stream%' "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        found = con.execute("SELECT DISTINCT path, kind FROM differences ORDER BY path").fetchall()
    assert [(v, n) for _, v, n in verdicts] == [("differ", 2), ("differ", 2)]
    assert found == [
        ("$sse[5]", "removed"),  # SLIP 13: the final `done` event is missing
        ("$ws.event[progress][2].progress", "type_changed"),  # SLIP 12: "50" for 50
    ]
