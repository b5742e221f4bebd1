"""Real-time answers compared as conversations, not byte streams.

`compare_conversations` reads both sides' `Conversation` (comparators.envelope) and
compares what the servers sent; the client's messages are the same on both sides
and only decide, under a capture limit, where comparing stops.

- Each server message is compared like an HTTP body (`compare_bodies`, with the
  same rules relative to the message's JSON root: masks, ignore_paths,
  normalizers), and its differences get the message's path in front:
  `$.progress` of message `$ws[3]` is `$ws[3].progress`, `$body` is `$ws[3]`.
- Messages are grouped into channels, each compared in order: Socket.IO events
  by namespace and name, acks by id; plain JSON messages by the value of their
  first discriminator field (`type`, `event`, `kind`, `action`, `op`), others
  together; an SSE stream is one channel. Order across channels is no
  difference; within one it is: a message found elsewhere in its channel is one
  `Kind.REORDERED` (values: its place on each side). Channels are lined up with
  difflib on each message's normalized canonical form, so one missing message is
  one REMOVED, not a shift of every later one.
- Engine.IO handshakes, pings, pongs, probes, upgrades, noops and the session
  id of a Socket.IO CONNECT answer are transport, never compared; nor is timing.

Paths: `$ws[i]` (i: the message's place among its side's server frames, the
primary's, the candidate's for an ADDED one), `$ws.event[progress][2]` (the third
"progress" event; one argument is the root itself, several are `[k]`),
`$ws.event[/admin:progress][0]`, `$ws.ack[12]`, `$ws.ack[/admin][12]`,
`$ws.connect[0]`, `$ws.disconnect[0]`, `$ws.connect_error[0]`, `$ws.eio_close[0]`,
`$sse[i]` (the event's data; `$sse[i].event` its type, `$sse[i].id` its id),
`$ws.close` / `$sse.close` (how it ended: the close code, or "error").
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from comparators._messages import (
    DISCRIMINATORS,
    Message,
    Pair,
    Side,
    align,
    channels,
    client_messages,
    tail,
)
from comparators.body import BODY, BodyResult, compare_bodies
from comparators.canonical import digest
from comparators.envelope import SSE, WEBSOCKET, Conversation, decode
from comparators.errors import DecodeError
from comparators.model import Difference, Kind, Payload
from comparators.normalize import render_notes
from comparators.rules import Rules

__all__ = ["DISCRIMINATORS", "compare_conversations"]

_MAX_NOTES = 20  # distinct per-message notes kept


class _Notes:
    """Notes of many messages, one line per distinct note with where it first arose."""

    def __init__(self) -> None:
        self.seen: dict[str, list[Any]] = {}

    def add(self, note: str, path: str) -> None:
        hit = self.seen.get(note)
        if hit is None:
            self.seen[note] = [path, 1]
        else:
            hit[1] += 1

    def render(self) -> list[str]:
        out = []
        for note, (path, n) in list(self.seen.items())[:_MAX_NOTES]:
            out.append(f"{path}: {note}" + (f" (and {n - 1} more messages)" if n > 1 else ""))
        if len(self.seen) > _MAX_NOTES:
            out.append(f"{len(self.seen) - _MAX_NOTES} more distinct message notes")
        return out


def _within(prefix: str, path: str) -> str:
    """A body path of one message as a path of the conversation."""
    if path in (BODY, "$"):
        return prefix
    return prefix + path[1:] if path.startswith("$") else prefix + path


def _place(msg: Message) -> int:
    """A message's place as REORDERED values show it: in its channel, or its index."""
    return msg.place if msg.label else msg.index


class _Compare:
    """One comparison of two conversations: its differences, notes and budget."""

    def __init__(self, rules: Rules, kind: str, fast: bool = True) -> None:
        self.rules = rules
        self.fast = fast
        self.result = BodyResult(kind)
        self.room = rules.max_diffs + 1  # one more than kept, so compare() says it cut
        self.more = 0  # differing messages left undiffed once the room was full
        self.notes = _Notes()

    def add(self, diff: Difference) -> None:
        if len(self.result.differences) < self.room:
            self.result.differences.append(diff)

    def pair(self, x: Message | None, y: Message | None, moved: bool) -> None:
        """The differences of one pairing (nothing for equal messages)."""
        if len(self.result.differences) >= self.room:
            self.more += 1
        elif x is None and y is not None:
            self.add(Difference(y.path, Kind.ADDED, None, y.value))
        elif y is None and x is not None:
            self.add(Difference(x.path, Kind.REMOVED, x.value, None))
        elif x is not None and y is not None and moved:
            self.add(Difference(x.path, Kind.REORDERED, _place(x), _place(y)))
        elif x is not None and y is not None:
            self._messages(x, y)

    def _messages(self, x: Message, y: Message) -> None:
        if x.canon != y.canon:
            found = compare_bodies(x.payload(), y.payload(), self.rules, fast=self.fast)
            self.result.exhausted |= found.exhausted
            # Masks and ignored paths are counted once for all messages (render_notes).
            counted = set(render_notes((x.counts or Counter()) + (y.counts or Counter())))
            for note in found.notes:
                if note not in counted:
                    self.notes.add(note, x.path)
            for d in found.differences:
                self.add(Difference(_within(x.path, d.path), d.kind, d.primary, d.candidate))
        if x.event != y.event:
            self.add(Difference(f"{x.path}.event", Kind.VALUE_CHANGED, x.event, y.event))
        if x.id_key != y.id_key:
            self.add(Difference(f"{x.path}.id", Kind.VALUE_CHANGED, x.id, y.id))


def _ending(conv: Conversation) -> Any:
    """How a conversation ended, as compared: "error", or its close code ("closed" for SSE)."""
    if conv.ended == "error":
        return "error"
    return conv.close_code if conv.kind == WEBSOCKET else "closed"


def _client(a: Conversation, b: Conversation, socketio: bool, notes: list[str]) -> int:
    """Notes on the client's messages; the place of the last one both sides sent (-1: none)."""
    socketio = socketio and a.kind == WEBSOCKET
    ca, cb = client_messages(a, socketio), client_messages(b, socketio)
    for who, frames in (("primary", ca), ("candidate", cb)):
        if unsent := sum(not f.sent for f in frames):
            notes.append(f"{who}: {unsent} client message(s) never sent (its connection was gone)")
    if [(f.kind, f.data) for f in ca] != [(f.kind, f.data) for f in cb]:
        notes.append(f"the client messages differ between the sides ({len(ca)} vs {len(cb)})")
    return max(
        (j for j, (x, y) in enumerate(zip(ca, cb, strict=False)) if x.sent and y.sent), default=-1
    )


def _summary(payload: Payload) -> dict[str, Any]:
    return {"stream": payload.stream or "http", **digest(payload.body)}


def _whole(primary: Payload, candidate: Payload, kind: str, note: str) -> BodyResult:
    """One `$body` difference for answers that cannot be compared as conversations."""
    result = BodyResult(kind, notes=[note])
    if not primary.same_body(candidate) or primary.stream != candidate.stream:
        result.differences.append(
            Difference(BODY, Kind.VALUE_CHANGED, _summary(primary), _summary(candidate))
        )
    return result


def compare_conversations(
    primary: Payload,
    candidate: Payload,
    rules: Rules,
    socketio: bool = False,
    *,
    fast: bool = True,
) -> BodyResult:
    """Compare two conversations (`Payload.stream` set); never raises on content.

    `socketio`: the WebSocket speaks Engine.IO / Socket.IO (`socketio.is_socketio`
    of its handshake). The result's `kind` is the stream kind. `fast=False`: the
    reference body comparison for each message (`compare_bodies`).
    """
    kind = primary.stream or candidate.stream
    if primary.stream != candidate.stream:
        return _whole(
            primary,
            candidate,
            kind,
            f"answers differ in kind: {primary.stream or 'http'} vs {candidate.stream or 'http'}",
        )
    if primary.cut or candidate.cut:
        result = compare_bodies(primary, candidate, rules, fast=fast)
        result.kind = kind
        return result
    try:
        a, b = decode(primary.body), decode(candidate.body)
    except DecodeError as exc:
        return _whole(primary, candidate, kind, f"conversation could not be read: {exc}")
    if a.kind != b.kind:
        return _whole(
            primary, candidate, kind, f"conversations differ in kind: {a.kind} vs {b.kind}"
        )
    return _compare(a, b, rules, socketio, fast)


def _compare(
    a: Conversation, b: Conversation, rules: Rules, socketio: bool, fast: bool = True
) -> BodyResult:
    run = _Compare(rules, a.kind, fast)
    notes = run.result.notes
    root = "$sse" if a.kind == SSE else "$ws"
    since = _client(a, b, socketio, notes)
    limited = "limit" in (a.ended, b.ended)
    if not limited and _ending(a) != _ending(b):
        run.add(Difference(f"{root}.close", Kind.VALUE_CHANGED, _ending(a), _ending(b)))
    after = _horizon(a, b) if limited else None
    sides = Side(a, rules, socketio), Side(b, rules, socketio)
    ga, gb = (channels(side.messages) for side in sides)
    pairs: list[Pair] = []
    left_out = 0
    for name in dict.fromkeys([*ga, *gb]):
        xs, ys = ga.get(name, []), gb.get(name, [])
        if limited:
            # We stopped listening: near that moment the side that heard less may simply
            # not have heard the rest yet, so each channel's tail goes as far as the
            # shorter. Only toward a side that stopped at the limit (one that closed heard
            # all), and only for messages close to the stop (a silent side is no shorter
            # tail: it missed what came long before it stopped).
            ta, tb = tail(xs, since, after), tail(ys, since, after)
            # What one side has more of, as far as it came close to the stop, is what the
            # other (that stopped at the limit) may not have heard yet.
            drop_a = min(ta, max(0, len(xs) - len(ys))) if b.ended == "limit" else 0
            drop_b = min(tb, max(0, len(ys) - len(xs))) if a.ended == "limit" else 0
            left_out += drop_a + drop_b
            xs, ys = xs[: len(xs) - drop_a], ys[: len(ys) - drop_b]
        found, positional = align(xs, ys)
        pairs += found
        if positional:
            what = f"channel {name}" if name else "messages"
            notes.append(f"{what}: {len(xs)} vs {len(ys)} too many to line up, paired by position")
    pairs.sort(key=_order)
    for x, y, moved in pairs:
        run.pair(x, y, moved)
    _finish(run, a, b, sides, limited, left_out)
    return run.result


# Messages this close to where a side stopped listening may have come to one side and not
# yet to the other (the copy runs 50 ms behind; timers and latencies vary).
STOP_GRACE_MS = 1000.0


def _horizon(a: Conversation, b: Conversation) -> float | None:
    """Where the tolerance at a capture limit starts (ms): STOP_GRACE_MS (at most a quarter
    of the capture) before the earlier stop of a side that ended at the limit; None when a
    stop time is unknown (all of the tail is tolerated, as before stop times were kept)."""
    stops = [c.t_end_ms for c in (a, b) if c.ended == "limit"]
    if not stops or any(t is None for t in stops):
        return None
    stop = min(t for t in stops if t is not None)
    # A short capture gets a shorter grace: a quarter of it at most.
    return stop - min(STOP_GRACE_MS, stop / 4)


def _order(pair: Pair) -> tuple[int, int]:
    x, y, _ = pair
    return (x.index, 0) if x is not None else (y.index if y is not None else 0, 1)


def _finish(
    run: _Compare,
    a: Conversation,
    b: Conversation,
    sides: tuple[Side, Side],
    limited: bool,
    left_out: int,
) -> None:
    notes = run.result.notes
    for who, conv, side in (("primary", a, sides[0]), ("candidate", b, sides[1])):
        if conv.ended == "limit":
            notes.append(f"{who} stopped at a capture limit: how it ended is not compared")
        if conv.dropped:
            notes.append(f"{who}: {conv.dropped} message(s) past the capture limit not kept")
        for why, n in sorted(side.malformed.items()):
            notes.append(f"{who}: {n} frame(s) not Socket.IO ({why}): compared as plain messages")
    if limited and left_out:
        notes.append(
            f"{left_out} message(s) near where a side stopped at a capture limit not "
            "compared (beyond the shorter side)"
        )
    if run.more:
        notes.append(f"{run.more} more differing message pair(s) not diffed (max_diffs reached)")
    notes[:0] = render_notes(sides[0].counts + sides[1].counts)
    notes += run.notes.render()
