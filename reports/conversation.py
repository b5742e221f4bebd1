"""A stored WebSocket conversation or event stream as a side-by-side table (no I/O).

`conversation_view` takes the two stored conversations (JSON of comparators.envelope,
already redacted) and the exchange's differences, and returns the rows the report
shows: one group per turn (a client message and the server messages that followed
it, before the next client message; messages before the first client message, and
every event of an SSE stream, form the first group), each holding the primary's and
the candidate's server messages side by side, one pair a row.

Where a difference points (the comparator's paths, comparators/conversation.py):

- `$ws[i]...` / `$sse[i]...`: the primary's i-th server message (among all its server
  frames), the candidate's i-th for an ADDED difference at exactly `$ws[i]`;
- Socket.IO `$ws.event[name][k]...`, `$ws.ack[id]...`, `$ws.connect[k]`... (see
  `socketio.message_path`): the message given that path by numbering each side's
  decoded packets as the comparator does (the candidate's for an ADDED one);
- a REORDERED difference also marks the candidate's message at the place its
  candidate value names; any other difference inside a message also marks the
  candidate's message shown beside it;
- `$ws.close` / `$sse.close`: how each side ended (the table's foot).

A primary message that a REMOVED difference names has no partner (the candidate's
cell is marked missing), likewise a candidate message an ADDED one names. The others
of a turn are paired by channel (the comparator's: Socket.IO event or ack, the
first discriminator field of a JSON message), then in order. This pairing is for
display only: the comparison itself lined the messages up per channel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from comparators import socketio as sio
from comparators.envelope import SSE, WEBSOCKET, Conversation, Frame, decode
from comparators.errors import DecodeError

DISPLAY_CHARS = 500  # of each message's text shown; the rest is cut with a marker
MAX_ROWS = 300  # message rows of one conversation shown
HARD, SOFT = "m", "s"  # the body view's classes: a real / a tolerated difference
# A JSON message's channel: the first of these fields holding a string or a number
# (comparators.conversation.DISCRIMINATORS).
DISCRIMINATORS = ("type", "event", "kind", "action", "op")
_INDEXED = re.compile(r"\$(ws|sse)\[(\d+)\]")
_BOUNDARY = frozenset(".[")


@dataclass(frozen=True, slots=True)
class Mark:
    """A difference shown on a message: its path and its class (HARD or SOFT)."""

    path: str
    kind: str
    css: str


@dataclass(frozen=True, slots=True)
class Message:
    """One message as shown."""

    index: int  # place among its side's server messages (client messages: among those)
    t_ms: float
    kind: str  # text | binary | event
    label: str  # SSE: "event <type> · id <id>"; Socket.IO: its path; else ""
    text: str  # cut to DISPLAY_CHARS
    more: int  # characters cut for display (0: shown whole)
    size: int  # bytes of the whole message
    captured_cut: bool  # only its first bytes were captured
    note: str  # e.g. "never reached the candidate"
    css: str  # HARD, SOFT or ""
    marks: list[Mark] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Cell:
    """One side of a row: a message, a missing one, or nothing."""

    message: Message | None
    missing: bool = False  # the other side's message has no counterpart here
    css: str = ""  # HARD / SOFT when a difference says it is missing
    note: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    primary: Cell
    candidate: Cell


@dataclass(frozen=True, slots=True)
class Turn:
    number: int  # the client message's place; -1: before any client message
    client: Message | None
    rows: list[Row]  # at least one
    span: int  # len(rows), for the client cell's rowspan


@dataclass(frozen=True, slots=True)
class Ending:
    text: str
    dropped: int  # messages past the capture limit, not kept


@dataclass(frozen=True, slots=True)
class ConversationView:
    kind: str  # websocket | sse
    client_column: bool  # WebSocket: the client's messages are shown
    socketio: bool
    turns: list[Turn]
    primary_end: Ending
    candidate_end: Ending
    end_css: str  # HARD / SOFT when how they ended differs
    end_marks: list[Mark]
    notes: list[str]


# -- reading the two sides ---------------------------------------------------------------


def _css(status: str) -> str:
    return HARD if status == "real" else SOFT


def _strongest(classes: Iterable[str]) -> str:
    """HARD if any is, else SOFT if any is, else ""."""
    found = set(classes)
    return HARD if HARD in found else (SOFT if SOFT in found else "")


def _socketio_paths(server: Sequence[Frame]) -> tuple[dict[str, int], dict[int, str]]:
    """Each Socket.IO message's path (numbered as the comparator numbers them) -> its
    server index; and each such index's channel (the path without its `[n]`)."""
    paths: dict[str, int] = {}
    channels: dict[int, str] = {}
    counts: dict[str, int] = {}
    pending: list[Any] = []  # [label, indexed, index, attachments left]

    def add(label: str, indexed: bool, index: int) -> None:
        channels[index] = label
        if indexed:
            n = counts.get(label, 0)
            counts[label] = n + 1
            label = f"{label}[{n}]"
        paths.setdefault(label, index)

    for index, f in enumerate(server):
        packet = None if f.kind == "binary" or f.cut else sio.decode(f.data)
        if packet is not None and packet.noise:
            continue  # transport chatter, even between a packet and its attachments
        attachment = packet is None or packet.binary is not None
        if pending and attachment and pending[3] > 0:
            pending[3] -= 1
            if pending[3] == 0:
                add(*pending[:3])
                pending = []
            continue
        if pending:
            add(*pending[:3])
            pending = []
        if packet is None or packet.malformed:
            continue  # compared as a plain message: `$ws[i]`
        label, indexed = sio.message_path(packet)
        if not label:
            continue
        if packet.attachments:
            pending = [label, indexed, index, packet.attachments]
        else:
            add(label, indexed, index)
    if pending:
        add(*pending[:3])
    return paths, channels


def _channel(f: Frame) -> str:
    """The channel the comparator compares a plain message in (display pairing only)."""
    if f.kind != "text" or f.cut:
        return ""
    try:
        value = orjson.loads(f.data)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(value, dict):
        for name in DISCRIMINATORS:
            v = value.get(name)
            if isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)):
                return f"{name}={v!r}"
    return ""


class _Side:
    """One side's frames: server messages with their turns, paths and channels."""

    def __init__(self, conv: Conversation, socketio: bool) -> None:
        self.client = conv.side("client")
        self.server: list[Frame] = []
        self.turns: dict[int, list[int]] = {}  # client message's place -> server indices
        turn = -1
        for f in conv.frames:
            if f.side == "client":
                turn += 1
            else:
                self.turns.setdefault(turn, []).append(len(self.server))
                self.server.append(f)
        self.paths, channels = _socketio_paths(self.server) if socketio else ({}, {})
        # paths numbered by their place in their channel (`$ws.event[progress][2]`)
        self.indexed = {p for p, i in self.paths.items() if p != channels[i]}
        by_index = {i: p for p, i in self.paths.items()}
        self.channel = [
            channels[i] if i in channels else _channel(f) for i, f in enumerate(self.server)
        ]
        self.label = [by_index.get(i, "") for i in range(len(self.server))]
        # Engine.IO chatter (handshake, pings): never compared (shown only when marked)
        self.chatter = {
            i
            for i, f in enumerate(self.server)
            if socketio and f.kind == "text" and not f.cut and sio.decode(f.data).noise
        }

    def find(self, path: str) -> tuple[int, str] | None:
        """The server message a difference path points into, and the rest of the path."""
        if m := _INDEXED.match(path):
            return int(m.group(2)), path[m.end() :]
        for k in range(len(path), 3, -1):  # the longest message path it starts with
            if k < len(path) and path[k] not in _BOUNDARY:
                continue
            if (index := self.paths.get(path[:k])) is not None:
                return index, path[k:]
        return None

    def at_place(self, label: str | None, place: Any) -> int | None:
        """The index of the message at `place` (a REORDERED value): in the channel of
        Socket.IO messages `label`, else among the server messages."""
        if type(place) is not int:
            return None
        if label is not None:
            return self.paths.get(f"{label}[{place}]")
        return place if 0 <= place < len(self.server) else None


# -- differences onto messages ------------------------------------------------------------


@dataclass
class _Targets:
    primary: dict[int, list[Mark]] = field(default_factory=dict)
    candidate: dict[int, list[Mark]] = field(default_factory=dict)
    partner: dict[int, list[Mark]] = field(default_factory=dict)  # on the primary's partner
    removed: dict[int, str] = field(default_factory=dict)  # primary index -> status css
    added: dict[int, str] = field(default_factory=dict)  # candidate index -> status css
    end: list[Mark] = field(default_factory=list)
    unplaced: int = 0  # point at messages the store did not keep


def _targets(differences: Sequence[Mapping[str, Any]], root: str, p: _Side, c: _Side) -> _Targets:
    out = _Targets()
    for d in differences:
        path, kind = str(d["path"]), str(d["kind"])
        mark = Mark(path, kind, _css(str(d["status"])))
        if path == f"{root}.close":
            out.end.append(mark)
            continue
        if not path.startswith(root):
            continue  # $status, $header.x, $body: in the differences table only
        # ADDED at a message's own path: the candidate's message; else the primary's.
        found = c.find(path) if kind == "added" else None
        if found is not None and not found[1]:
            if found[0] >= len(c.server):
                out.unplaced += 1
                continue
            out.candidate.setdefault(found[0], []).append(mark)
            out.added[found[0]] = _strongest((out.added.get(found[0], ""), mark.css))
            continue
        found = p.find(path)
        if found is None or found[0] >= len(p.server):
            out.unplaced += 1
            continue
        index, rest = found
        out.primary.setdefault(index, []).append(mark)
        if kind == "removed" and not rest:
            out.removed[index] = _strongest((out.removed.get(index, ""), mark.css))
        elif kind == "reordered" and not rest:
            label = path.rsplit("[", 1)[0] if path in p.indexed else None
            moved = c.at_place(label, _place(d.get("candidate_value")))
            if moved is not None and moved < len(c.server):
                out.candidate.setdefault(moved, []).append(mark)
        else:
            out.partner.setdefault(index, []).append(mark)
    return out


def _place(value: Any) -> Any:
    """A REORDERED value as stored (JSON text) read back to the place it names."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


# -- shaping rows ---------------------------------------------------------------------------


def _message(f: Frame, index: int, label: str, marks: Sequence[Mark], note: str = "") -> Message:
    text = f"binary, base64: {f.data}" if f.kind == "binary" else f.data
    more = max(0, len(text) - DISPLAY_CHARS)
    if f.kind == "event":
        label = f"event {f.event or 'message'}" + (f" · id {f.id}" if f.id is not None else "")
    return Message(
        index=index,
        t_ms=f.t_ms,
        kind=f.kind,
        label=label,
        text=text[:DISPLAY_CHARS] if more else text,
        more=more,
        size=f.size,
        captured_cut=f.cut,
        note=note,
        css=_strongest(m.css for m in marks),
        marks=list(marks),
    )


def _partners(
    p: _Side, c: _Side, t: _Targets, hide_p: set[int], hide_c: set[int]
) -> dict[int, int]:
    """Primary server message -> the candidate's it is compared with: the k-th of a channel
    with the k-th of the same channel (as the comparator lines them up), across turns, so
    an answer that came just after the next client message is no "missing" message."""
    queues: dict[str, list[int]] = {}
    for j in range(len(c.server)):
        if j not in hide_c and j not in t.added:
            queues.setdefault(c.channel[j], []).append(j)
    partner: dict[int, int] = {}
    for i in range(len(p.server)):
        if i in hide_p or i in t.removed:
            continue
        queue = queues.get(p.channel[i])
        if queue:
            partner[i] = queue.pop(0)
    return partner


def _pairs(
    ps: list[int], cs: list[int], partner: Mapping[int, int], placed: set[int]
) -> list[tuple[int | None, int | None]]:
    """One turn's rows, in the primary's order: each primary message beside its partner
    (wherever that came), then the candidate's messages no primary message is paired with."""
    out: list[tuple[int | None, int | None]] = [(i, partner.get(i)) for i in ps]
    for j in cs:
        if j in placed:
            continue
        # After the row of the candidate's last earlier message shown, else in front.
        at = 0
        for k, (_, y) in enumerate(out):
            if y is not None and y < j:
                at = k + 1
        out.insert(at, (None, j))
    return out


def _cell(
    side: _Side, index: int | None, marks: Mapping[int, list[Mark]], other_missing: str
) -> Cell:
    if index is None:
        return Cell(None, missing=True, css=other_missing)
    f = side.server[index]
    return Cell(_message(f, index, side.label[index], marks.get(index, [])))


def _ending(conv: Conversation) -> Ending:
    if conv.ended == "limit":
        text = "still open when capturing stopped (a capture limit)"
    elif conv.ended == "error":
        text = "the connection broke" + (f": {conv.close_reason}" if conv.close_reason else "")
    elif conv.kind == SSE:
        text = "stream ended"
    else:
        code = "without a close code" if conv.close_code is None else str(conv.close_code)
        text = f"closed {code}"
        if conv.close_reason:
            text += f" ({conv.close_reason})"
        if conv.closed_by:
            text += f" by {conv.closed_by}"
    return Ending(text, conv.dropped)


def _client(p: _Side, c: _Side, n: int) -> Message | None:
    if n < 0:
        return None
    f = p.client[n] if n < len(p.client) else c.client[n]
    notes = []
    for who, side in (("primary", p), ("candidate", c)):
        if n >= len(side.client):
            notes.append(f"not in the {who}'s conversation")
        elif not side.client[n].sent:
            notes.append(f"never reached the {who}")
    if n < len(p.client) and n < len(c.client) and p.client[n].data != c.client[n].data:
        notes.append("the candidate was sent another message")
    return _message(f, n, "", [], "; ".join(notes))


def conversation_view(
    kind: str | None,
    primary_body: str | None,
    candidate_body: str | None,
    differences: Sequence[Mapping[str, Any]],
    socketio: bool = False,
    cut: tuple[bool, bool] = (False, False),
) -> ConversationView | None:
    """The side-by-side view of a stored conversation; None when it is not one or does
    not decode (the report shows the bodies then).

    `differences`: the exchange's, each with `path`, `kind` and `status` (real, noise,
    accepted), and for REORDERED its `candidate_value` (JSON text). `socketio`: the
    handshake spoke Engine.IO (its chatter is left out unless a difference names it).
    `cut`: whether the store left out messages of the primary's / candidate's
    conversation (its body cap).
    """
    if kind not in (WEBSOCKET, SSE) or primary_body is None or candidate_body is None:
        return None
    try:
        a = decode(primary_body.encode("utf-8", "surrogatepass"))
        b = decode(candidate_body.encode("utf-8", "surrogatepass"))
    except (DecodeError, UnicodeEncodeError):
        return None
    if a.kind != kind or b.kind != kind:
        return None
    root = "$sse" if kind == SSE else "$ws"
    # Socket.IO paths number the decoded packets; a handshake that did not say Engine.IO
    # may still have been compared so (the paths tell).
    socketio = kind == WEBSOCKET and (
        socketio
        or any(str(d["path"]).startswith("$ws.") and d["path"] != "$ws.close" for d in differences)
    )
    p, c = _Side(a, socketio), _Side(b, socketio)
    t = _targets(differences, root, p, c)
    hide_p = p.chatter - t.primary.keys() - t.removed.keys()
    hide_c = c.chatter - t.candidate.keys() - t.added.keys()
    marks_c = {j: list(v) for j, v in t.candidate.items()}

    partner = _partners(p, c, t, hide_p, hide_c)
    placed = set(partner.values())
    turns: list[Turn] = []
    shown = left_out = 0
    for n in range(-1, max(len(p.client), len(c.client))):
        ps = [i for i in p.turns.get(n, []) if i not in hide_p]
        cs = [j for j in c.turns.get(n, []) if j not in hide_c]
        pairs = _pairs(ps, cs, partner, placed)
        for i, j in pairs:
            if i is not None and j is not None and i in t.partner:
                marks_c.setdefault(j, []).extend(t.partner[i])
        if shown >= MAX_ROWS:
            left_out += len(ps) + len(cs) + (n >= 0)
            continue
        rows = [
            Row(
                _cell(p, i, t.primary, t.added.get(j, "") if j is not None else ""),
                _cell(c, j, marks_c, t.removed.get(i, "") if i is not None else ""),
            )
            for i, j in pairs[: MAX_ROWS - shown]
        ]
        for i, j in pairs[MAX_ROWS - shown :]:
            left_out += (i is not None) + (j is not None)
        if not rows:
            if n == -1 and kind == WEBSOCKET:
                continue  # nothing before the first client message
            rows = [Row(Cell(None, note="no message"), Cell(None, note="no message"))]
        shown += len(rows)
        turns.append(Turn(n, _client(p, c, n), rows, len(rows)))

    notes = []
    for who, conv, was_cut in (("primary", a, cut[0]), ("candidate", b, cut[1])):
        if was_cut:
            notes.append(
                f"the {who}'s stored conversation was cut (the store's body cap): "
                "its later messages are not shown"
            )
        if conv.dropped:
            notes.append(f"the {who}: {conv.dropped} messages past the capture limit not kept")
    if t.unplaced:
        notes.append(f"{t.unplaced} differences point at messages the store did not keep")
    if left_out:
        notes.append(f"{left_out} more messages not shown (at most {MAX_ROWS} rows)")
    if hidden := len(hide_p) + len(hide_c):
        notes.append(f"{hidden} Engine.IO transport frames (handshake, pings) not shown")
    return ConversationView(
        kind=kind,
        client_column=kind == WEBSOCKET,
        socketio=socketio,
        turns=turns,
        primary_end=_ending(a),
        candidate_end=_ending(b),
        end_css=_strongest(m.css for m in t.end),
        end_marks=t.end,
        notes=notes,
    )
