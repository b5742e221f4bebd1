"""WebSocket conversations in traffic files: mitmproxy dumps, Chrome HARs, our writers."""

from __future__ import annotations

import base64
import io
import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.io import FlowReader, FlowWriter
from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketData, WebSocketMessage
from wsproto.frame_protocol import Opcode

from comparators import envelope
from comparators.envelope import Conversation, Frame
from comparators.model import Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources import (
    HarWriter,
    JsonlWriter,
    MitmWriter,
    Recorded,
    _websocket,
    har,
    jsonl,
    mitm,
    read_traffic,
)
from shadow.sources._base import BadEntry

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, whose pyasn1 use warns at import time (not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons.savehar import SaveHar

LIMIT = 1 << 20


def conversation(recorded: Recorded) -> Conversation:
    assert recorded.response is not None
    assert recorded.response.status == 101
    assert recorded.response.stream == "websocket"
    return envelope.decode(recorded.response.body)


def assert_same(got: Conversation, want: Conversation) -> None:
    """Equal conversations, times within 2 µs (a unix time as a float is good to ~0.2 µs)."""
    assert [replace(f, t_ms=0.0) for f in got.frames] == [replace(f, t_ms=0.0) for f in want.frames]
    assert [f.t_ms for f in got.frames] == pytest.approx([f.t_ms for f in want.frames], abs=0.002)
    assert replace(got, frames=()) == replace(want, frames=())


def write_flows(path: Path, *flows: http.HTTPFlow) -> Path:
    buf = io.BytesIO()
    writer = FlowWriter(buf)
    for flow in flows:
        writer.add(flow)
    path.write_bytes(buf.getvalue())
    return path


# -- mitmproxy dumps ------------------------------------------------------------------


def test_mitmproxy_websocket_flow(tmp_path: Path) -> None:
    path = write_flows(tmp_path / "ws.mitm", tflow.tflow(resp=True), tflow.twebsocketflow())
    plain, ws = read_traffic(str(path))
    assert plain.response is not None and plain.response.stream == ""
    assert ws.index == 1
    assert ws.request.method == "GET" and ws.request.path == "/ws"
    assert ws.request.header("upgrade") == "websocket"
    assert ws.request.header("sec-websocket-key") == "1234"
    assert ws.url == "http://example.com/ws"
    assert ws.response is not None
    assert ws.response.header("sec-websocket-accept") == ""
    conv = conversation(ws)
    # messages at 946681203/4/5, the 101 ended at 946681203
    assert [(f.side, f.kind, f.t_ms) for f in conv.frames] == [
        ("client", "binary", 0.0),
        ("client", "text", 1000.0),
        ("server", "text", 2000.0),
    ]
    assert conv.frames[0].raw == b"hello binary"
    assert [f.data for f in conv.frames[1:]] == ["hello text", "it's me"]
    assert (conv.close_code, conv.closed_by, conv.ended, conv.dropped) == (
        1000,
        "server",
        "closed",
        0,
    )


def test_mitmproxy_broken_connection_and_dropped_message(tmp_path: Path) -> None:
    broken = tflow.twebsocketflow(err=True)  # close code 1006: the connection broke
    by_hand = tflow.twebsocketflow()
    assert by_hand.response is not None
    by_hand.response.timestamp_end = None  # then the first message is the start
    by_hand.websocket = WebSocketData(
        [
            WebSocketMessage(Opcode.TEXT, True, b"hi", 100.0),
            WebSocketMessage(Opcode.TEXT, True, b"blocked", 100.25, dropped=True),
            WebSocketMessage(Opcode.BINARY, False, b"\xff\x00", 100.5),
        ],
        closed_by_client=True,
        close_code=1000,
        close_reason="bye",
        timestamp_end=101.0,
    )
    path = write_flows(tmp_path / "ws.mitm", broken, by_hand)
    first, second = (conversation(r) for r in read_traffic(str(path)))
    assert (first.close_code, first.ended, first.closed_by) == (1006, "error", "server")
    assert [(f.side, f.t_ms, f.sent) for f in second.frames] == [
        ("client", 0.0, True),
        ("client", 250.0, False),
        ("server", 500.0, True),
    ]
    assert (second.close_code, second.close_reason, second.closed_by, second.ended) == (
        1000,
        "bye",
        "client",
        "closed",
    )


def test_a_conversation_keeps_100000_messages_and_counts_the_rest(tmp_path: Path) -> None:
    flow = tflow.twebsocketflow()
    assert flow.websocket is not None
    flow.websocket.messages = [
        WebSocketMessage(Opcode.TEXT, i % 2 == 0, b"%d" % i, 946681203 + i / 1000)
        for i in range(200_000)
    ]
    path = write_flows(tmp_path / "many.mitm", flow)
    [rec] = read_traffic(str(path))
    conv = conversation(rec)
    assert len(conv.frames) == 100_000
    assert conv.dropped == 100_000
    assert conv.frames[-1].data == "99999"
    assert conv.frames[-1].t_ms == pytest.approx(99_999.0, abs=0.001)


@pytest.mark.parametrize(
    ("meta", "reason"),
    [
        ({"ended": "exploded"}, "ended 'exploded': not one of closed, limit, error"),
        ({"closed_by": 1}, "closed by 1: not client, server or shadow"),
        ({"cut": 5}, "cut 5 is not a list"),
        ({"cut": [[0, 10]]}, "cut [0, 10] is not [index, size, sha256]"),
        ({"cut": [[0, 10, "xyz"]]}, "message 0 sha256 'xyz' is not a hex SHA-256"),
        ("everything", "is not a dict"),
    ],
)
def test_bad_shadow_metadata_is_a_bad_entry(tmp_path: Path, meta: Any, reason: str) -> None:
    flow = tflow.twebsocketflow()
    flow.metadata[_websocket.META] = meta
    path = write_flows(tmp_path / "bad.mitm", flow, tflow.tflow(resp=True))
    items = list(mitm.read(str(path)))
    assert isinstance(items[0], BadEntry) and items[0].index == 0
    assert items[0].reason.startswith("metadata shadow-websocket")
    assert reason in items[0].reason
    assert isinstance(items[1], Recorded)


# -- HAR: Chrome's _webSocketMessages ----------------------------------------------------

STARTED = 1715678493.25  # 2024-05-14T09:21:33.250Z
OPENED = STARTED + 0.0305  # plus the timings: blocked 2.5 + wait 28 ms


def chrome_entry(messages: Any, **extra: Any) -> dict[str, Any]:
    return {
        "startedDateTime": "2024-05-14T09:21:33.250Z",
        "time": 30.5,
        "_resourceType": "websocket",
        "request": {
            "method": "GET",
            "url": "wss://chat.example.com/socket?room=1",
            "httpVersion": "HTTP/1.1",
            "headers": [
                {"name": "Upgrade", "value": "websocket"},
                {"name": "Connection", "value": "Upgrade"},
                {"name": "Sec-WebSocket-Key", "value": "dGhlIHNhbXBsZSBub25jZQ=="},
                {"name": "Sec-WebSocket-Version", "value": "13"},
            ],
            "queryString": [{"name": "room", "value": "1"}],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": 101,
            "statusText": "Switching Protocols",
            "httpVersion": "HTTP/1.1",
            "headers": [
                {"name": "Upgrade", "value": "websocket"},
                {"name": "Sec-WebSocket-Accept", "value": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
            ],
            "cookies": [],
            "content": {"size": 0, "mimeType": "x-unknown"},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": {
            "blocked": 2.5,
            "dns": -1,
            "ssl": -1,
            "connect": -1,
            "send": 0,
            "wait": 28,
            "receive": 0,
            "_blocked_queueing": 1.5,
        },
        "_webSocketMessages": messages,
        **extra,
    }


CHROME_MESSAGES = [
    {"type": "send", "time": OPENED + 0.0105, "opcode": 1, "data": '{"op":"subscribe"}'},
    {"type": "receive", "time": OPENED + 0.042, "opcode": 1, "data": '{"ok":true,"n":"é"}'},
    {"type": "receive", "time": OPENED + 0.5, "opcode": 2, "data": "AP8="},  # 00 ff
    {"type": "receive", "time": OPENED + 0.6, "opcode": 9, "data": ""},  # ping: no message
    {"type": "send", "time": OPENED + 1.25, "opcode": 8, "data": ""},  # the client closed
]  # fmt: skip


def write_har(path: Path, *entries: Any) -> Path:
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": list(entries)}}))
    return path


def test_chrome_websocket_entry(tmp_path: Path) -> None:
    path = write_har(tmp_path / "chrome.har", chrome_entry(CHROME_MESSAGES))
    [rec] = read_traffic(str(path))
    assert rec.url == "https://chat.example.com/socket?room=1"
    assert (rec.request.method, rec.request.path, rec.request.query) == ("GET", "/socket", "room=1")
    assert rec.request.header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
    assert rec.started_at == STARTED and rec.elapsed_ms == 30.5
    assert rec.response is not None
    assert rec.response.headers == (
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    )
    conv = conversation(rec)
    assert [(f.side, f.kind) for f in conv.frames] == [
        ("client", "text"),
        ("server", "text"),
        ("server", "binary"),
    ]
    assert [f.t_ms for f in conv.frames] == pytest.approx([10.5, 42.0, 500.0], abs=0.001)
    assert conv.frames[0].data == '{"op":"subscribe"}'
    assert conv.frames[1].data == '{"ok":true,"n":"é"}'
    assert conv.frames[2].raw == b"\x00\xff"
    assert (conv.close_code, conv.closed_by, conv.ended) == (None, "client", "closed")


def test_chrome_error_message_and_missing_start(tmp_path: Path) -> None:
    messages = [
        {"type": "receive", "time": 500.25, "opcode": 1, "data": "a"},
        {"type": "error", "time": 501.0, "opcode": -1, "data": "net::ERR_CONNECTION_RESET"},
    ]
    entry = chrome_entry(messages)
    del entry["startedDateTime"]
    [rec] = read_traffic(str(write_har(tmp_path / "e.har", entry)))
    conv = conversation(rec)
    assert [(f.side, f.t_ms) for f in conv.frames] == [("server", 0.0)]
    assert conv.ended == "error"


def test_mitmproxy_har_export_of_a_websocket_flow(tmp_path: Path) -> None:
    path = tmp_path / "savehar.har"
    path.write_text(json.dumps(SaveHar().make_har([tflow.twebsocketflow()])))
    [rec] = read_traffic(str(path))
    conv = conversation(rec)
    # its timings count the connection after the request's start: the first message wins
    assert [(f.side, f.t_ms) for f in conv.frames] == [
        ("client", 0.0),
        ("client", 1000.0),
        ("server", 2000.0),
    ]


def test_refused_upgrade_and_plain_ws_entries(tmp_path: Path) -> None:
    refused = chrome_entry([])
    refused["response"]["status"] = 403
    no_messages = chrome_entry([])
    del no_messages["_webSocketMessages"]  # a ws: entry without messages is no traffic
    path = write_har(tmp_path / "r.har", refused, no_messages)
    [rec] = read_traffic(str(path))
    assert rec.response is not None
    assert (rec.response.status, rec.response.stream, rec.response.body) == (403, "", b"")


def message(**changes: Any) -> list[dict[str, Any]]:
    """One text message sent, with `changes`."""
    return [{"type": "send", "time": 1.0, "opcode": 1, "data": "x", **changes}]


@pytest.mark.parametrize(
    ("messages", "extra", "reason"),
    [
        ("nope", {}, "_webSocketMessages is not a list"),
        (["x"], {}, "_webSocketMessages[0] is not an object"),
        (message(time=None), {}, "_webSocketMessages[0].time None is not a number"),
        (message(type="ping"), {}, "_webSocketMessages[0].type 'ping' is not send, receive"),
        (message(opcode=3), {}, "_webSocketMessages[0].opcode 3 is not 1 (text) or 2"),
        (message(data=5), {}, "_webSocketMessages[0].data is not a string"),
        (message(opcode=2, data="*?*"), {}, "_webSocketMessages[0].data is not valid base64"),
        (message(_size=3), {}, "_webSocketMessages[0] sha256 None is not a hex SHA-256"),
        ([], {"_webSocketEnd": {"closedBy": "moon"}}, "_webSocketEnd: closed by 'moon'"),
        ([], {"_webSocketEnd": []}, "_webSocketEnd is not an object"),
        (
            [],
            {"_webSocketEnd": {"closeCode": 10**30, "closedBy": "client", "ended": "closed"}},
            "_webSocketEnd: close code 1000000000000000000000000000000 is not a WebSocket close",
        ),
        (
            [*message(time=1e308), *message(time=-1e308)],
            {},
            "_webSocketMessages: time",
        ),
    ],
)
def test_malformed_websocket_messages_are_bad_entries(
    tmp_path: Path, messages: Any, extra: dict[str, Any], reason: str
) -> None:
    good = chrome_entry(CHROME_MESSAGES)
    path = write_har(tmp_path / "bad.har", chrome_entry(messages, **extra), good)
    items = list(har.read(str(path)))
    assert isinstance(items[0], BadEntry) and items[0].index == 0
    assert items[0].reason.startswith(reason)
    assert "\n" not in items[0].message(str(path))
    assert isinstance(items[1], Recorded)
    with pytest.raises(InputError, match=r"bad\.har: entry 0: _webSocket"):
        list(read_traffic(str(path)))


def test_har_keeps_100000_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_websocket, "MAX_MESSAGES", 2)
    [rec] = read_traffic(str(write_har(tmp_path / "many.har", chrome_entry(CHROME_MESSAGES))))
    conv = conversation(rec)
    assert len(conv.frames) == 2 and conv.dropped == 3  # the ping and close count too


# -- JSON Lines ---------------------------------------------------------------------------


def jsonl_line(websocket: Any, response: Any = None) -> dict[str, Any]:
    return {
        "method": "GET",
        "url": "http://api.example/ws",
        "headers": [["upgrade", "websocket"]],
        "response": {"status": 101, "headers": [["upgrade", "websocket"]]}
        if response is None
        else response,
        "websocket": websocket,
    }


def write_jsonl(path: Path, *lines: Any) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_jsonl_websocket_field(tmp_path: Path) -> None:
    ws = {
        "frames": [
            {"side": "client", "t_ms": 0, "text": "hi"},
            {"side": "server", "t_ms": 12.5, "base64": "AAE="},
            {"side": "server", "t_ms": 20, "text": "abc", "size": 9, "sha256": "ab" * 32},
            {"side": "client", "t_ms": 30, "text": "late", "sent": False},
        ],
        "close_code": 1000,
        "closed_by": "server",
    }
    [rec] = read_traffic(str(write_jsonl(tmp_path / "ws.jsonl", jsonl_line(ws))))
    conv = conversation(rec)
    assert conv.frames == (
        Frame("client", 0.0, "text", "hi", 2),
        Frame("server", 12.5, "binary", "AAE=", 2),
        Frame("server", 20.0, "text", "abc", 9, cut=True, sha256="ab" * 32),
        Frame("client", 30.0, "text", "late", 4, sent=False),
    )
    assert (conv.close_code, conv.close_reason, conv.closed_by, conv.ended) == (
        1000,
        "",
        "server",
        "closed",
    )


def frames(**changes: Any) -> dict[str, Any]:
    """The "websocket" field of one text frame from the client, with `changes`."""
    return {"frames": [{"side": "client", "t_ms": 0, "text": "", **changes}]}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (jsonl_line({}, response={"status": 200}), "websocket needs a response with status 101"),
        ({**jsonl_line({}), "response": None}, "websocket needs a response with status 101"),
        (jsonl_line([]), "websocket is not an object"),
        (jsonl_line({"frames": {}}), "websocket.frames is not a list"),
        (jsonl_line(frames(side="proxy")), "websocket.frames[0].side 'proxy' is not client or"),
        (jsonl_line(frames(t_ms=-1)), "websocket.frames[0].t_ms -1 is not a time within"),
        (jsonl_line(frames(t_ms=1e300)), "websocket.frames[0].t_ms 1e+300 is not a time"),
        (jsonl_line(frames(t_ms="0")), "websocket.frames[0].t_ms '0' is not a number"),
        (jsonl_line(frames(base64="")), "websocket.frames[0] needs one of text or base64"),
        (jsonl_line(frames(size=3)), "websocket.frames[0] sha256 None is not a hex SHA-256"),
        (jsonl_line(frames(sent="no")), "websocket.frames[0].sent is not true or false"),
        (jsonl_line({"frames": [], "ended": "done"}), "websocket: ended 'done': not one of"),
        (jsonl_line({"frames": [], "dropped": -1}), "websocket: dropped -1 is not a count"),
    ],
)
def test_malformed_jsonl_websocket(tmp_path: Path, line: Any, reason: str) -> None:
    items = list(jsonl.read(str(write_jsonl(tmp_path / "bad.jsonl", line))))
    assert len(items) == 1 and isinstance(items[0], BadEntry)
    assert items[0].reason.startswith(reason)


# -- our writers, read back ------------------------------------------------------------------

HANDSHAKE = Request(
    "GET",
    "/live",
    "room=7",
    (("Host", "api.example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
     ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")),
)  # fmt: skip
SWITCHED = (("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "x"))
FRAMES = (
    envelope.frame("client", 0.0, b'{"op": "sub"}', True, LIMIT),
    envelope.frame("server", 12.345, b"\x00\x01\xff", False, LIMIT),
    envelope.frame("server", 250.5, "héllo ✓".encode(), True, LIMIT),
    envelope.frame("server", 1000.001, b"0123456789" * 10, True, 10),  # cut: 100 bytes, 10 kept
    envelope.frame("server", 1000.5, b"\xff\xfe" * 8, False, 4),  # cut binary
    replace(envelope.frame("client", 1500.0, b"late", True, LIMIT), sent=False),
)
ENDINGS = [
    Conversation("websocket", FRAMES, 1001, "going away", "server", "closed", 3),
    Conversation("websocket", FRAMES[:2], 1000, "", "client", "closed"),
    Conversation("websocket", FRAMES, None, "", "", "error"),
    Conversation("websocket", (), 1006, "", "server", "error"),
    Conversation("websocket", FRAMES[2:], 1000, "", "shadow", "limit", 12),
]
WRITERS = {"har": HarWriter, "jsonl": JsonlWriter, "mitm": MitmWriter}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@pytest.mark.parametrize("conv", ENDINGS, ids=range(len(ENDINGS)))
def test_round_trip(tmp_path: Path, fmt: str, conv: Conversation) -> None:
    path = tmp_path / f"out.{fmt}"
    answer = Payload(101, SWITCHED, envelope.encode(conv), stream="websocket")
    plain = Payload(200, (("Content-Type", "text/plain"),), b"ok")
    url = "https://api.example.com/live?room=7"
    with WRITERS[fmt](str(path)) as writer:
        writer.add(HANDSHAKE, answer, 1715678493.123456, 3.25, url)
        writer.add(Request("GET", "/ok"), plain, 1715678494.0, 1.0, "http://api.example.com/ok")
    ws, ok = read_traffic(str(path))
    assert (ws.request, ws.url, ws.started_at) == (HANDSHAKE, url, 1715678493.123456)
    assert ws.elapsed_ms == pytest.approx(3.25, abs=0.001)  # mitmproxy: from two unix times
    assert ws.response is not None and ws.response.headers == SWITCHED
    assert_same(conversation(ws), conv)
    assert ok.response == plain


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_a_copy_without_stream_still_writes_as_a_conversation(tmp_path: Path, fmt: str) -> None:
    # A redacting recorder rebuilds the Payload from status, headers and body only
    path = tmp_path / f"out.{fmt}"
    conv = ENDINGS[0]
    with WRITERS[fmt](str(path)) as writer:
        writer.add(HANDSHAKE, Payload(101, SWITCHED, envelope.encode(conv)), 1715678493.5, 2.0,
                   "http://api.example.com/live?room=7")  # fmt: skip
    [rec] = read_traffic(str(path))
    assert_same(conversation(rec), conv)


def test_what_the_writers_write(tmp_path: Path) -> None:
    conv = ENDINGS[0]
    answer = Payload(101, SWITCHED, envelope.encode(conv), stream="websocket")
    url = "http://api.example.com/live?room=7"
    for fmt, cls in WRITERS.items():
        with cls(str(tmp_path / f"out.{fmt}")) as writer:
            writer.add(HANDSHAKE, answer, 1715678493.5, 2.0, url)

    entry = json.loads((tmp_path / "out.har").read_text())["log"]["entries"][0]
    assert entry["response"]["status"] == 101 and "text" not in entry["response"]["content"]
    messages = entry["_webSocketMessages"]
    assert messages[0] == {
        "type": "send",
        "time": pytest.approx(1715678493.502, abs=1e-6),  # unix seconds: from the 101's end
        "opcode": 1,
        "data": '{"op": "sub"}',
    }
    assert messages[1]["opcode"] == 2 and base64.b64decode(messages[1]["data"]) == b"\x00\x01\xff"
    assert messages[3]["_size"] == 100 and messages[5]["_sent"] is False
    assert entry["_webSocketEnd"] == {"ended": "closed", "closedBy": "server", "closeCode": 1001,
                                      "closeReason": "going away", "dropped": 3}  # fmt: skip

    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["response"] == {"status": 101, "headers": [list(h) for h in SWITCHED]}
    assert line["websocket"]["frames"][:2] == [
        {"side": "client", "t_ms": 0.0, "text": '{"op": "sub"}'},
        {"side": "server", "t_ms": 12.345, "base64": "AAH/"},
    ]

    # mitmproxy reads our dump as a WebSocket flow of its own
    with open(tmp_path / "out.mitm", "rb") as fh:
        [flow] = FlowReader(fh).stream()
    assert isinstance(flow, http.HTTPFlow) and flow.websocket is not None
    assert flow.response is not None and flow.response.status_code == 101
    first = flow.websocket.messages[0]
    assert (first.from_client, first.is_text, first.content) == (True, True, b'{"op": "sub"}')
    assert first.timestamp == pytest.approx(1715678493.502)
    assert flow.websocket.messages[5].dropped
    assert (flow.websocket.close_code, flow.websocket.closed_by_client) == (1001, False)
