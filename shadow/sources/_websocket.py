"""WebSocket conversations in traffic files: what the readers and writers share.

A WebSocket exchange is a `Recorded` whose request is the handshake and whose
response is `websocket_payload(...)`: status 101, the 101's headers, and the
conversation (comparators/envelope.py) as the body, `stream="websocket"`.

Formats that are JSON (HAR, shadow's JSON Lines) spell the conversation with
the functions here. mitmproxy dumps hold it in mitmproxy's own WebSocket types
(mitm.py reads them, write.py writes them); what those cannot hold goes in the
flow's metadata, spelled here too (`mitm_meta`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from comparators import envelope
from comparators.envelope import Conversation, Frame
from comparators.errors import DecodeError
from comparators.model import Headers, Payload
from shadow.sources._base import EntryProblem, b64decode, short

MAX_MESSAGES = 100_000  # messages of one conversation kept; the rest are counted (`dropped`)
SIDES = ("client", "server")
CLOSED_BY = frozenset({"client", "server", "shadow", ""})
_SHA256 = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T")


def capped(messages: Sequence[T]) -> tuple[Sequence[T], int]:
    """The messages kept (the first MAX_MESSAGES) and how many more there were."""
    return messages[:MAX_MESSAGES], max(0, len(messages) - MAX_MESSAGES)


def websocket_payload(headers: Headers, conv: Conversation) -> Payload:
    """The answer of a WebSocket exchange: the 101 with the conversation as its body."""
    return Payload(101, headers, envelope.encode(conv), stream=envelope.WEBSOCKET)


def conversation_of(response: Payload | None) -> Conversation | None:
    """The WebSocket conversation a response holds, or None for a plain answer.

    A 101 whose body is a conversation counts even without `stream`: a copy of
    the payload that dropped the field (a redacting recorder) still writes as one.
    """
    if response is None or response.status != 101 or not response.body:
        return None
    if response.stream not in ("", envelope.WEBSOCKET):
        return None
    try:
        conv = envelope.decode(response.body)
    except DecodeError:
        return None
    return conv if conv.kind == envelope.WEBSOCKET else None


def text_bytes(text: str) -> bytes:
    """A text message's bytes: escaped raw bytes go back to themselves."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate written as a JSON escape
        return text.encode("utf-8", "surrogatepass")


MAX_T_MS = 1e12  # about 31 years: a message time beyond it is no time


def t_ms(moment: float, origin: float, what: str = "a message") -> float:
    """Milliseconds from `origin` to `moment` (unix seconds), to the microsecond, never < 0."""
    value = (moment - origin) * 1000
    if not math.isfinite(value) or value > MAX_T_MS:
        raise EntryProblem(f"{what}: time {short(moment)} is not within the conversation")
    return max(0.0, float(round(value, 3)))


def marked(item: Frame, size: int | None, sha256: str | None, sent: bool) -> Frame:
    """`item` with what a file says beyond the bytes: cut (whole size, digest), not sent."""
    if size is not None and sha256 is not None:
        item = replace(item, cut=True, size=size, sha256=sha256)
    return item if sent else replace(item, sent=False)


def check_cut(size: Any, sha256: Any, what: str) -> tuple[int | None, str | None]:
    """A cut message's declared (size, sha256), both or neither."""
    if size is None and sha256 is None:
        return None, None
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise EntryProblem(f"{what} size {short(size)} is not a byte count")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise EntryProblem(f"{what} sha256 {short(sha256)} is not a hex SHA-256")
    return size, sha256


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EntryProblem(f"{what} {short(value)} is not a number")
    return float(value)


def check_end(
    close_code: Any, close_reason: Any, closed_by: Any, ended: Any, dropped: Any, what: str
) -> tuple[int | None, str, str, str, int]:
    """How a conversation ended, as a file states it, checked."""
    if close_code is not None and (
        isinstance(close_code, bool)
        or not isinstance(close_code, int)
        or not 0 <= close_code < 65536
    ):
        raise EntryProblem(f"{what} close code {short(close_code)} is not a WebSocket close code")
    if not isinstance(close_reason, str):
        raise EntryProblem(f"{what} close reason {short(close_reason)} is not a string")
    if closed_by not in CLOSED_BY:
        raise EntryProblem(f"{what} closed by {short(closed_by)}: not client, server or shadow")
    if ended not in envelope.ENDINGS:
        raise EntryProblem(f"{what} ended {short(ended)}: not one of closed, limit, error")
    if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
        raise EntryProblem(f"{what} dropped {short(dropped)} is not a count")
    return close_code, close_reason, closed_by, ended, dropped


# -- shadow JSON Lines: the "websocket" field (FORMAT.md) ----------------------------------


def jsonl_websocket(conv: Conversation) -> dict[str, Any]:
    """A conversation as the JSON Lines "websocket" field."""
    frames: list[dict[str, Any]] = []
    for f in conv.frames:
        item: dict[str, Any] = {"side": f.side, "t_ms": f.t_ms}
        item["base64" if f.kind == "binary" else "text"] = f.data
        if f.cut:
            item.update(size=f.size, sha256=f.sha256)
        if not f.sent:
            item["sent"] = False
        frames.append(item)
    out: dict[str, Any] = {"frames": frames, "ended": conv.ended}
    if conv.close_code is not None:
        out["close_code"] = conv.close_code
    if conv.close_reason:
        out["close_reason"] = conv.close_reason
    if conv.closed_by:
        out["closed_by"] = conv.closed_by
    if conv.dropped:
        out["dropped"] = conv.dropped
    return out


def jsonl_conversation(value: Any, limit: int) -> Conversation:
    """The JSON Lines "websocket" field as a Conversation; EntryProblem when malformed."""
    if not isinstance(value, dict):
        raise EntryProblem("websocket is not an object")
    items = value.get("frames", [])
    if not isinstance(items, list):
        raise EntryProblem("websocket.frames is not a list")
    kept, more = capped(items)
    frames = tuple(_jsonl_frame(i, item, limit) for i, item in enumerate(kept))
    code, reason, by, ended, dropped = check_end(
        value.get("close_code"), value.get("close_reason", ""), value.get("closed_by", ""),
        value.get("ended", "closed"), value.get("dropped", 0), "websocket:",
    )  # fmt: skip
    return Conversation(envelope.WEBSOCKET, frames, code, reason, by, ended, dropped + more)


def _jsonl_frame(index: int, item: Any, limit: int) -> Frame:
    what = f"websocket.frames[{index}]"
    if not isinstance(item, dict):
        raise EntryProblem(f"{what} is not an object")
    side = item.get("side")
    if side not in SIDES:
        raise EntryProblem(f"{what}.side {short(side)} is not client or server")
    moment = _number(item.get("t_ms"), f"{what}.t_ms")
    if not 0 <= moment <= MAX_T_MS:
        raise EntryProblem(f"{what}.t_ms {moment:g} is not a time within the conversation")
    text, b64 = item.get("text"), item.get("base64")
    if (text is None) == (b64 is None):
        raise EntryProblem(f"{what} needs one of text or base64")
    if text is not None and not isinstance(text, str):
        raise EntryProblem(f"{what}.text is not a string")
    data = text_bytes(text) if text is not None else b64decode(b64, f"{what}.base64")
    size, digest = check_cut(item.get("size"), item.get("sha256"), what)
    sent = item.get("sent", True)
    if not isinstance(sent, bool):
        raise EntryProblem(f"{what}.sent is not true or false")
    built = envelope.frame(side, round(moment, 3), data, text is not None, limit)
    return marked(built, size, digest, sent)


# -- HAR: Chrome's _webSocketMessages, and our _webSocketEnd ----------------------------

_TYPES = {"send": "client", "receive": "server"}
_CONTROL = frozenset({8, 9, 10})  # close, ping, pong: not messages


def har_websocket(conv: Conversation, origin: float) -> dict[str, Any]:
    """The HAR entry's fields of a conversation that began at unix time `origin`."""
    messages: list[dict[str, Any]] = []
    for f in conv.frames:
        item: dict[str, Any] = {
            "type": "send" if f.side == "client" else "receive",
            "time": origin + f.t_ms / 1000,
            "opcode": 2 if f.kind == "binary" else 1,
            "data": f.data,
        }
        if f.cut:
            item.update(_size=f.size, _sha256=f.sha256)
        if not f.sent:
            item["_sent"] = False
        messages.append(item)
    end: dict[str, Any] = {"ended": conv.ended, "closedBy": conv.closed_by}
    if conv.close_code is not None:
        end["closeCode"] = conv.close_code
    if conv.close_reason:
        end["closeReason"] = conv.close_reason
    if conv.dropped:
        end["dropped"] = conv.dropped
    return {"_resourceType": "websocket", "_webSocketMessages": messages, "_webSocketEnd": end}


def har_conversation(
    messages: list[Any], end: Any, origin: float | None, limit: int
) -> Conversation:
    """`_webSocketMessages` (and `_webSocketEnd`, when there) as a Conversation.

    Times are unix seconds; `origin` is when the 101 came. Nothing is said
    before the 101, so when `origin` is unknown or later than the first message
    (timings that count the connection twice, as mitmproxy's export does, or
    messages on another clock), the first message's time is the origin instead.
    """
    kept, more = capped(messages)
    parsed = [_har_message(i, item) for i, item in enumerate(kept)]
    first = min((m.time for m in parsed), default=origin or 0.0)
    origin = first if origin is None else min(origin, first)
    frames = tuple(_har_frame(m, origin, limit) for m in parsed if m.opcode in (1, 2))
    if end is None:  # a browser's: no more than the messages say
        closer = next((m.side for m in parsed if m.opcode == 8), "")
        broke = any(m.side == "error" for m in parsed)
        return Conversation(envelope.WEBSOCKET, frames, None, "", closer,
                            "error" if broke else "closed", more)  # fmt: skip
    if not isinstance(end, dict):
        raise EntryProblem("_webSocketEnd is not an object")
    code, reason, by, ended, dropped = check_end(
        end.get("closeCode"), end.get("closeReason", ""), end.get("closedBy", ""),
        end.get("ended", "closed"), end.get("dropped", 0), "_webSocketEnd:",
    )  # fmt: skip
    return Conversation(envelope.WEBSOCKET, frames, code, reason, by, ended, dropped + more)


@dataclass(frozen=True, slots=True)
class _Message:
    """One of `_webSocketMessages`, checked."""

    side: str  # "client" | "server" | "error" (Chrome: the connection failed)
    time: float
    opcode: int  # 1 text, 2 binary; 8, 9, 10 (close, ping, pong) and 0 (error) hold no data
    data: bytes = b""
    size: int | None = None  # with sha256: the message was cut (ours: `_size`, `_sha256`)
    sha256: str | None = None
    sent: bool = True


def _har_frame(m: _Message, origin: float, limit: int) -> Frame:
    moment = t_ms(m.time, origin, "_webSocketMessages")
    built = envelope.frame(m.side, moment, m.data, m.opcode == 1, limit)
    return marked(built, m.size, m.sha256, m.sent)


def _har_message(index: int, item: Any) -> _Message:
    what = f"_webSocketMessages[{index}]"
    if not isinstance(item, dict):
        raise EntryProblem(f"{what} is not an object")
    moment = _number(item.get("time"), f"{what}.time")
    kind = item.get("type")
    if kind == "error":
        return _Message("error", moment, 0)
    if kind not in _TYPES:
        raise EntryProblem(f"{what}.type {short(kind)} is not send, receive or error")
    opcode = item.get("opcode")
    if isinstance(opcode, bool) or opcode not in (1, 2, *_CONTROL):
        raise EntryProblem(f"{what}.opcode {short(opcode)} is not 1 (text) or 2 (binary)")
    if opcode in _CONTROL:
        return _Message(_TYPES[kind], moment, opcode)
    data = item.get("data", "")
    if opcode == 1 and not isinstance(data, str):
        raise EntryProblem(f"{what}.data is not a string")
    raw = text_bytes(data) if opcode == 1 else b64decode(data, f"{what}.data")
    size, digest = check_cut(item.get("_size"), item.get("_sha256"), what)
    sent = item.get("_sent", True)
    if not isinstance(sent, bool):
        raise EntryProblem(f"{what}._sent is not true or false")
    return _Message(_TYPES[kind], moment, opcode, raw, size, digest, sent)


# -- mitmproxy dumps: what WebSocketData cannot hold, in the flow's metadata -----------

META = "shadow-websocket"  # flow.metadata key (read by mitm.py, written by write.py)


def mitm_meta(conv: Conversation) -> dict[str, Any]:
    """The metadata that gives `conv` back from a flow: how it ended, cut messages."""
    meta: dict[str, Any] = {"ended": conv.ended, "closed_by": conv.closed_by}
    if conv.dropped:
        meta["dropped"] = conv.dropped
    cut = [[i, f.size, f.sha256] for i, f in enumerate(conv.frames) if f.cut]
    if cut:
        meta["cut"] = cut
    return meta
