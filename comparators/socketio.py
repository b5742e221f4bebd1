"""Engine.IO / Socket.IO text frames decoded into packets, without ever raising.

A Socket.IO conversation over a WebSocket is a stream of Engine.IO packets
(https://socket.io/docs/v4/engine-io-protocol/): one type digit (0 open, 1 close,
2 ping, 3 pong, 4 message, 5 upgrade, 6 noop; `2probe`/`3probe` during an upgrade)
then its data. The data of a message (4) is a Socket.IO packet
(https://socket.io/docs/v4/socket-io-protocol/):

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]

with types 0 CONNECT, 1 DISCONNECT, 2 EVENT, 3 ACK, 4 CONNECT_ERROR, 5 BINARY_EVENT,
6 BINARY_ACK. Engine.IO v3 / Socket.IO v4 (the protocol numbers) frame a WebSocket
the same way, so one decoder reads both. The binary attachments of a BINARY_EVENT
or BINARY_ACK follow as binary frames; their places in the payload are
`{"_placeholder": true, "num": k}` (`fill_placeholders` puts them back).

`decode` never raises: a frame it cannot read is a `Packet` whose `malformed` says
why, so a broken frame becomes a difference, not an exception.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

# Engine.IO packet types.
OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = range(7)
# Socket.IO packet types (inside an Engine.IO MESSAGE).
CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)
ENGINE_NAMES = ("open", "close", "ping", "pong", "message", "upgrade", "noop")
PACKET_NAMES = (
    "CONNECT",
    "DISCONNECT",
    "EVENT",
    "ACK",
    "CONNECT_ERROR",
    "BINARY_EVENT",
    "BINARY_ACK",
)
# Transport chatter: the handshake (sid, pingInterval, ...), heartbeats, the upgrade.
NOISE = frozenset({OPEN, PING, PONG, UPGRADE, NOOP})
# Keys of a CONNECT answer that name the session, different on every connection.
SESSION_KEYS = frozenset({"sid", "pid"})

_ATTACHMENTS = re.compile(r"(\d{1,10})-")
_ACK_ID = re.compile(r"\d{1,100}")
# Names printed bare inside a path step; others as JSON strings. No `=` and no leading
# digit, so `cluster_path` never mistakes an event name for an index or a record key.
_BARE = re.compile(r"[A-Za-z_/][\w\-.:/]*\Z")


# Not frozen: one is built per frame, and a frozen dataclass costs four times as much
# to build (every field set through object.__setattr__). Treat it as read-only.
@dataclass(slots=True)
class Packet:
    """One decoded Engine.IO frame (and the Socket.IO packet inside a message).

    `engine` is None when the frame could not be read at all. `type` is the
    Socket.IO packet type of a message (None otherwise). For EVENT and
    BINARY_EVENT `event` is the name and `args` the arguments after it; for ACK
    and BINARY_ACK `args` are the answer's arguments. `data` holds any other
    payload: a CONNECT's or CONNECT_ERROR's object, the handshake of an Engine.IO
    open, the text after a ping or pong ("probe"). `binary` holds the bytes of a
    base64 message (`b...`, Engine.IO's binary message in a text frame).
    """

    engine: int | None
    type: int | None = None
    namespace: str = "/"
    ack: int | None = None
    event: str | None = None
    args: tuple[Any, ...] = ()
    attachments: int = 0
    data: Any = None
    binary: bytes | None = None
    raw: str = ""
    malformed: str = ""  # why the frame could not be decoded; "" when it could

    @property
    def noise(self) -> bool:
        """Transport chatter that is never compared (open, ping, pong, upgrade, noop)."""
        return not self.malformed and self.engine in NOISE


def _bad(raw: str, why: str, engine: int | None = None) -> Packet:
    return Packet(engine, raw=raw, malformed=why)


def decode(text: str) -> Packet:
    """The packet of one text frame; a frame that does not decode is marked `malformed`."""
    if not text:
        return _bad(text, "empty frame")
    head = text[0]
    if head == "b":
        # A binary message carried as base64 text (no type digit in v4; v3 puts the
        # type digit first, which is part of the text compared either way).
        try:
            data = base64.b64decode(text[1:], validate=True)
        except (binascii.Error, ValueError):
            return _bad(text, "bad base64 in a binary message")
        return Packet(MESSAGE, binary=data, raw=text)
    if head not in "0123456":
        return _bad(text, f"unknown Engine.IO packet type {head!r}")
    engine = int(head)
    rest = text[1:]
    if engine == OPEN:
        try:
            return Packet(OPEN, data=orjson.loads(rest) if rest else None, raw=text)
        except orjson.JSONDecodeError:
            return Packet(OPEN, data=rest, raw=text)  # noise either way
    if engine != MESSAGE:
        return Packet(engine, data=rest or None, raw=text)
    return _socketio(rest, text)


def _socketio(text: str, raw: str) -> Packet:
    """The Socket.IO packet inside an Engine.IO message."""
    if not text or text[0] not in "0123456":
        return _bad(raw, "unknown Socket.IO packet type", MESSAGE)
    ptype, pos = int(text[0]), 1
    attachments = 0
    if ptype in (BINARY_EVENT, BINARY_ACK):
        counted = _ATTACHMENTS.match(text, pos)
        if counted is None:
            return _bad(raw, "binary packet without its attachment count", MESSAGE)
        attachments, pos = int(counted.group(1)), counted.end()
    namespace = "/"
    if text.startswith("/", pos):
        comma = text.find(",", pos)
        end = len(text) if comma == -1 else comma
        # A v4 (protocol) CONNECT may carry the query after the namespace: not part of it.
        namespace = text[pos:end].split("?", 1)[0]
        pos = end + 1
    ack = None
    if digits := _ACK_ID.match(text, pos):
        ack, pos = int(digits.group(0)), digits.end()
    body = text[pos:]
    try:
        payload = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return _bad(raw, "payload is not JSON", MESSAGE)
    common: dict[str, Any] = {
        "type": ptype,
        "namespace": namespace,
        "ack": ack,
        "attachments": attachments,
        "raw": raw,
    }
    if ptype in (EVENT, BINARY_EVENT):
        if not (isinstance(payload, list) and payload and isinstance(payload[0], str)):
            return _bad(raw, "event without a name", MESSAGE)
        return Packet(MESSAGE, event=payload[0], args=tuple(payload[1:]), **common)
    if ptype in (ACK, BINARY_ACK):
        if ack is None or not isinstance(payload, list):
            return _bad(raw, "ack without an id or an argument list", MESSAGE)
        return Packet(MESSAGE, args=tuple(payload), **common)
    return Packet(MESSAGE, data=payload, **common)


def fill_placeholders(value: Any, attachments: Sequence[Any]) -> Any:
    """`value` with each `{"_placeholder": true, "num": k}` replaced by `attachments[k]`.

    Placeholders whose attachment is missing stay as they are.
    """
    if isinstance(value, list):
        return [fill_placeholders(item, attachments) for item in value]
    if isinstance(value, dict):
        num = value.get("num")
        if value.get("_placeholder") is True and type(num) is int and 0 <= num < len(attachments):
            return attachments[num]
        return {key: fill_placeholders(item, attachments) for key, item in value.items()}
    return value


def connect_data(data: Any) -> Any:
    """A CONNECT answer's payload without its session ids (`sid`, `pid`); None if empty."""
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key not in SESSION_KEYS}
        return data or None
    return data


def is_socketio(path: str, query: str | Mapping[str, Any] | Iterable[tuple[str, Any]] = "") -> bool:
    """Whether a WebSocket handshake speaks Engine.IO: its query has an `EIO` parameter.

    The query may come inside `path` (`/socket.io/?EIO=4&transport=websocket`), as a
    query string, a mapping or (name, value) pairs.
    """
    names: list[str] = []
    _, sep, inline = path.partition("?")
    if sep:
        names += [name for name, _ in parse_qsl(inline, keep_blank_values=True)]
    if isinstance(query, str):
        names += [name for name, _ in parse_qsl(query.lstrip("?"), keep_blank_values=True)]
    elif isinstance(query, Mapping):
        names += [str(name) for name in query]
    else:
        names += [str(name) for name, _ in query]
    return "EIO" in names


def _step(text: str) -> str:
    return f"[{text}]" if _BARE.match(text) else f"[{json.dumps(text, ensure_ascii=False)}]"


def message_path(packet: Packet) -> tuple[str, bool]:
    """The path of a decoded packet's messages, and whether `[n]` (its place among them) follows.

    `$ws.event[progress]` (`$ws.event[/admin:progress]` outside the main namespace),
    `$ws.ack[12]` (`$ws.ack[/admin][12]`, an ack id is unique), `$ws.connect`,
    `$ws.connect_error`, `$ws.disconnect` (`$ws.connect[/admin]`...) and
    `$ws.eio_close` for an Engine.IO close. "" for anything else.
    """
    if packet.engine == CLOSE:
        return "$ws.eio_close", True
    if packet.engine != MESSAGE or packet.type is None:
        return "", False
    return _path(packet.type, packet.namespace, packet.event, packet.ack)


@functools.lru_cache(maxsize=4096)
def _path(ptype: int, namespace: str, event: str | None, ack: int | None) -> tuple[str, bool]:
    # Cached: a conversation repeats a few event names many times over.
    ns = "" if namespace == "/" else namespace
    if ptype in (EVENT, BINARY_EVENT):
        name = f"{ns}:{event}" if ns else str(event)
        return f"$ws.event{_step(name)}", True
    if ptype in (ACK, BINARY_ACK):
        return f"$ws.ack{_step(ns) if ns else ''}[{ack}]", False
    what = {CONNECT: "connect", CONNECT_ERROR: "connect_error"}.get(ptype, "disconnect")
    return f"$ws.{what}{_step(ns) if ns else ''}", True


def message_value(packet: Packet, attachments: Sequence[Any] = ()) -> Any:
    """What is compared of a packet: one argument itself, several as a list.

    A CONNECT answer's session ids are left out (`connect_data`); attachments
    replace their placeholders.
    """
    if packet.type in (EVENT, BINARY_EVENT, ACK, BINARY_ACK):
        args = list(packet.args)
        if attachments:
            args = fill_placeholders(args, attachments)
        return args[0] if len(args) == 1 else args
    if packet.type == CONNECT:
        return connect_data(packet.data)
    return packet.data
