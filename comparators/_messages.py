"""The server messages of a conversation: read from its frames, grouped, lined up.

Helpers of `comparators.conversation`. A `Message` carries what comparing needs: a
normalized canonical form (`canon`: equal forms are equal messages, so most pairs
never reach deepdiff), the channel it belongs to and its path. `align` lines up
one channel of each side and returns only the pairs that differ.
"""

from __future__ import annotations

import binascii
import hashlib
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import zip_longest
from typing import Any

import orjson

from comparators import socketio as sio
from comparators.body import TEXT_LIMIT
from comparators.canonical import digest
from comparators.envelope import SSE, WEBSOCKET, Conversation, Frame
from comparators.model import Headers, Payload
from comparators.normalize import NoteKey
from comparators.rules import Rules

# Fields whose value puts a plain JSON message in its own channel (the first present).
DISCRIMINATORS = ("type", "event", "kind", "action", "op")
# Messages of a channel's differing middle (primary x candidate) above which they are
# paired by position: difflib's matching grows with their product.
ALIGN_LIMIT = 250_000
_JSON: Headers = (("content-type", "application/json"),)
_BINARY: Headers = (("content-type", "application/octet-stream"),)


@dataclass(slots=True, eq=False)
class Message:
    """One server message as compared."""

    index: int  # place among its side's server frames
    turn: int  # place of the client message it follows (-1: none)
    channel: str
    path: str  # for indexed channels set by `channels` (`label[n]`)
    canon: bytes  # normalized canonical form: equal means no difference
    value: Any  # shown when the other side lacks the message
    body: bytes | None  # what `compare_bodies` gets, with `headers`; None: `value` as JSON
    headers: Headers = ()
    cut: tuple[int, str] | None = None  # whole size and SHA-256 of a cut frame
    counts: Counter[NoteKey] | None = None  # what normalizing it did, if anything
    label: str = ""  # indexed path prefix (Socket.IO)
    place: int = -1  # place in its channel (indexed channels)
    event: str = ""  # SSE
    id: str | None = None  # SSE, as sent
    id_key: str | None = None  # SSE, masked
    taken: bool = False  # paired while lining up a channel
    t_ms: float = 0.0  # when it came (since the conversation began)

    def payload(self) -> Payload:
        """The message as a body for `compare_bodies`."""
        # Encoded only now: most messages equal their partner and never need it.
        body = orjson.dumps(self.value) if self.body is None else self.body
        if self.cut is not None:
            return Payload(200, self.headers, body, self.cut[0], self.cut[1])
        return Payload(200, self.headers, body)


Pair = tuple[Message | None, Message | None, bool]  # primary, candidate, moved


def _raw(frame: Frame) -> bytes:
    try:
        return frame.raw
    except (binascii.Error, ValueError):  # not base64 after all: its text stands
        return frame.data.encode("utf-8", "surrogatepass")


def _fingerprint(frame: Frame) -> dict[str, Any]:
    if frame.cut:
        return {"length": frame.size, "sha256": frame.sha256}
    return digest(_raw(frame))


def _channel_of(value: Any) -> str:
    if isinstance(value, dict):
        for name in DISCRIMINATORS:
            field = value.get(name)
            if isinstance(field, str) or (isinstance(field, int) and not isinstance(field, bool)):
                return f"{name}={field!r}"
    return ""


def is_noise(frame: Frame) -> bool:
    """A Socket.IO transport frame (open, ping, pong, probe, upgrade, noop)."""
    return frame.kind == "text" and not frame.cut and sio.decode(frame.data).noise


def client_messages(conv: Conversation, socketio: bool) -> list[Frame]:
    """The client's messages, without Socket.IO transport frames (pongs differ per side)."""
    frames = conv.side("client")
    return [f for f in frames if not is_noise(f)] if socketio else frames


class Side:
    """One side's server messages (`messages`), read from its frames."""

    def __init__(self, conv: Conversation, rules: Rules, socketio: bool) -> None:
        self.rules, self.root = rules, "$sse" if conv.kind == SSE else "$ws"
        # Checked once: without rules to apply, messages skip the normalizer's walk.
        self.normalizing = bool(rules.normalizer)
        self.counts: Counter[NoteKey] = Counter()  # every message's, for the notes
        self.malformed: Counter[str] = Counter()  # Socket.IO frames read as plain, by reason
        self.messages: list[Message] = []
        self._pending: tuple[sio.Packet, int, int, list[Any]] | None = None
        socketio = socketio and conv.kind == WEBSOCKET
        read = self._socketio if socketio else self._plain
        self._times: dict[int, float] = {}
        turn = index = -1
        for frame in conv.frames:
            if frame.side == "client":
                # The same numbering as `client_messages`.
                turn += not (socketio and is_noise(frame))
            else:
                index += 1
                self._times[index] = frame.t_ms
                read(frame, index, turn)
        self._flush()

    def _counter(self) -> Counter[NoteKey]:
        # Without rules nothing is ever counted: one shared (empty) counter will do.
        return Counter() if self.normalizing else self.counts

    def _add(self, msg: Message, counts: Counter[NoteKey]) -> None:
        msg.t_ms = self._times.get(msg.index, 0.0)
        if counts and counts is not self.counts:
            msg.counts = counts
            self.counts.update(counts)
        self.messages.append(msg)

    def _canon(self, value: Any, counts: Counter[NoteKey]) -> bytes:
        try:
            if self.normalizing:
                value = self.rules.normalizer.json(value, counts)
            return b"j" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)  # canonical_json
        except (RecursionError, TypeError, ValueError):
            # Too deep or not encodable: the exact value stands for itself.
            return b"r" + hashlib.sha256(repr(value).encode()).digest()

    def _plain(self, frame: Frame, index: int, turn: int) -> None:
        path, counts, raw = f"{self.root}[{index}]", self._counter(), _raw(frame)
        msg = Message(index, turn, "", path, b"", None, raw, _BINARY)
        if frame.cut:
            msg.canon, msg.value = b"c" + frame.sha256.encode(), _fingerprint(frame)
            msg.cut = (frame.size, frame.sha256)
        elif frame.kind == "binary":
            msg.canon, msg.value = b"b" + hashlib.sha256(raw).digest(), digest(raw)
        else:
            msg.headers = ()  # JSON when it parses, else text: as an HTTP body without type
            try:
                msg.value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                text = self.rules.normalizer.text(frame.data, counts)
                msg.canon = b"t" + text.encode("utf-8", "surrogatepass")
                msg.value = frame.data[:TEXT_LIMIT]
            else:
                msg.canon = self._canon(msg.value, counts)
                if self.root != "$sse":
                    msg.channel = _channel_of(msg.value)
        if frame.kind == "event":
            msg.event, msg.id = frame.event, frame.id
            msg.canon = b"e" + frame.event.encode("utf-8", "surrogatepass") + b"\0" + msg.canon
            if frame.id is not None:
                msg.id_key = self.rules.normalizer.text(frame.id, self.counts)
        self._add(msg, counts)

    def _socketio(self, frame: Frame, index: int, turn: int) -> None:
        packet = None if frame.kind == "binary" or frame.cut else sio.decode(frame.data)
        if packet is not None and packet.noise:
            return  # transport chatter, even between a packet and its attachments
        pending = self._pending
        binary = frame.kind == "binary" or (packet is not None and packet.binary is not None)
        if pending is not None and binary and len(pending[3]) < pending[0].attachments:
            data = packet.binary if packet is not None else None
            pending[3].append(_fingerprint(frame) if data is None else digest(data))
            if len(pending[3]) == pending[0].attachments:
                self._flush()
            return
        self._flush()
        if packet is None:
            self._plain(frame, index, turn)
        elif packet.malformed or not sio.message_path(packet)[0]:
            self.malformed[packet.malformed or "not a Socket.IO packet"] += 1
            self._plain(frame, index, turn)
        elif packet.attachments:
            self._pending = (packet, index, turn, [])  # its attachments follow
        else:
            self._packet(packet, index, turn, ())

    def _flush(self) -> None:
        if self._pending is not None:
            self._packet(*self._pending)
            self._pending = None

    def _packet(
        self, packet: sio.Packet, index: int, turn: int, attachments: Sequence[Any]
    ) -> None:
        label, indexed = sio.message_path(packet)
        value, counts = sio.message_value(packet, attachments), self._counter()
        msg = Message(index, turn, label, label, self._canon(value, counts), value, None, _JSON)
        msg.label = label if indexed else ""
        self._add(msg, counts)


def channels(messages: list[Message]) -> dict[str, list[Message]]:
    """Messages by channel, in order; indexed paths get their place in the channel."""
    out: dict[str, list[Message]] = {}
    for msg in messages:
        group = out.setdefault(msg.channel, [])
        if msg.label:
            msg.place = len(group)
            msg.path = f"{msg.label}[{msg.place}]"
        group.append(msg)
    return out


def tail(messages: list[Message], since: int, after: float | None = None) -> int:
    """How many messages at the end came after client message `since` (and, with `after`,
    later than `after` ms into the conversation)."""
    n = 0
    while n < len(messages) and messages[-1 - n].turn >= since:
        if after is not None and messages[-1 - n].t_ms <= after:
            break
        n += 1
    return n


def _same(a: Message, b: Message) -> bool:
    return a.canon == b.canon and a.id_key == b.id_key


def _pair_block(xs: list[Message], ys: list[Message]) -> Iterator[Pair]:
    """Pair what is left of a differing stretch: answers to the same client message first."""
    free = [y for y in ys if not y.taken]
    by_turn: dict[int, deque[Message]] = defaultdict(deque)
    for y in free:
        by_turn[y.turn].append(y)
    left = []
    for x in xs:
        if queue := by_turn.get(x.turn):
            y = queue.popleft()
            y.taken = True
            yield x, y, False
        else:
            left.append(x)
    yield from ((x, y, False) for x, y in zip_longest(left, [y for y in free if not y.taken]))


def align(a: list[Message], b: list[Message]) -> tuple[list[Pair], bool]:
    """The differing pairs of one channel, and whether it was paired by position only.

    Equal ends are skipped first (linear), so a long conversation with a few
    differences costs little; only the differing middle goes to difflib.
    """
    lo, hi_a, hi_b = 0, len(a), len(b)
    while lo < hi_a and lo < hi_b and a[lo].canon == b[lo].canon:
        lo += 1
    while hi_a > lo and hi_b > lo and a[hi_a - 1].canon == b[hi_b - 1].canon:
        hi_a, hi_b = hi_a - 1, hi_b - 1
    # Equal canonical forms: only an SSE id can still differ.
    ends = zip([*a[:lo], *a[hi_a:]], [*b[:lo], *b[hi_b:]], strict=True)
    out: list[Pair] = [(x, y, False) for x, y in ends if x.id_key != y.id_key]
    mid_a, mid_b = a[lo:hi_a], b[lo:hi_b]
    if len(mid_a) * len(mid_b) > ALIGN_LIMIT:
        by_place = zip_longest(mid_a, mid_b)
        out += ((x, y, False) for x, y in by_place if x is None or y is None or not _same(x, y))
        return out, True
    matcher = SequenceMatcher(None, [x.canon for x in mid_a], [y.canon for y in mid_b], False)
    blocks = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pairs = zip(mid_a[i1:i2], mid_b[j1:j2], strict=True)
            out += ((x, y, False) for x, y in pairs if not _same(x, y))
        else:
            blocks.append((mid_a[i1:i2], mid_b[j1:j2]))
    # The same message elsewhere in the channel is moved, not removed and added:
    # every stretch's candidates are known before any stretch is paired.
    waiting: dict[bytes, deque[Message]] = defaultdict(deque)
    for _, ys in blocks:
        for y in ys:
            waiting[y.canon].append(y)
    rests = []
    for xs, ys in blocks:
        rest = []
        for x in xs:
            if queue := waiting.get(x.canon):
                y = queue.popleft()
                y.taken = True
                out.append((x, y, True))
            else:
                rest.append(x)
        rests.append((rest, ys))
    for rest, ys in rests:
        out += _pair_block(rest, ys)
    return out, False
