"""Conversations (WebSocket, Socket.IO, SSE) compared message by message."""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import replace
from typing import Any

import orjson
import pytest
from comparators_strategies import json_values
from hypothesis import given
from hypothesis import strategies as st

from comparators import (
    DEFAULT_RULES,
    Comparison,
    Conversation,
    Frame,
    Kind,
    Payload,
    Verdict,
    cluster_path,
    compare,
    compare_conversations,
    parse_rules,
)
from comparators import _messages as messages
from comparators.envelope import encode

Diff = tuple[str, Kind, Any, Any]
SSE_HEADERS = (("content-type", "text/event-stream"),)


def server(data: Any, t_ms: float = 0.0) -> Frame:
    """A server text frame; non-str data is sent as JSON."""
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    return Frame("server", t_ms, "text", text, len(text.encode()))


def client(data: Any, sent: bool = True) -> Frame:
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    return Frame("client", 0.0, "text", text, len(text.encode()), sent=sent)


def binary(data: bytes) -> Frame:
    return Frame("server", 0.0, "binary", base64.b64encode(data).decode(), len(data))


def event(data: Any, name: str = "message", id: str | None = None) -> Frame:
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    return Frame("server", 0.0, "event", text, len(text.encode()), event=name, id=id)


def ws(*frames: Frame, **fields: Any) -> Payload:
    fields.setdefault("close_code", 1000)
    return Payload(101, (), encode(Conversation("websocket", frames, **fields)), stream="websocket")


def sse(*frames: Frame, **fields: Any) -> Payload:
    body = encode(Conversation("sse", frames, **fields))
    return Payload(200, SSE_HEADERS, body, stream="sse")


def diffs(result: Comparison) -> list[Diff]:
    return [(d.path, d.kind, d.primary, d.candidate) for d in result.differences]


# -- Socket.IO -----------------------------------------------------------------------


def job(progress: list[Any], sid: str, pings: int) -> Payload:
    """A Socket.IO job: handshake, connect, start, progress events among pings, an ack."""
    frames = [
        server('0{"sid":"' + sid + '","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'),
        client("40"),
        server('40{"sid":"' + sid[::-1] + '"}'),
        client('421["start",{"job":7}]'),
    ]
    for i, value in enumerate(progress):
        if i < pings:
            frames += [server("2"), client("3")]
        frames.append(server(f'42["progress",{orjson.dumps({"progress": value}).decode()}]'))
    frames.append(server('431[{"ok":true}]'))
    return ws(*frames)


def test_socketio_type_change_in_the_third_progress_event() -> None:
    result = compare(
        job([10, 30, 50, 80], "sid-a", pings=1),
        job([10, 30, "50", 80], "sid-b", pings=3),
        socketio=True,
    )
    assert diffs(result) == [("$ws.event[progress][2].progress", Kind.TYPE_CHANGED, 50, "50")]
    assert result.body_kind == "websocket"
    assert result.notes == ()


def test_socketio_paths() -> None:
    primary = ws(
        server('40/admin,{"sid":"a"}'),
        server('42/admin,["progress",{"p":1}]'),
        server('42["pair",1,{"x":1}]'),
        server('4312[{"ok":true}]'),
        server('43/admin,4["done"]'),
    )
    candidate = ws(
        server('40/admin,{"sid":"b"}'),
        server('42/admin,["progress",{"p":2}]'),
        server('42["pair",1,{"x":2}]'),
        server('4312[{"ok":false}]'),
        server('43/admin,4["fail"]'),
    )
    assert diffs(compare(primary, candidate, socketio=True)) == [
        ("$ws.event[/admin:progress][0].p", Kind.VALUE_CHANGED, 1, 2),
        ("$ws.event[pair][0][1].x", Kind.VALUE_CHANGED, 1, 2),
        ("$ws.ack[12].ok", Kind.VALUE_CHANGED, True, False),
        ("$ws.ack[/admin][4]", Kind.VALUE_CHANGED, "done", "fail"),
    ]


def test_socketio_connect_is_compared_by_namespace_not_sid() -> None:
    primary = ws(server('40/admin,{"sid":"a"}'), server('40{"sid":"c"}'))
    candidate = ws(server('40{"sid":"d"}'), server('44/admin,{"message":"denied"}'))
    assert diffs(compare(primary, candidate, socketio=True)) == [
        ("$ws.connect[/admin][0]", Kind.REMOVED, None, None),
        ("$ws.connect_error[/admin][0]", Kind.ADDED, None, {"message": "denied"}),
    ]


def test_socketio_binary_attachments_are_compared_by_digest() -> None:
    def upload(data: bytes) -> Payload:
        return ws(
            server('451-["upload",{"name":"a.png","file":{"_placeholder":true,"num":0}}]'),
            binary(data),
            server('42["after",1]'),
        )

    same = compare(upload(b"\x01\x02"), upload(b"\x01\x02"), socketio=True)
    assert same.verdict is Verdict.MATCH
    changed = compare(upload(b"\x01\x02"), upload(b"\x01\x03"), socketio=True)
    assert [d.path for d in changed.differences] == ["$ws.event[upload][0].file.sha256"]


def test_socketio_malformed_frame_is_a_difference_with_a_note() -> None:
    primary = ws(server('42["progress",{"p":1}]'))
    candidate = ws(server('42["progress",{"p":1}'))
    result = compare(primary, candidate, socketio=True)
    assert diffs(result) == [
        ("$ws.event[progress][0]", Kind.REMOVED, {"p": 1}, None),
        ("$ws[0]", Kind.ADDED, None, '42["progress",{"p":1}'),
    ]
    assert "candidate: 1 frame(s) not Socket.IO (payload is not JSON)" in result.notes[0]


def test_without_the_socketio_flag_frames_are_plain_text() -> None:
    result = compare(job([1], "a", 1), job([1], "b", 1))
    assert {d.path for d in result.differences} == {"$ws[0]", "$ws[1]"}  # open, connect


# -- plain WebSocket -----------------------------------------------------------------


def test_equal_conversations_match() -> None:
    conv = ws(client({"op": "sub"}), server({"type": "ok"}), server("hi"), binary(b"\x00"))
    assert compare(conv, conv) == Comparison(Verdict.MATCH, (), "websocket", False, ())


@pytest.mark.parametrize(
    ("primary", "candidate", "expected"),
    [
        pytest.param(
            [server({"type": "a", "n": 1}), server({"type": "b", "n": 1})],
            [server({"type": "b", "n": 1}), server({"type": "a", "n": 1})],
            [],
            id="order across channels is no difference",
        ),
        pytest.param(
            [server({"type": "a", "n": 1}), server({"type": "a", "n": 2})],
            [server({"type": "a", "n": 2}), server({"type": "a", "n": 1})],
            [("$ws[1]", Kind.REORDERED, 1, 0)],
            id="order within a channel is one reorder",
        ),
        pytest.param(
            [server({"n": 1}), server({"n": 2}), server({"n": 3}), server({"n": 4})],
            [server({"n": 1}), server({"n": 3}), server({"n": 4})],
            [("$ws[1]", Kind.REMOVED, {"n": 2}, None)],
            id="one missing message is one removed",
        ),
        pytest.param(
            [server({"n": 1}), server({"n": 3})],
            [server({"n": 1}), server({"n": 2}), server({"n": 3})],
            [("$ws[1]", Kind.ADDED, None, {"n": 2})],
            id="an extra message has the candidate's index",
        ),
        pytest.param(
            [server({"progress": 1, "ts": 5})],
            [server({"progress": 2, "ts": 5})],
            [("$ws[0].progress", Kind.VALUE_CHANGED, 1, 2)],
            id="paths inside a message",
        ),
        pytest.param(
            [server({"a": 1})],
            [server("not json")],
            [("$ws[0]", Kind.VALUE_CHANGED, '{"a":1}', "not json")],
            id="text where JSON was expected",
        ),
        pytest.param(
            [server("hello")],
            [server("hallo")],
            [("$ws[0]", Kind.VALUE_CHANGED, "hello", "hallo")],
            id="text messages",
        ),
        pytest.param(
            [binary(b"\x01")],
            [binary(b"\x02")],
            [
                (
                    "$ws[0]",
                    Kind.VALUE_CHANGED,
                    {"length": 1, "sha256": hashlib.sha256(b"\x01").hexdigest()},
                    {"length": 1, "sha256": hashlib.sha256(b"\x02").hexdigest()},
                )
            ],
            id="binary messages by digest",
        ),
        pytest.param(
            [server({"type": "x", "v": 1})],
            [server({"type": "y", "v": 1})],
            [
                ("$ws[0]", Kind.REMOVED, {"type": "x", "v": 1}, None),
                ("$ws[0]", Kind.ADDED, None, {"type": "y", "v": 1}),
            ],
            id="another discriminator is another channel",
        ),
    ],
)
def test_plain_websocket(
    primary: list[Frame], candidate: list[Frame], expected: list[Diff]
) -> None:
    assert diffs(compare(ws(*primary), ws(*candidate))) == expected


def test_answers_pair_with_the_client_message_they_follow() -> None:
    primary = ws(client("a"), server({"r": "A"}), client("b"), server({"r": "B"}))
    candidate = ws(client("a"), client("b"), server({"r": "B", "x": 1}))
    assert diffs(compare(primary, candidate)) == [
        ("$ws[0]", Kind.REMOVED, {"r": "A"}, None),
        ("$ws[1].x", Kind.ADDED, None, 1),
    ]


def test_rules_apply_to_each_message_root() -> None:
    rules = parse_rules({"ignore_paths": ["$.ts"], "masks": ["uuid"]})
    uid = "123e4567-e89b-12d3-a456-426614174000"
    primary = ws(server({"ts": 1, "id": uid}), server({"ts": 2, "id": uid}))
    candidate = ws(server({"ts": 9, "id": uid[::-1]}), server({"ts": 8, "id": uid}))
    result = compare(primary, candidate, rules)
    assert result.verdict is Verdict.DIFFER  # the reversed uuid is no uuid
    assert [d.path for d in result.differences] == ["$ws[0].id"]
    assert "ignored 4 values at $.ts" in result.notes


def test_normalizer_notes_name_the_message() -> None:
    result = compare(
        ws(server({"n": 1}), server({"n": 2})), ws(server({"n": 1.0}), server({"n": 2}))
    )
    assert result.verdict is Verdict.MATCH
    assert result.notes == ("$ws[0]: int_float: $.n",)


@pytest.mark.parametrize(
    ("primary", "candidate", "expected"),
    [
        (
            {"close_code": 1000},
            {"close_code": 1011},
            [("$ws.close", Kind.VALUE_CHANGED, 1000, 1011)],
        ),
        (
            {},
            {"ended": "error", "close_code": None},
            [("$ws.close", Kind.VALUE_CHANGED, 1000, "error")],
        ),
        ({"closed_by": "client"}, {"closed_by": "server"}, []),
        ({}, {"ended": "limit", "close_code": None, "closed_by": "shadow"}, []),
    ],
)
def test_close(primary: dict[str, Any], candidate: dict[str, Any], expected: list[Diff]) -> None:
    frames = (server({"a": 1}),)
    assert diffs(compare(ws(*frames, **primary), ws(*frames, **candidate))) == expected


def test_limit_compares_the_tail_up_to_the_shorter_side() -> None:
    before = [client("go"), server({"type": "p", "n": 0}), server({"type": "q", "n": 0})]
    tail = [client("more"), server({"type": "p", "n": 1}), server({"type": "p", "n": 2})]
    primary = ws(*before, *tail, server({"type": "done"}))
    candidate = ws(*before, *tail[:2], ended="limit", close_code=None, dropped=3)
    result = compare(primary, candidate)
    assert result.verdict is Verdict.MATCH
    assert "candidate stopped at a capture limit: how it ended is not compared" in result.notes
    assert "candidate: 3 message(s) past the capture limit not kept" in result.notes
    assert any(n.startswith("2 message(s) near where a side stopped") for n in result.notes)


def _timed(t: float, value: Any) -> Frame:
    return server(value, t)


def test_a_silent_side_at_the_limit_is_missing_what_came_long_before() -> None:
    """Both stopped at the time limit (60 s): the candidate heard nothing after the
    subscription although the primary's messages came long before: they are missing."""
    primary = ws(
        client("go"), *(_timed(1000.0 * i, {"n": i}) for i in range(1, 4)),
        ended="limit", close_code=None, t_end_ms=60_000.0,
    )  # fmt: skip
    candidate = ws(client("go"), ended="limit", close_code=None, t_end_ms=60_050.0)
    assert [d[:2] for d in diffs(compare(primary, candidate))] == [
        ("$ws[0]", Kind.REMOVED), ("$ws[1]", Kind.REMOVED), ("$ws[2]", Kind.REMOVED),
    ]  # fmt: skip


def test_near_the_stop_the_shorter_side_is_tolerated() -> None:
    primary = ws(
        client("go"), _timed(1000.0, {"n": 1}), _timed(59_900.0, {"n": 2}),
        ended="limit", close_code=None, t_end_ms=60_000.0,
    )  # fmt: skip
    candidate = ws(
        client("go"), _timed(1050.0, {"n": 1}), ended="limit", close_code=None, t_end_ms=60_050.0
    )
    result = compare(primary, candidate)
    assert result.verdict is Verdict.MATCH
    assert any(n.startswith("1 message(s) near where a side stopped") for n in result.notes)


def test_a_side_that_closed_is_not_a_shorter_tail() -> None:
    """The primary stopped at the limit, the candidate closed: what it lacks is missing."""
    primary = ws(
        client("go"), _timed(59_900.0, {"n": 1}),
        ended="limit", close_code=None, t_end_ms=60_000.0,
    )  # fmt: skip
    candidate = ws(client("go"), close_code=1000, closed_by="server")
    assert diffs(compare(primary, candidate)) == [("$ws[0]", Kind.REMOVED, {"n": 1}, None)]


def test_limit_still_compares_what_both_heard() -> None:
    primary = ws(client("go"), server({"n": 1}), client("more"), server({"n": 2}))
    candidate = ws(client("go"), server({"n": 9}), client("more"), ended="limit")
    assert diffs(compare(primary, candidate)) == [("$ws[0].n", Kind.VALUE_CHANGED, 1, 9)]


def test_unsent_client_messages_are_noted() -> None:
    primary = ws(client("a"), server({"n": 1}), client("b"), server({"n": 2}))
    candidate = ws(client("a"), server({"n": 1}), client("b", sent=False), ended="error")
    result = compare(primary, candidate)
    assert "candidate: 1 client message(s) never sent (its connection was gone)" in result.notes
    assert diffs(result) == [
        ("$ws.close", Kind.VALUE_CHANGED, 1000, "error"),
        ("$ws[1]", Kind.REMOVED, {"n": 2}, None),
    ]


def test_cut_frames_are_compared_by_size_and_digest() -> None:
    whole = b'{"big":"' + b"x" * 100 + b'"}'

    def cut(digest: str) -> Frame:
        return Frame("server", 0.0, "text", whole[:10].decode(), len(whole), True, digest)

    sha = hashlib.sha256(whole).hexdigest()
    assert compare(ws(cut(sha)), ws(cut(sha))).verdict is Verdict.MATCH
    assert compare(ws(cut(sha)), ws(server(whole.decode()))).verdict is Verdict.MATCH
    assert diffs(compare(ws(cut(sha)), ws(cut("0" * 64)))) == [
        (
            "$ws[0]",
            Kind.VALUE_CHANGED,
            {"length": len(whole), "sha256": sha},
            {"length": len(whole), "sha256": "0" * 64},
        )
    ]


# -- SSE -----------------------------------------------------------------------------


def _stream(n: int) -> list[Frame]:
    return [event({"step": i}, "progress", str(i)) for i in range(n)]


def test_sse_missing_final_event() -> None:
    result = compare(sse(*_stream(5)), sse(*_stream(4)))
    assert diffs(result) == [("$sse[4]", Kind.REMOVED, {"step": 4}, None)]
    assert result.body_kind == "sse"


def test_sse_event_names_ids_and_data() -> None:
    primary = sse(event({"a": 1}, "progress", "1"), event("bye", "end", "2"))
    candidate = sse(event({"a": 2}, "update", "1"), event("bye", "end", "3"))
    assert diffs(compare(primary, candidate)) == [
        ("$sse[0].a", Kind.VALUE_CHANGED, 1, 2),
        ("$sse[0].event", Kind.VALUE_CHANGED, "progress", "update"),
        ("$sse[1].id", Kind.VALUE_CHANGED, "2", "3"),
    ]


def test_sse_ids_are_masked() -> None:
    a, b = "123e4567-e89b-12d3-a456-426614174000", "00000000-e89b-12d3-a456-426614174000"
    rules = parse_rules({"masks": ["uuid"]})
    assert compare(sse(event("x", id=a)), sse(event("x", id=b)), rules).verdict is Verdict.MATCH


def test_sse_at_a_limit_compares_up_to_the_shorter_stream() -> None:
    result = compare(sse(*_stream(5)), sse(*_stream(3), ended="limit"))
    assert result.verdict is Verdict.MATCH
    changed = [*_stream(2), event({"step": 9}, "progress", "2")]
    assert [
        d.path for d in compare(sse(*_stream(5)), sse(*changed, ended="limit")).differences
    ] == ["$sse[2].step"]


def test_sse_ending() -> None:
    result = compare(sse(*_stream(1)), sse(*_stream(1), ended="error"))
    assert diffs(result) == [("$sse.close", Kind.VALUE_CHANGED, "closed", "error")]


# -- mismatched answers --------------------------------------------------------------


def test_one_side_not_a_conversation_is_one_body_difference() -> None:
    result = compare(ws(server("x")), Payload(101, (), b"<html>"))
    assert [(d.path, d.kind) for d in result.differences] == [("$body", Kind.VALUE_CHANGED)]
    assert result.differences[0].primary["stream"] == "websocket"
    assert result.differences[0].candidate["stream"] == "http"
    assert result.body_kind == "websocket"


def test_kinds_differ() -> None:
    result = compare(ws(server("x")), sse(event("x")))
    assert [d.path for d in result.differences] == ["$status", "$header.content-type", "$body"]


def test_unreadable_conversation_is_a_difference_not_an_exception() -> None:
    broken = Payload(101, (), b"{not json", stream="websocket")
    result = compare(ws(server("x")), broken)
    assert [d.path for d in result.differences] == ["$body"]
    assert result.notes[0].startswith("conversation could not be read")
    assert compare(broken, broken).verdict is Verdict.MATCH


# -- bounds --------------------------------------------------------------------------


def _ticks(numbers: Any) -> Payload:
    return ws(*(server(f'{{"type":"tick","n":{n}}}') for n in numbers))


def test_a_long_conversation_is_bounded() -> None:
    n = 100_000
    rules = parse_rules({"max_diffs": 50})
    result = compare(_ticks(range(n)), _ticks(i + (i % 3 == 0) for i in range(n)), rules)
    assert len(result.differences) == 50
    assert result.truncated
    assert f"{n // 3 + 1 - 51} more differing message pair(s) not diffed" in " ".join(result.notes)


def test_one_missing_message_of_many() -> None:
    n = 20_000
    result = compare(_ticks(range(n)), _ticks(i for i in range(n) if i != 15_000))
    assert diffs(result) == [("$ws[15000]", Kind.REMOVED, {"type": "tick", "n": 15_000}, None)]


def test_huge_differing_channels_pair_by_position(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "ALIGN_LIMIT", 4)
    primary = ws(*(server({"n": i}) for i in range(5)))
    candidate = ws(*(server({"n": i + 10}) for i in range(4)))
    result = compare(primary, candidate)
    assert [d.kind for d in result.differences] == [Kind.VALUE_CHANGED] * 4 + [Kind.REMOVED]
    assert result.notes == ("messages: 5 vs 4 too many to line up, paired by position",)


def test_paths_cluster() -> None:
    assert cluster_path("$ws.event[progress][2].progress") == "$ws.event[progress][*].progress"
    assert cluster_path("$ws.event[/admin:progress][0]") == "$ws.event[/admin:progress][*]"
    assert cluster_path("$ws.ack[12].ok") == "$ws.ack[*].ok"
    assert cluster_path("$ws[3].a[1]") == "$ws[*].a[*]"
    assert cluster_path("$sse[4].event") == "$sse[*].event"
    assert cluster_path('$ws.event["123"][0]') == '$ws.event["123"][*]'


def test_compare_conversations_directly() -> None:
    result = compare_conversations(sse(*_stream(2)), sse(*_stream(2)), DEFAULT_RULES)
    assert (result.kind, result.differences, result.notes) == ("sse", [], [])


# -- properties ----------------------------------------------------------------------

_channels = st.sampled_from(["a", "b", "c", None])
_payloads = st.tuples(_channels, json_values)


def _message(seq: int, channel: str | None, value: Any) -> Frame:
    body: dict[str, Any] = {"seq": seq, "v": value}
    if channel is not None:
        body["type"] = channel
    return server(body)


@given(st.lists(st.one_of(_payloads, st.binary(max_size=8), st.text(max_size=8)), max_size=12))
def test_a_conversation_matches_itself(items: list[Any]) -> None:
    frames = [
        binary(item)
        if isinstance(item, bytes)
        else server(item)
        if isinstance(item, str)
        else _message(0, *item)
        for item in items
    ]
    conv = ws(client("hi"), *frames)
    assert compare(conv, conv).verdict is Verdict.MATCH
    socketio = ws(
        *(server(f'42["e{i % 3}",{orjson.dumps(f.data).decode()}]') for i, f in enumerate(frames))
    )
    assert compare(socketio, socketio, socketio=True).verdict is Verdict.MATCH


@given(st.lists(_payloads, max_size=15), st.randoms(use_true_random=False))
def test_interleaving_channels_still_matches(items: list[Any], rnd: random.Random) -> None:
    frames = [_message(seq, *item) for seq, item in enumerate(items)]
    by_channel: dict[Any, list[Frame]] = {}
    for frame, (channel, _) in zip(frames, items, strict=True):
        by_channel.setdefault(channel, []).append(frame)
    # Another interleaving that keeps each channel's own order.
    order = [channel for channel, _ in items]
    rnd.shuffle(order)
    shuffled = [by_channel[channel].pop(0) for channel in order]
    result = compare(ws(*frames), ws(*shuffled))
    assert result.verdict is Verdict.MATCH, result.differences


@given(st.lists(_payloads, min_size=1, max_size=15), st.data())
def test_removing_one_message_is_one_removed(items: list[Any], data: st.DataObject) -> None:
    frames = [_message(seq, *item) for seq, item in enumerate(items)]
    gone = data.draw(st.integers(0, len(frames) - 1))
    result = compare(ws(*frames), ws(*frames[:gone], *frames[gone + 1 :]))
    assert [(d.path, d.kind) for d in result.differences] == [(f"$ws[{gone}]", Kind.REMOVED)]


def test_a_candidate_running_late_at_the_time_limit_is_not_missing_its_last_events() -> None:
    """The same events every 100 ms, the candidate's 300 ms later: at the 2 s limit it has
    heard 3 fewer; they are the not-yet-heard tail, not missing events."""
    primary = sse(
        *(replace(event(i), t_ms=100.0 * i) for i in range(20)),
        ended="limit", t_end_ms=2000.0,
    )  # fmt: skip
    candidate = sse(
        *(replace(event(i), t_ms=300.0 + 100.0 * i) for i in range(17)),
        ended="limit", t_end_ms=2000.0,
    )  # fmt: skip
    result = compare(primary, candidate)
    assert result.verdict is Verdict.MATCH
    assert any(n.startswith("3 message(s) near where a side stopped") for n in result.notes)


def test_a_short_capture_still_finds_a_silent_candidate() -> None:
    primary = sse(
        *(replace(event(i), t_ms=100.0 * i) for i in range(10)),
        ended="limit", t_end_ms=1000.0,
    )  # fmt: skip
    candidate = sse(ended="limit", t_end_ms=1000.0)
    removed = [d for d in compare(primary, candidate).differences if d.kind is Kind.REMOVED]
    assert len(removed) >= 7  # only the last quarter of the capture is tolerated
