"""The conversation format: encoding, and event streams read into events."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comparators.envelope import (
    Conversation,
    Frame,
    decode,
    encode,
    frame,
    parse_sse,
    sse_conversation,
)
from comparators.errors import DecodeError


def test_round_trip_keeps_everything() -> None:
    conv = Conversation(
        "websocket",
        (
            Frame("client", 1.5, "text", "hi", 2),
            Frame("server", 2.25, "binary", "AAE=", 2, cut=True, sha256="ab" * 32, sent=True),
            Frame("client", 3.0, "text", "late", 4, sent=False),
        ),
        1001,
        "going away",
        "server",
        "limit",
        7,
        60_000.5,
    )
    assert decode(encode(conv)) == conv


@pytest.mark.parametrize(
    "body", [b"", b"[]", b'{"kind": "http", "frames": []}', b'{"kind": "sse"}', b"\xff"]
)
def test_what_is_no_conversation_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(body)


def test_a_message_over_the_limit_keeps_its_start_and_digest() -> None:
    f = frame("server", 0.0, b"x" * 10, True, 4)
    assert (f.data, f.size, f.cut, len(f.sha256)) == ("xxxx", 10, True, 64)
    assert frame("server", 0.0, b"\xff\x00", True, 10).kind == "binary"  # not UTF-8 after all


def test_events_per_the_whatwg_rules() -> None:
    text = (
        ": a comment\n\nretry: 10\n\n"
        'event: progress\ndata: {"p": 1}\nid: 7\n\n'
        "data: two\r\ndata: lines\r\n\r\n"
        "data:no space\r\r"
        "data: unfinished"
    )
    events, cut = parse_sse(text)
    assert not cut
    assert [(e.event, e.data, e.id) for e in events] == [
        ("progress", '{"p": 1}', "7"),
        ("message", "two\nlines", "7"),  # the last id stays
        ("message", "no space", "7"),
    ]
    assert parse_sse(text, max_events=1) == (events[:1], True)


def test_each_event_gets_the_time_of_the_chunk_that_ended_it() -> None:
    chunks = [
        (b"data: a\n\ndata: b", 5.0),
        (b"\n\n", 250.0),
        (b"data: \xc3\xa9\n\ndata: d\n\n", 900.0),
    ]
    raw, times, total = b"", [], 0
    for data, t in chunks:
        raw += data
        total += len(data)
        times.append((total, t))
    conv = sse_conversation((), raw, "closed", 1 << 20, None, times, 1000.0)
    assert [(e.data, e.t_ms) for e in conv.frames] == [
        ("a", 5.0), ("b", 250.0), ("é", 900.0), ("d", 900.0),
    ]  # fmt: skip
    assert conv.t_end_ms == 1000.0
    # Content-encoded, the offsets are not the text's: no times rather than wrong ones.
    zipped = sse_conversation((("content-encoding", "gzip"),), gzip.compress(raw), "closed",
                              1 << 20, None, times)  # fmt: skip
    assert [e.t_ms for e in zipped.frames] == [0.0] * 4


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n"), max_size=8)))
def test_any_data_lines_come_back(lines: list[str]) -> None:
    text = "".join(f"data: {line}\n\n" for line in lines)
    events, _ = parse_sse(text)
    assert [e.data for e in events] == lines


def test_a_compressed_stream_cut_where_we_stopped_is_read_as_far_as_it_came() -> None:
    packer = __import__("zlib").compressobj(wbits=31)  # gzip, flushed per event
    raw = b"".join(
        packer.compress(f"data: {i}\n\n".encode()) + packer.flush(2) for i in range(5)
    )  # no gzip trailer: cut off
    conv = sse_conversation((("content-encoding", "gzip"),), raw, "limit", 1 << 20)
    assert [e.data for e in conv.frames] == ["0", "1", "2", "3", "4"] and conv.ended == "limit"
    broken = sse_conversation((("content-encoding", "br"),), b"\x00junk", "closed", 1 << 20)
    assert broken.frames == () and broken.ended == "error"
