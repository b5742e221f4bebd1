"""The report shows a WebSocket conversation or an event stream side by side.

End to end: conversations go through the real evaluator (comparators.conversation)
into a real store, and the rendered HTML is read with BeautifulSoup. The view model
(reports/conversation.py) is also checked alone, on differences the real comparator
gives (Socket.IO paths, which the pipeline's evaluator does not produce yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from bs4 import BeautifulSoup, Tag

from comparators import compare
from comparators.envelope import SSE, WEBSOCKET, Conversation, Frame, encode
from comparators.model import Payload
from reports import render_report
from reports.conversation import DISPLAY_CHARS, HARD, SOFT, ConversationView, conversation_view
from shadow.config.loader import parse_config
from shadow.model import BackendResponse, Exchange
from shadow.pipeline.evaluate import evaluate
from shadow.store.rows import AcceptedRow
from shadow.store.writer import Run, StoreWriter
from tests.store_builder import T0, Call, exchange

WS = "GET /ws/chat"
EVENTS = "GET /events"
BROKEN = "GET /ws/broken"
XSS = "<script>alert(1)</script>"
LONG = "x" * 9000  # longer than the report's body cap (8192): read whole all the same
CONFIG: dict[str, Any] = {
    "accepted": [{"endpoint": WS, "path": "$ws[*].ts", "reason": "clock"}],
}


def text(side: str, t: float, data: str, **kw: Any) -> Frame:
    return Frame(side, t, "text", data, len(data.encode()), **kw)


def event(data: str, name: str = "message", id: str | None = None) -> Frame:
    return Frame("server", 0.0, "event", data, len(data.encode()), event=name, id=id)


def ws(frames: Sequence[Frame], code: int | None = 1000, by: str = "client") -> Payload:
    conv = Conversation(WEBSOCKET, tuple(frames), code, "", by)
    return Payload(101, (("upgrade", "websocket"),), encode(conv), stream=WEBSOCKET)


def sse(frames: Sequence[Frame]) -> Payload:
    conv = Conversation(SSE, tuple(frames))
    return Payload(200, (("content-type", "text/event-stream"),), encode(conv), stream=SSE)


def chat(n: int, bye: bool, stamp: str, code: int) -> Payload:
    frames = [
        text("client", 0, '{"type":"join","room":"lobby"}'),
        text("server", 1, '{"type":"joined","room":"lobby"}'),
        text("server", 2, orjson.dumps({"type": "note", "text": XSS}).decode()),
        text("server", 3, orjson.dumps({"type": "stamp", "ts": stamp}).decode()),
        text("server", 4, orjson.dumps({"type": "blob", "data": LONG}).decode()),
        text("client", 10, '{"type":"say","text":"hello"}'),
        text("server", 11, orjson.dumps({"type": "echo", "text": "hello", "n": n}).decode()),
    ]
    if bye:
        frames.append(text("server", 12, '{"type":"bye"}'))
    return ws(frames, code)


PRIMARY_EVENTS = [event("first"), event("tick 1", "tick", "1")]
CANDIDATE_EVENTS = [event("first"), event("tick 2", "tick", "1"), event("extra")]


def _answered(call: Call, i: int, primary: Payload, candidate: Payload) -> Exchange:
    ex = exchange(i, call)
    return replace(
        ex, primary=BackendResponse(primary, 10.0), candidate=BackendResponse(candidate, 12.0)
    )


def build_store(path: Path) -> str:
    """Three real-time exchanges judged by the real evaluator and stored by StoreWriter."""
    cfg = parse_config(CONFIG)
    exchanges = [
        _answered(Call(WS, {}, {}, path="/ws/chat"), 0,
                  chat(1, True, "09:00", 1000), chat(2, False, "09:01", 1011)),
        _answered(Call(EVENTS, {}, {}, path="/events"), 1,
                  sse(PRIMARY_EVENTS), sse(CANDIDATE_EVENTS)),
        _answered(Call(BROKEN, {}, {}, path="/ws/broken"), 2,
                  Payload(101, (), b'{"not": "a conversation"}', stream=WEBSOCKET),
                  Payload(101, (), b'{"not": "one either"}', stream=WEBSOCKET)),
    ]  # fmt: skip
    writer = StoreWriter(str(path))
    writer.run_changed(Run("r1", "proxy", T0, "http://p.test", "http://c.test"))
    writer.add_accepted(
        [AcceptedRow("r1", i + 1, a.endpoint, a.path, a.kind, a.reason)
         for i, a in enumerate(cfg.accepted)]
    )  # fmt: skip
    for ex in exchanges:
        result = evaluate(ex, cfg, "r1", 64 * 1024, "differ")
        writer.add(result.row, result.differences, result.noise)
    writer.flush()
    return str(path)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, BeautifulSoup]:
    tmp = tmp_path_factory.mktemp("conversation")
    db = build_store(tmp / "shadow.duckdb")
    out = tmp / "report.html"
    render_report(db, str(out))
    html = out.read_text(encoding="utf-8")
    return html, BeautifulSoup(html, "html.parser")


def section(soup: BeautifulSoup, endpoint: str) -> Tag:
    found = soup.find("section", attrs={"data-endpoint": endpoint})
    assert isinstance(found, Tag), endpoint
    return found


def table(soup: BeautifulSoup, endpoint: str) -> Tag:
    found = section(soup, endpoint).find("table", class_="conversation")
    assert isinstance(found, Tag)
    return found


def turn(t: Tag, n: int) -> Tag:
    found = t.find("tbody", attrs={"data-turn": str(n)})
    assert isinstance(found, Tag), n
    return found


def row_of(body: Tag, needle: str) -> Tag:
    """The row of a turn whose primary message holds `needle`."""
    for tr in body.find_all("tr"):
        primary = tr.find("td", class_="primary")
        if primary is not None and needle in primary.get_text():
            return tr
    raise AssertionError(f"no row with {needle!r}")


def classes(cell: Tag | None) -> list[str]:
    assert isinstance(cell, Tag)
    return list(cell.get("class") or [])


def test_websocket_sample_is_a_conversation_table(report: tuple[str, BeautifulSoup]) -> None:
    _, soup = report
    t = table(soup, WS)
    assert "websocket" in classes(t)
    heads = [th.get_text(strip=True) for th in t.find("thead").find_all("th")]  # type: ignore[union-attr]
    assert heads == ["Client", "Primary", "Candidate"]
    # Instead of the bodies, not beside them.
    assert section(soup, WS).find("pre", class_="body") is None
    # One tbody a turn: one per client message (nothing came before the first).
    assert [b["data-turn"] for b in t.find_all("tbody", class_="turn")] == ["0", "1"]


def test_client_message_heads_its_turn_and_both_sides_follow(
    report: tuple[str, BeautifulSoup],
) -> None:
    _, soup = report
    t = table(soup, WS)
    first, second = turn(t, 0), turn(t, 1)
    client = first.find("td", class_="client")
    assert isinstance(client, Tag)
    assert '"type":"join"' in client.get_text()
    assert client["rowspan"] == str(len(first.find_all("tr")))
    assert '"type":"say"' in second.find("td", class_="client").get_text()  # type: ignore[union-attr]
    joined = row_of(first, '"type":"joined"')
    assert '"type":"joined"' in joined.find("td", class_="candidate").get_text()  # type: ignore[union-attr]
    echo = row_of(second, '"type":"echo"')
    assert '"n":1' in echo.find("td", class_="primary").get_text()  # type: ignore[union-attr]
    assert '"n":2' in echo.find("td", class_="candidate").get_text()  # type: ignore[union-attr]
    # Messages of the first turn are not in the second, and the other way round.
    assert '"type":"echo"' not in first.get_text()
    assert '"type":"joined"' not in second.get_text()


def test_differing_messages_are_highlighted(report: tuple[str, BeautifulSoup]) -> None:
    _, soup = report
    t = table(soup, WS)
    echo = row_of(turn(t, 1), '"type":"echo"')
    assert HARD in classes(echo.find("td", class_="primary"))
    assert HARD in classes(echo.find("td", class_="candidate"))
    assert "$ws[4].n" in echo.find("td", class_="primary").get_text()  # type: ignore[union-attr]
    # An accepted difference: the soft class, as the body view marks it.
    stamp = row_of(turn(t, 0), '"type":"stamp"')
    assert SOFT in classes(stamp.find("td", class_="primary"))
    assert SOFT in classes(stamp.find("td", class_="candidate"))
    # Equal messages are not.
    joined = row_of(turn(t, 0), '"type":"joined"')
    assert not {HARD, SOFT} & set(classes(joined.find("td", class_="primary")))


def test_missing_message_is_marked(report: tuple[str, BeautifulSoup]) -> None:
    _, soup = report
    bye = row_of(turn(table(soup, WS), 1), '"type":"bye"')
    assert HARD in classes(bye.find("td", class_="primary"))
    missing = bye.find("td", class_="candidate")
    assert {"missing", HARD} <= set(classes(missing))
    assert "missing" in missing.get_text()  # type: ignore[union-attr]


def test_how_each_side_ended_is_at_the_bottom(report: tuple[str, BeautifulSoup]) -> None:
    _, soup = report
    foot = table(soup, WS).find("tfoot")
    assert isinstance(foot, Tag)
    primary, candidate = foot.find("td", class_="primary"), foot.find("td", class_="candidate")
    assert "closed 1000 by client" in primary.get_text()  # type: ignore[union-attr]
    assert "closed 1011 by client" in candidate.get_text()  # type: ignore[union-attr]
    assert HARD in classes(primary) and HARD in classes(candidate)


def test_message_text_is_escaped(report: tuple[str, BeautifulSoup]) -> None:
    html, soup = report
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    note = row_of(turn(table(soup, WS), 0), '"type":"note"')
    assert XSS in note.find("td", class_="primary").get_text()  # type: ignore[union-attr]
    assert note.find("script") is None


def test_long_message_is_cut_for_display(report: tuple[str, BeautifulSoup]) -> None:
    _, soup = report
    blob = row_of(turn(table(soup, WS), 0), '"type":"blob"')
    cell = blob.find("td", class_="primary")
    assert isinstance(cell, Tag)
    marker = cell.find(class_="cut")
    assert isinstance(marker, Tag)
    whole = len(orjson.dumps({"type": "blob", "data": LONG}))
    assert f"{whole - DISPLAY_CHARS:,} more characters" in marker.get_text()
    assert LONG not in cell.get_text()


def test_event_stream_side_by_side(report: tuple[str, BeautifulSoup]) -> None:
    _, soup = report
    t = table(soup, EVENTS)
    assert "sse" in classes(t)
    assert t.find("th", class_="client") is None and t.find("td", class_="client") is None
    body = turn(t, -1)
    first = row_of(body, "first")
    assert "first" in first.find("td", class_="candidate").get_text()  # type: ignore[union-attr]
    tick = row_of(body, "tick 1")
    assert "event tick · id 1" in tick.get_text()
    assert "tick 2" in tick.find("td", class_="candidate").get_text()  # type: ignore[union-attr]
    assert HARD in classes(tick.find("td", class_="primary"))
    # The candidate's extra event: the primary's cell is missing, marked.
    rows = body.find_all("tr")
    extra = [tr for tr in rows if "extra" in tr.get_text()]
    assert len(extra) == 1
    assert {"missing", HARD} <= set(classes(extra[0].find("td", class_="primary")))
    assert HARD in classes(extra[0].find("td", class_="candidate"))
    assert "stream ended" in t.find("tfoot").get_text()  # type: ignore[union-attr]


def test_undecodable_conversation_falls_back_to_the_bodies(
    report: tuple[str, BeautifulSoup],
) -> None:
    _, soup = report
    s = section(soup, BROKEN)
    assert s.find("table", class_="conversation") is None
    bodies = s.find_all("pre", class_="body")
    assert len(bodies) == 2
    assert "not a readable conversation" in bodies[0].get_text()


# -- the view model alone ------------------------------------------------------------------


def _differences(a: Payload, b: Payload, socketio: bool = False) -> list[dict[str, Any]]:
    """The comparator's differences as the report reads them (values as JSON text)."""
    return [
        {
            "path": d.path,
            "kind": d.kind.value,
            "status": "real",
            "primary_value": orjson.dumps(d.primary).decode(),
            "candidate_value": orjson.dumps(d.candidate).decode(),
        }
        for d in compare(a, b, socketio=socketio).differences
    ]


def view(a: Payload, b: Payload, socketio: bool = False, **kw: Any) -> ConversationView:
    diffs = kw.pop("differences", None)
    if diffs is None:
        diffs = _differences(a, b, socketio)
    out = conversation_view(
        a.stream, a.body.decode(), b.body.decode(), diffs, socketio=socketio, **kw
    )
    assert out is not None
    return out


def rows(v: ConversationView) -> list[tuple[str | None, str, str, str, str]]:
    """(client, primary text, its css, candidate text, its css); "-" for missing."""
    out = []
    for t in v.turns:
        for r in t.rows:
            p, c = r.primary, r.candidate
            out.append(
                (
                    t.client.text if t.client else None,
                    p.message.text if p.message else "-",
                    p.message.css if p.message else p.css,
                    c.message.text if c.message else "-",
                    c.message.css if c.message else c.css,
                )
            )
    return out


def test_same_index_for_a_changed_and_an_added_message() -> None:
    # `$ws[3]` VALUE_CHANGED is the primary's 4th message, `$ws[3]` ADDED the candidate's.
    a = ws(
        [
            text("client", 0, "hi"),
            text("server", 1, "a"),
            text("server", 2, "b"),
            text("client", 3, "more"),
            text("server", 4, "x"),
            text("server", 5, "y"),
        ]
    )
    b = ws([text("client", 0, "hi"), text("server", 1, "a"),
            text("client", 3, "more"), text("server", 4, "x"), text("server", 5, "z"),
            text("server", 6, "w")])  # fmt: skip
    assert rows(view(a, b)) == [
        ("hi", "a", "", "a", ""),
        ("hi", "b", HARD, "-", HARD),
        ("more", "x", "", "x", ""),
        ("more", "y", HARD, "z", HARD),
        ("more", "-", HARD, "w", HARD),
    ]


def test_messages_paired_by_channel_within_a_turn() -> None:
    # Order across channels is no difference: each message is shown beside its own kind.
    a = ws(
        [
            text("client", 0, "go"),
            text("server", 1, '{"type":"a","n":1}'),
            text("server", 2, '{"type":"b","n":1}'),
        ]
    )
    b = ws([text("client", 0, "go"), text("server", 1, '{"type":"b","n":2}'),
            text("server", 2, '{"type":"a","n":1}')])  # fmt: skip
    assert rows(view(a, b)) == [
        ("go", '{"type":"a","n":1}', "", '{"type":"a","n":1}', ""),
        ("go", '{"type":"b","n":1}', HARD, '{"type":"b","n":2}', HARD),
    ]


def test_socketio_paths_point_at_their_packets() -> None:
    a = ws(
        [
            text("server", 0, '0{"sid":"1"}'),
            text("server", 1, '40{"sid":"x"}'),
            text("client", 2, '42["go"]'),
            text("server", 3, '42["progress",{"n":1}]'),
            text("server", 4, "2"),
            text("server", 5, '42["progress",{"n":2}]'),
            text("server", 6, '42/admin,["x",1]'),
            text("server", 7, '431["ok"]'),
        ]
    )
    b = ws([text("server", 0, '0{"sid":"2"}'), text("server", 1, '40{"sid":"y"}'),
            text("client", 2, '42["go"]'), text("server", 3, '42["progress",{"n":1}]'),
            text("server", 4, '42["progress",{"n":3}]'), text("server", 5, '42/admin,["x",2]'),
            text("server", 6, '431["no"]')])  # fmt: skip
    v = view(a, b, socketio=True)
    assert rows(v) == [
        (None, '40{"sid":"x"}', "", '40{"sid":"y"}', ""),
        ('42["go"]', '42["progress",{"n":1}]', "", '42["progress",{"n":1}]', ""),
        ('42["go"]', '42["progress",{"n":2}]', HARD, '42["progress",{"n":3}]', HARD),
        ('42["go"]', '42/admin,["x",1]', HARD, '42/admin,["x",2]', HARD),
        ('42["go"]', '431["ok"]', HARD, '431["no"]', HARD),
    ]
    second = v.turns[1].rows[1].primary.message
    assert second is not None
    assert second.label == "$ws.event[progress][1]"
    assert [m.path for m in second.marks] == ["$ws.event[progress][1].n"]
    assert any("3 Engine.IO transport frames" in n for n in v.notes)


def test_reordered_message_marks_both_places() -> None:
    a = sse([event("1"), event("2"), event("3")])
    b = sse([event("2"), event("3"), event("1")])
    diffs = _differences(a, b)
    assert [(d["path"], d["kind"]) for d in diffs] == [("$sse[0]", "reordered")]
    v = view(a, b, differences=diffs)
    assert [r[1] for r in rows(v) if r[2]] == ["1"]
    assert [r[3] for r in rows(v) if r[4]] == ["1"]


def test_tolerated_difference_is_soft_and_real_wins() -> None:
    a = ws([text("server", 0, '{"a":1,"b":1}')])
    b = ws([text("server", 0, '{"a":2,"b":2}')])
    diffs = _differences(a, b)
    assert len(diffs) == 2
    soft = [{**d, "status": "noise"} for d in diffs]
    assert rows(view(a, b, differences=soft))[0][2] == SOFT
    mixed = [soft[0], diffs[1]]
    assert rows(view(a, b, differences=mixed))[0][2] == HARD


def test_cut_store_and_unkept_messages_are_said() -> None:
    a = ws([text("server", 0, "a")])
    b = ws([text("server", 0, "b")])
    diffs = [{"path": "$ws[7].x", "kind": "value_changed", "status": "real"}]
    v = view(a, b, differences=diffs, cut=(True, False))
    assert any("primary's stored conversation was cut" in n for n in v.notes)
    assert any("1 differences point at messages the store did not keep" in n for n in v.notes)


def test_not_a_conversation_is_none() -> None:
    assert conversation_view(WEBSOCKET, '{"kind": "websocket", "fr', "{}", []) is None
    assert conversation_view(WEBSOCKET, None, None, []) is None
    body = encode(Conversation(SSE, ()))
    assert conversation_view("json", body.decode(), body.decode(), []) is None
    assert conversation_view(WEBSOCKET, body.decode(), body.decode(), []) is None  # kind differs


def test_added_inside_a_message_is_the_primary_s_message() -> None:
    # `$ws[0].b` ADDED: a member the candidate's version of the primary's message 0 has.
    a = ws([text("server", 0, '{"a":1}'), text("server", 1, '{"z":1}')])
    b = ws([text("server", 0, '{"a":1,"b":2}'), text("server", 1, '{"z":1}')])
    diffs = _differences(a, b)
    assert [(d["path"], d["kind"]) for d in diffs] == [("$ws[0].b", "added")]
    assert rows(view(a, b, differences=diffs)) == [
        (None, '{"a":1}', HARD, '{"a":1,"b":2}', HARD),
        (None, '{"z":1}', "", '{"z":1}', ""),
    ]


def test_socketio_binary_attachments_belong_to_their_packet() -> None:
    blob = Frame("server", 2, "binary", "AAEC", 3)
    a = ws(
        [
            text("server", 1, '451-["file",{"_placeholder":true,"num":0}]'),
            blob,
            text("server", 3, '42["done",1]'),
        ]
    )
    b = ws([text("server", 1, '451-["file",{"_placeholder":true,"num":0}]'), blob,
            text("server", 3, '42["done",2]')])  # fmt: skip
    diffs = _differences(a, b, socketio=True)
    assert [d["path"] for d in diffs] == ["$ws.event[done][0]"]
    v = view(a, b, socketio=True, differences=diffs)
    assert [(r[1], r[2]) for r in rows(v)] == [
        ('451-["file",{"_placeholder":true,"num":0}]', ""),
        ("binary, base64: AAEC", ""),
        ('42["done",1]', HARD),
    ]
    assert v.turns[0].rows[0].primary.message is not None
    assert v.turns[0].rows[0].primary.message.label == "$ws.event[file][0]"


def test_an_answer_that_came_after_the_next_client_message_is_no_missing_message() -> None:
    """Timing moves an answer across a client message on one side: the comparator finds
    no difference, and the view pairs it where the primary had it, across the turn."""
    a = ws([text("client", 0, "a"), text("server", 5, "A"), text("client", 10, "b"),
            text("server", 15, "B")])  # fmt: skip
    b = ws([text("client", 0, "a"), text("client", 10, "b"), text("server", 12, "A"),
            text("server", 15, "B")])  # fmt: skip
    assert compare(a, b).differences == ()
    v = view(a, b)
    cells = [(r.primary, r.candidate) for t in v.turns for r in t.rows]
    assert not any(p.missing or c.missing for p, c in cells)
    shown = [(p.message.text if p.message else None, c.message.text if c.message else None)
             for p, c in cells]  # fmt: skip
    assert shown == [("A", "A"), ("B", "B")]
