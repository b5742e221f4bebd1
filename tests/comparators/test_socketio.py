"""Engine.IO / Socket.IO frame decoding: tables of frames as servers send them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from comparators_strategies import json_values
from hypothesis import given
from hypothesis import strategies as st

from comparators import is_socketio
from comparators.socketio import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    CLOSE,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
    MESSAGE,
    NOOP,
    OPEN,
    PING,
    PONG,
    UPGRADE,
    Packet,
    connect_data,
    decode,
    fill_placeholders,
    message_path,
    message_value,
)

_HANDSHAKE = '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000}'
_PH0 = {"_placeholder": True, "num": 0}
_PH1 = {"_placeholder": True, "num": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Engine.IO transport packets: noise.
        ("0" + _HANDSHAKE, Packet(OPEN, data=orjson.loads(_HANDSHAKE))),
        ("1", Packet(CLOSE)),
        ("2", Packet(PING)),
        ("3", Packet(PONG)),
        ("2probe", Packet(PING, data="probe")),
        ("3probe", Packet(PONG, data="probe")),
        ("5", Packet(UPGRADE)),
        ("6", Packet(NOOP)),
        ("bAQID", Packet(MESSAGE, binary=b"\x01\x02\x03")),
        # Socket.IO packets.
        ("40", Packet(MESSAGE, CONNECT)),
        ('40{"sid":"abc"}', Packet(MESSAGE, CONNECT, data={"sid": "abc"})),
        ('40/admin,{"sid":"x"}', Packet(MESSAGE, CONNECT, "/admin", data={"sid": "x"})),
        ("40/admin?token=1,", Packet(MESSAGE, CONNECT, "/admin")),
        ("41", Packet(MESSAGE, DISCONNECT)),
        ("41/admin,", Packet(MESSAGE, DISCONNECT, "/admin")),
        ('42["hello",1,{"a":2}]', Packet(MESSAGE, EVENT, event="hello", args=(1, {"a": 2}))),
        ('42["hello"]', Packet(MESSAGE, EVENT, event="hello")),
        ('42/admin,["tick",1]', Packet(MESSAGE, EVENT, "/admin", event="tick", args=(1,))),
        ('4212["hello"]', Packet(MESSAGE, EVENT, ack=12, event="hello")),
        ('42/admin,13["x",true]', Packet(MESSAGE, EVENT, "/admin", 13, "x", (True,))),
        ('4312[{"ok":true}]', Packet(MESSAGE, ACK, ack=12, args=({"ok": True},))),
        ("43/admin,1[]", Packet(MESSAGE, ACK, "/admin", 1)),
        (
            '44{"message":"Not authorized"}',
            Packet(MESSAGE, CONNECT_ERROR, data={"message": "Not authorized"}),
        ),
        (
            '451-["upload",{"_placeholder":true,"num":0}]',
            Packet(MESSAGE, BINARY_EVENT, event="upload", args=(_PH0,), attachments=1),
        ),
        (
            '462-/admin,7[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            Packet(MESSAGE, BINARY_ACK, "/admin", 7, args=(_PH0, _PH1), attachments=2),
        ),
    ],
)
def test_decode(raw: str, expected: Packet) -> None:
    packet = decode(raw)
    assert packet == Packet(**{**_fields(expected), "raw": raw})
    assert not packet.malformed


def _fields(packet: Packet) -> dict[str, Any]:
    return {name: getattr(packet, name) for name in Packet.__slots__}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty frame"),
        ("7", "unknown Engine.IO packet type"),
        ("x42", "unknown Engine.IO packet type"),
        ("4", "unknown Socket.IO packet type"),
        ("49", "unknown Socket.IO packet type"),
        ('42{"a":1}', "event without a name"),
        ("42[1,2]", "event without a name"),
        ("42[]", "event without a name"),
        ('42["a"', "payload is not JSON"),
        ("42hello", "payload is not JSON"),
        ('43["x"]', "ack without an id"),
        ('4312{"a":1}', "ack without an id"),
        ('45["x"]', "binary packet without its attachment count"),
        ("b!!", "bad base64"),
    ],
)
def test_malformed_frames_are_marked_not_raised(raw: str, why: str) -> None:
    packet = decode(raw)
    assert packet.malformed.startswith(why)
    assert packet.raw == raw
    assert not packet.noise


@pytest.mark.parametrize(
    ("raw", "noise"),
    [
        *[("0{}", True), ("2", True), ("3probe", True), ("5", True), ("6", True)],
        *[("1", False), ("40", False), ('42["a"]', False), ("8", False)],
    ],
)
def test_noise(raw: str, noise: bool) -> None:
    assert decode(raw).noise is noise


@given(st.text(max_size=40))
def test_decode_never_raises(text: str) -> None:
    packet = decode(text)
    assert packet.raw == text
    assert packet.engine is not None or packet.malformed


_names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8)
_namespaces = st.sampled_from(["/", "/admin", "/chat-room"])


@given(_namespaces, st.none() | st.integers(0, 10**6), _names, st.lists(json_values, max_size=3))
def test_events_round_trip(namespace: str, ack: int | None, name: str, args: list[Any]) -> None:
    ns = "" if namespace == "/" else namespace + ","
    raw = f"42{ns}{'' if ack is None else ack}" + orjson.dumps([name, *args]).decode()
    packet = decode(raw)
    assert (packet.namespace, packet.ack, packet.event) == (namespace, ack, name)
    assert list(packet.args) == args


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/socket.io/", "EIO=4&transport=websocket", True),
        ("/socket.io/?EIO=3&transport=websocket", "", True),
        ("/ws", "?EIO=4", True),
        ("/ws", {"EIO": "4", "transport": "websocket"}, True),
        ("/ws", [("EIO", "4")], True),
        ("/ws", "", False),
        ("/socket.io/", "transport=websocket", False),
        ("/ws", [("token", "x")], False),
        ("/ws", "eio=4", False),
    ],
)
def test_is_socketio(path: str, query: Any, expected: bool) -> None:
    assert is_socketio(path, query) is expected


def test_fill_placeholders() -> None:
    value = [{"file": _PH0, "more": [_PH1, {"_placeholder": True, "num": 5}]}, "x"]
    assert fill_placeholders(value, ["A", "B"]) == [
        {"file": "A", "more": ["B", {"_placeholder": True, "num": 5}]},
        "x",
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sid": "abc"}, None),
        ({"sid": "abc", "pid": "p1"}, None),
        ({"sid": "abc", "role": "admin"}, {"role": "admin"}),
        (None, None),
        ("text", "text"),
    ],
)
def test_connect_data_drops_the_session_ids(data: Any, expected: Any) -> None:
    assert connect_data(data) == expected


@pytest.mark.parametrize(
    ("raw", "path", "value"),
    [
        ('42["progress",{"progress":50}]', ("$ws.event[progress]", True), {"progress": 50}),
        ('42["progress",1,2]', ("$ws.event[progress]", True), [1, 2]),
        ('42["ping"]', ("$ws.event[ping]", True), []),
        ('42/admin,["progress",1]', ("$ws.event[/admin:progress]", True), 1),
        ('42["my event",1]', ('$ws.event["my event"]', True), 1),
        ('42["123",1]', ('$ws.event["123"]', True), 1),
        ('42["a=b",1]', ('$ws.event["a=b"]', True), 1),
        ('4312[{"ok":true}]', ("$ws.ack[12]", False), {"ok": True}),
        ("43/admin,12[1,2]", ("$ws.ack[/admin][12]", False), [1, 2]),
        ('40{"sid":"x"}', ("$ws.connect", True), None),
        ('40/admin,{"sid":"x","v":1}', ("$ws.connect[/admin]", True), {"v": 1}),
        ('44{"message":"no"}', ("$ws.connect_error", True), {"message": "no"}),
        ("41/admin,", ("$ws.disconnect[/admin]", True), None),
        ("1", ("$ws.eio_close", True), None),
        ("2", ("", False), None),
        ("42{", ("", False), None),
    ],
)
def test_message_path_and_value(raw: str, path: tuple[str, bool], value: Any) -> None:
    packet = decode(raw)
    assert message_path(packet) == path
    assert message_value(packet) == value


def test_message_value_fills_attachments() -> None:
    packet = decode('451-["upload",{"name":"a.png","data":{"_placeholder":true,"num":0}}]')
    digest = {"length": 3, "sha256": "abc"}
    assert message_value(packet, [digest]) == {"name": "a.png", "data": digest}
