"""Real-time answers as data: a WebSocket conversation or a server-sent event stream.

A backend's answer that is a conversation (WebSocket) or a stream of events (SSE) is
held as a `Payload` whose `stream` is "websocket" or "sse" and whose `body` is the
`Conversation` encoded by `encode` (JSON). The headers stay the backend's own (the
101's, or the stream's). Everything after the capture (the comparison, the store,
the report) reads the conversation back with `decode`.

A `Frame` is one message: sent by the client (the same on both sides, sent in the
same order and spacing) or by the server. SSE streams hold server frames only, one
per dispatched event (https://html.spec.whatwg.org/multipage/server-sent-events.html).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from comparators.decode import body_text, decode_body
from comparators.errors import DecodeError

WEBSOCKET = "websocket"
SSE = "sse"
STREAM_KINDS = frozenset({WEBSOCKET, SSE})
ENDINGS = frozenset({"closed", "limit", "error"})


@dataclass(frozen=True, slots=True)
class Frame:
    """One message of a conversation.

    `data` is the text of a text message or an event's data, base64 for a binary
    message. A message over the capture's limit keeps its first bytes (`cut`), its
    whole `size` and SHA-256. `sent` is False for a client message that never
    reached this backend (its connection was gone).
    """

    side: str  # "client" | "server"
    t_ms: float  # since the conversation began (the 101, or the stream's headers)
    kind: str  # "text" | "binary" | "event"
    data: str
    size: int
    cut: bool = False
    sha256: str = ""
    event: str = ""  # SSE: the event's type ("message" when the stream names none)
    id: str | None = None  # SSE: the event's id field, when it has one
    sent: bool = True

    @property
    def raw(self) -> bytes:
        """The message's (kept) bytes."""
        if self.kind == "binary":
            return base64.b64decode(self.data)
        return self.data.encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class Conversation:
    """A whole conversation or stream as one side saw it.

    `ended`: "closed" (by either end, `closed_by` says which, or the stream's end),
    "limit" (we stopped listening: the time, message or byte cap) or "error" (the
    connection broke). `dropped`: messages past the cap, counted, not kept.
    """

    kind: str
    frames: tuple[Frame, ...] = ()
    close_code: int | None = None
    close_reason: str = ""
    closed_by: str = ""  # "client" | "server" | "shadow" (we closed it) | ""
    ended: str = "closed"
    dropped: int = 0
    t_end_ms: float | None = None  # when it ended (or we stopped listening), since it began

    def side(self, side: str) -> list[Frame]:
        return [f for f in self.frames if f.side == side]


def frame(side: str, t_ms: float, data: bytes, text: bool, limit: int) -> Frame:
    """A Frame of a message's bytes, cut to `limit` bytes (with its digest)."""
    size = len(data)
    cut = size > limit
    kept = data[:limit] if cut else data
    digest = hashlib.sha256(data).hexdigest() if cut else ""
    if text:
        shown = kept.decode("utf-8", "replace" if cut else "surrogateescape")
        try:
            shown.encode("utf-8")
        except UnicodeEncodeError:  # not UTF-8 after all: kept as bytes
            return Frame(side, t_ms, "binary", _b64(kept), size, cut, digest)
        return Frame(side, t_ms, "text", shown, size, cut, digest)
    return Frame(side, t_ms, "binary", _b64(kept), size, cut, digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_FIELDS = ("side", "t_ms", "kind", "data", "size", "cut", "sha256", "event", "id", "sent")
_DEFAULTS: dict[str, Any] = {"cut": False, "sha256": "", "event": "", "id": None, "sent": True}


def encode(conv: Conversation) -> bytes:
    """The conversation as JSON bytes (defaults left out, so small)."""
    frames = []
    for f in conv.frames:
        item: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(f, name)
            if name in _DEFAULTS and value == _DEFAULTS[name]:
                continue
            item[name] = round(value, 3) if name == "t_ms" else value
        frames.append(item)
    doc: dict[str, Any] = {"kind": conv.kind, "frames": frames, "ended": conv.ended}
    if conv.close_code is not None:
        doc["close_code"] = conv.close_code
    if conv.close_reason:
        doc["close_reason"] = conv.close_reason
    if conv.closed_by:
        doc["closed_by"] = conv.closed_by
    if conv.dropped:
        doc["dropped"] = conv.dropped
    if conv.t_end_ms is not None:
        doc["t_end_ms"] = round(conv.t_end_ms, 3)
    return orjson.dumps(doc)


def decode(body: bytes) -> Conversation:
    """The conversation `encode` wrote; DecodeError when `body` is not one."""
    try:
        doc = orjson.loads(body)
        kind = doc["kind"]
        if kind not in STREAM_KINDS or doc.get("ended", "closed") not in ENDINGS:
            raise DecodeError(f"not a conversation: kind {kind!r}")
        # Positional and with the defaults spelled out: a conversation may hold 100,000.
        frames = tuple(
            Frame(
                item["side"],
                item["t_ms"],
                item["kind"],
                item["data"],
                item["size"],
                item.get("cut", False),
                item.get("sha256", ""),
                item.get("event", ""),
                item.get("id"),
                item.get("sent", True),
            )
            for item in doc["frames"]
        )
        return Conversation(
            kind,
            frames,
            doc.get("close_code"),
            doc.get("close_reason", ""),
            doc.get("closed_by", ""),
            doc.get("ended", "closed"),
            int(doc.get("dropped", 0)),
            _time(doc.get("t_end_ms")),
        )
    except DecodeError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise DecodeError(f"not a conversation: {exc}") from None


def _time(value: Any) -> float | None:
    if value is None:
        return None
    t = float(value)
    if not math.isfinite(t):
        raise ValueError(f"t_end_ms {value!r} is not a time")
    return t


# -- server-sent events ----------------------------------------------------------------


_LINE_END = re.compile(r"\r\n|\r|\n")


def parse_sse(
    text: str, max_events: int | None = None, times: Sequence[tuple[int, float]] = ()
) -> tuple[list[Frame], bool]:
    """The events dispatched by an event stream's text, and whether it was cut.

    Follows the WHATWG parsing rules: `data` lines joined with newlines, `event`
    names the type ("message" by default), `id` sets the last event id, comments
    and `retry` are no events; a block without data dispatches nothing; a last
    block without its blank line is not dispatched (the stream ended mid-event).
    `times`: (bytes of the stream so far, ms) at the end of each chunk as it came
    (the text's UTF-8 bytes): each event gets the time of the chunk that ended it.
    """
    frames: list[Frame] = []
    data: list[str] = []
    event = ""
    last_id: str | None = None
    ends = [end for end, _ in times]
    pos = 1 if text.startswith("\ufeff") else 0
    offset, counted = 0, 0  # bytes up to text[counted:]
    for match in _LINE_END.finditer(text):
        line, start, pos = text[pos : match.start()], pos, match.end()
        # (the text after the last line end is an unfinished line: no part of any event)
        if not line:
            if data:
                value = "\n".join(data)
                size = len(value.encode("utf-8", "surrogatepass"))
                t_ms = 0.0
                if times:
                    offset += len(text[counted:pos].encode("utf-8", "surrogatepass"))
                    counted = pos
                    i = bisect.bisect_left(ends, offset)
                    t_ms = times[min(i, len(times) - 1)][1]
                frames.append(
                    Frame(
                        "server", t_ms, "event", value, size, event=event or "message", id=last_id
                    )
                )
                if max_events is not None and len(frames) >= max_events:
                    return frames, True
            data, event = [], ""
            continue
        del start
        if line.startswith(":"):
            continue
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\x00" not in value:
            last_id = value
    return frames, False


def _partial(headers: tuple[tuple[str, str], ...], raw: bytes, limit: int) -> bytes | None:
    """The start of a gzip or deflate stream that was cut off (as a stream followed up to a
    limit is), decoded up to `limit` bytes; None for other encodings or no such stream."""
    encodings = [
        token.strip().lower()
        for key, value in headers
        if key.lower() == "content-encoding"
        for token in value.split(",")
        if token.strip()
    ]
    if len(encodings) != 1 or encodings[0] not in ("gzip", "x-gzip", "deflate"):
        return None
    wbits = 47 if encodings[0] != "deflate" else 15  # gzip (auto header) or zlib
    try:
        return zlib.decompressobj(wbits).decompress(raw, limit)
    except zlib.error:
        try:  # raw deflate, as some servers send it
            return zlib.decompressobj(-15).decompress(raw, limit)
        except zlib.error:
            return None


def sse_conversation(
    headers: tuple[tuple[str, str], ...],
    raw: bytes,
    ended: str,
    max_decoded: int,
    max_events: int | None = None,
    times: Sequence[tuple[int, float]] = (),
    t_end_ms: float | None = None,
) -> Conversation:
    """An event stream's captured (wire) bytes as a Conversation of its events.

    `times`: (bytes so far, ms since the stream's headers) per chunk as it came, for the
    events' times (not when the stream was content-encoded); `t_end_ms`: when the
    capture ended."""
    try:
        body = decode_body(headers, raw, max_decoded)
    except DecodeError as exc:
        start = _partial(headers, raw, max_decoded)
        if start is None:
            text, ended, reason = "", "error", str(exc)
        else:  # a compressed stream cut where we stopped listening: what came, decoded
            text = body_text(headers, start) or start.decode("utf-8", "replace")
            reason, times, t_end_ms = "", (), None
    else:
        text = body_text(headers, body) or body.decode("utf-8", "replace")
        reason = ""
        if body is not raw and body != raw:
            # Offsets of the decoded text are not those of the wire bytes: no event times,
            # and no stop time either (near a limit, the whole tail is then tolerated).
            times, t_end_ms = (), None
    frames, cut = parse_sse(text, max_events, times)
    return Conversation(
        SSE,
        tuple(frames),
        close_reason=reason,
        ended="limit" if cut else ended,
        t_end_ms=t_end_ms,
    )
