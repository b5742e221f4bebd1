"""A conversation copied to one backend (TalkCopy) and event streams followed by the sender,
against real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from comparators import envelope
from comparators.envelope import Frame
from shadow.model import Request
from shadow.pipeline.realtime import TalkCopy, is_websocket, ws_url
from shadow.pipeline.sender import Sender, StreamLimits
from tests.conftest import Server, free_port, serve

CLOSES: list[tuple[int, str]] = []  # close codes the backend saw from its clients


def _app() -> Starlette:
    async def echo(ws: WebSocket) -> None:
        if ws.headers.get("x-refuse"):
            await ws.close(code=1008)
            return
        await ws.accept()
        try:
            while True:
                text = await ws.receive_text()
                if text == "bye":  # the server closes the conversation itself
                    await ws.close(code=4000, reason="server says bye")
                    return
                if text == "big":
                    await ws.send_text("x" * 5000)
                    continue
                await ws.send_text(json.dumps({"echo": text}))
        except WebSocketDisconnect as exc:
            CLOSES.append((exc.code, exc.reason or ""))

    async def events(request: HttpRequest) -> StreamingResponse:
        n, gap = int(request.query_params.get("n", "5")), float(request.query_params["gap"])

        async def gen() -> AsyncIterator[bytes]:
            for i in range(n):
                yield f"data: {i}\n\n".encode()
                await asyncio.sleep(gap)

        return StreamingResponse(gen(), media_type="text/event-stream")

    return Starlette(routes=[WebSocketRoute("/ws", echo), Route("/events", events)])


@pytest.fixture(scope="module")
def backend() -> Iterator[Server]:
    with serve(_app()) as s:
        yield s


UPGRADE = Request(
    "GET",
    "/ws",
    "",
    (
        ("host", "client.example"),
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
        ("x-team", "payments"),
    ),
)


def client(text: str) -> Frame:
    return envelope.frame("client", 0.0, text.encode(), True, 1 << 20)


def run_copy(copy: TalkCopy, plan: list[tuple[float, str]], end: tuple[str, float]) -> object:
    """Feed `copy` the client messages of `plan` (seconds from now, text) and its end."""

    async def main() -> object:
        now = time.time()
        copy.origin = now
        for at, text in plan:
            copy.client(client(text), now + at)
        copy.end(1000, "", end[0], "closed", now + end[1])
        return await copy.run()

    return asyncio.run(main())


def server_frames(answer: object) -> tuple[envelope.Conversation, list[Frame]]:
    payload = answer.payload  # type: ignore[attr-defined]
    assert payload is not None and payload.stream == "websocket"
    conv = envelope.decode(payload.body)
    return conv, conv.side("server")


def test_helpers() -> None:
    assert is_websocket(UPGRADE)
    assert not is_websocket(Request("GET", "/ws"))
    assert ws_url("https://h:8443/base/", "/ws?x=1") == "wss://h:8443/base/ws?x=1"
    assert ws_url("http://h", "/ws") == "ws://h/ws"


def test_messages_keep_their_spacing_and_order(backend: Server) -> None:
    copy = TalkCopy(backend.url, UPGRADE)
    answer = run_copy(copy, [(0.0, "a"), (0.3, "b"), (0.6, "c")], ("client", 0.8))
    conv, server = server_frames(answer)
    sent = [f for f in conv.frames if f.side == "client"]
    assert [f.data for f in sent] == ["a", "b", "c"] and all(f.sent for f in sent)
    gaps = [b.t_ms - a.t_ms for a, b in itertools.pairwise(sent)]
    assert all(250 < g < 400 for g in gaps), gaps
    assert [json.loads(f.data) for f in server] == [{"echo": x} for x in "abc"]
    assert (conv.closed_by, conv.ended, conv.close_code) == ("client", "closed", 1000)


def test_a_late_start_moves_every_message_alike(backend: Server) -> None:
    """Opened a second after it was due: the spacing is kept, the messages are not bunched."""

    async def main() -> object:
        copy = TalkCopy(backend.url, UPGRADE)
        now = time.time()
        copy.origin = now - 1.0
        for i, text in enumerate("ab"):
            copy.client(client(text), now - 1.0 + 0.3 * i)
        copy.end(1000, "", "client", "closed", now - 0.5)
        return await copy.run()

    conv, _ = server_frames(asyncio.run(main()))
    a, b = (f for f in conv.frames if f.side == "client")
    assert 250 < b.t_ms - a.t_ms < 400


def test_the_clients_close_code_reaches_the_backend(backend: Server) -> None:
    CLOSES.clear()

    async def main() -> object:
        copy = TalkCopy(backend.url, UPGRADE)
        copy.client(client("a"), time.time())
        copy.end(4001, "done here", "client", "closed", time.time() + 0.1)
        return await copy.run()

    asyncio.run(main())
    deadline = time.monotonic() + 5
    while not CLOSES and time.monotonic() < deadline:
        time.sleep(0.05)
    assert CLOSES == [(4001, "done here")]


def test_a_backend_that_closes_first(backend: Server) -> None:
    copy = TalkCopy(backend.url, UPGRADE)
    answer = run_copy(copy, [(0.0, "bye"), (0.3, "after")], ("client", 0.5))
    conv, server = server_frames(answer)
    assert server == []
    assert (conv.closed_by, conv.close_code, conv.ended) == ("server", 4000, "closed")
    sent = [(f.data, f.sent) for f in conv.frames if f.side == "client"]
    assert sent == [("bye", True), ("after", False)]  # then it was gone: not sent


def test_a_refused_upgrade_is_the_backends_http_answer(backend: Server) -> None:
    request = Request(UPGRADE.method, UPGRADE.path, "", (*UPGRADE.headers, ("x-refuse", "1")))
    answer = run_copy(TalkCopy(backend.url, request), [(0.0, "a")], ("client", 0.1))
    payload = answer.payload  # type: ignore[attr-defined]
    assert payload is not None and payload.status == 403 and not payload.stream


def test_an_upgrade_never_answered_is_a_failure() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.listen()
        copy = TalkCopy(f"http://127.0.0.1:{port}", UPGRADE, timeout=0.5)
        answer = run_copy(copy, [(0.0, "a")], ("client", 0.1))
    assert answer.payload is None  # type: ignore[attr-defined]
    assert "not answered within 0.5 s" in answer.error  # type: ignore[attr-defined]


def test_a_refused_connection_is_a_failure() -> None:
    answer = run_copy(TalkCopy(f"http://127.0.0.1:{free_port()}", UPGRADE), [], ("client", 0))
    assert answer.payload is None and "refused" in answer.error  # type: ignore[attr-defined]


def test_what_is_kept_is_bounded(backend: Server) -> None:
    limits = StreamLimits(messages=4, message_bytes=8000)
    copy = TalkCopy(backend.url, UPGRADE, limits=limits)
    answer = run_copy(copy, [(0.05 * i, "big") for i in range(3)], ("client", 0.3))
    conv, server = server_frames(answer)
    # 4 messages kept (the client's count too): the third answer is counted, not kept.
    assert [f.side for f in conv.frames] == ["client", "server", "client", "server", "client"]
    assert conv.dropped == 1
    # 8000 bytes of messages kept: the second answer keeps 3000 and its digest.
    assert [(len(f.data), f.cut, f.size) for f in server] == [
        (5000, False, 5000),
        (3000, True, 5000),
    ]
    assert len(server[1].sha256) == 64


def _follow(url: str, limits: StreamLimits, max_body: int = 1 << 20) -> envelope.Conversation:
    async def main() -> object:
        sender = Sender(2)
        try:
            return await sender.send(url, Request("GET", "/events", query), timeout=5,
                                     max_body=max_body, limits=limits)  # fmt: skip
        finally:
            await sender.aclose()

    query = url.split("?", 1)[1]
    url = url.split("?", 1)[0].rsplit("/events", 1)[0]
    answer = asyncio.run(main())
    payload = answer.payload  # type: ignore[attr-defined]
    assert payload is not None and payload.stream == "sse"
    return envelope.decode(payload.body)


def test_an_event_stream_is_followed_to_its_end(backend: Server) -> None:
    conv = _follow(f"{backend.url}/events?n=4&gap=0.05", StreamLimits())
    assert [f.data for f in conv.frames] == ["0", "1", "2", "3"] and conv.ended == "closed"


def test_an_event_stream_is_cut_at_its_limits(backend: Server) -> None:
    by_count = _follow(f"{backend.url}/events?n=50&gap=0.01", StreamLimits(messages=3))
    assert len(by_count.frames) == 3 and by_count.ended == "limit"
    t0 = time.monotonic()
    by_time = _follow(f"{backend.url}/events?n=100&gap=0.1", StreamLimits(seconds=0.5))
    assert time.monotonic() - t0 < 3 and by_time.ended == "limit" and len(by_time.frames) < 10
    by_bytes = _follow(f"{backend.url}/events?n=50&gap=0.01", StreamLimits(), max_body=20)
    assert by_bytes.ended == "limit" and len(by_bytes.frames) <= 3
