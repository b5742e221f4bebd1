"""The addon's copies of real-time answers: WebSocket conversations and event streams."""

from __future__ import annotations

import hashlib
import queue
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import websocket
from mitmproxy.test import tflow
from wsproto.frame_protocol import Opcode

from shadow.live.addon import Shadow
from shadow.live.streams import StreamTap, TalkTap
from shadow.pipeline.sender import StreamLimits

with warnings.catch_warnings():
    # mitmproxy.master imports ldap3 and passlib, which warn at import (see test_addon.py).
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.test import taddons

Message = tuple[Any, ...]


@pytest.fixture
def shadow(tmp_path: Path) -> Iterator[Shadow]:
    addon = Shadow()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon,
            shadow_candidate="http://127.0.0.1:9",
            shadow_db=str(tmp_path / "x.duckdb"),
            shadow_stream_messages=4,
        )
        addon.queue = queue.Queue(maxsize=100)
        addon.dropped = type("D", (), {"value": 0})()
        addon._launched = True  # as after `running`, without the worker process
        yield addon


def drain(q: queue.Queue[Any]) -> list[Message]:
    out: list[Message] = []
    while not q.empty():
        item = q.get_nowait()
        out.extend(item if isinstance(item, list) else [item])
    return out


def ws_flow() -> Any:
    f = tflow.twebsocketflow()
    f.websocket.messages = []
    f.response.timestamp_end = time.time()  # the 101 came now: messages are timed from it
    return f


def relay(shadow: Shadow, f: Any, from_client: bool, content: bytes, text: bool = True) -> None:
    kind = Opcode.TEXT if text else Opcode.BINARY
    f.websocket.messages.append(websocket.WebSocketMessage(kind, from_client, content))
    shadow.websocket_message(f)


def test_a_conversation_goes_to_the_worker_message_by_message(shadow: Shadow) -> None:
    f = ws_flow()
    shadow.request(f)
    shadow.response(f)  # the 101: a conversation follows
    relay(shadow, f, True, b"subscribe")
    relay(shadow, f, False, b'{"progress": 1}')
    relay(shadow, f, False, b"\x00\x01", text=False)
    f.websocket.close_code, f.websocket.closed_by_client = 1000, True
    f.websocket.timestamp_end = time.time()
    shadow.websocket_end(f)
    messages = drain(shadow.queue)
    assert [m[0] for m in messages] == ["req", "wsopen", "ws", "ws", "ws", "wsend"]
    assert messages[1][2].payload.status == 101
    assert [m[2:5] for m in messages[2:5]] == [
        (True, True, b"subscribe"),
        (False, True, b'{"progress": 1}'),
        (False, False, b"\x00\x01"),
    ]
    assert messages[5][2:6] == (1000, "", "client", "closed")


def test_a_lost_connection_ends_as_an_error(shadow: Shadow) -> None:
    f = ws_flow()
    shadow.request(f)
    shadow.response(f)
    f.websocket.close_code, f.websocket.closed_by_client = 1006, False
    shadow.websocket_end(f)
    assert drain(shadow.queue)[-1][2:6] == (1006, "", "server", "error")


def test_past_the_message_cap_the_copy_ends_and_the_rest_is_not_copied(shadow: Shadow) -> None:
    f = ws_flow()
    shadow.request(f)
    shadow.response(f)
    for i in range(10):
        relay(shadow, f, i % 2 == 0, f"m{i}".encode())
    shadow.websocket_end(f)
    kinds = [m[0] for m in drain(shadow.queue)]
    assert kinds == ["req", "wsopen", "ws", "ws", "ws", "ws", "wsend"]  # 4 messages, one end


def test_an_upgrade_the_primary_refused_is_an_http_answer(shadow: Shadow) -> None:
    f = tflow.twebsocketflow()
    f.websocket = None
    f.response.status_code = 403
    shadow.request(f)
    shadow.response(f)
    assert [m[0] for m in drain(shadow.queue)] == ["req", "resp"]


def test_talk_tap_limits() -> None:
    put: list[Message] = []
    limits = StreamLimits(messages=100, seconds=10.0, message_bytes=10)
    tap = TalkTap("k", t0=1000.0, limits=limits, put=put.append)
    tap.message(False, True, b"12345678", 1000.1)  # 8 of 10 bytes
    tap.message(False, True, b"abcdef", 1000.2)  # 2 bytes of room left: cut, with its digest
    assert put[1] == (
        "ws",
        "k",
        False,
        True,
        b"ab",
        1000.2,
        6,
        hashlib.sha256(b"abcdef").hexdigest(),
    )
    tap.message(True, True, b"x" * 11, 1000.3)  # a client's message must go whole: the end
    assert put[-1] == ("wsend", "k", None, "", "", "limit", 1000.3)
    tap.message(True, True, b"y", 1000.4)
    tap.end(1000, "", "client", "closed", 1000.5)
    assert len(put) == 3  # nothing after the end


def test_talk_tap_time_limit() -> None:
    put: list[Message] = []
    tap = TalkTap("k", t0=0.0, limits=StreamLimits(seconds=1.0), put=put.append)
    tap.message(True, True, b"a", 0.5)
    tap.message(True, True, b"b", 1.5)
    assert [m[0] for m in put] == ["ws", "wsend"] and put[-1][5] == "limit"


def test_stream_tap_keeps_a_bounded_copy_and_stops_at_its_limits() -> None:
    done: list[tuple[bytes, str]] = []
    tap = StreamTap(
        StreamLimits(messages=2), max_body=1000, done=lambda b, e, *_: done.append((b, e))
    )
    assert tap(b"data: 1\n\n") == b"data: 1\n\n"
    assert tap(b"data: 2\n\ndata: 3\n\n") == b"data: 2\n\ndata: 3\n\n"  # passed on regardless
    assert done == [(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", "limit")]
    assert tap(b"data: 4\n\n") == b"data: 4\n\n" and tap(b"") == b""
    assert len(done) == 1  # handed on once

    small: list[tuple[bytes, str]] = []
    tap = StreamTap(StreamLimits(), 5, lambda b, e, *_: small.append((b, e)))
    tap(b"data: long\n\n")
    assert small == [(b"data:", "limit")]

    late: list[tuple[bytes, str]] = []
    tap = StreamTap(
        StreamLimits(seconds=0.01), max_body=100, done=lambda b, e, *_: late.append((b, e))
    )
    time.sleep(0.02)
    tap(b"data: 1\n\n")  # no event loop here: the time is checked per chunk
    assert late == [(b"data: 1\n\n", "limit")]


@pytest.mark.parametrize(("history", "left"), [(-1, 6), (0, 1), (2, 3)])
def test_websocket_history_bounds_what_mitmproxy_keeps(
    shadow: Shadow, history: int, left: int
) -> None:
    shadow._ws_history = history
    f = ws_flow()
    shadow.request(f)
    shadow.response(f)
    for i in range(6):
        relay(shadow, f, True, f"m{i}".encode())
    assert len(f.websocket.messages) == left
    assert f.websocket.messages[-1].content == b"m5"  # the one being relayed stays
