"""Bodies over the harness's size limit are compared by length and SHA-256, honestly."""

from __future__ import annotations

from comparators import compare
from comparators.model import Kind, Payload
from shadow.model import BodyBuffer, capped_payload

HEADERS = (("content-type", "application/json"),)


def big(fill: bytes, n: int = 100_000) -> bytes:
    return b'{"x": "' + fill * n + b'"}'


def test_equal_cut_bodies_match() -> None:
    a = capped_payload(200, HEADERS, big(b"a"), 1000)
    b = capped_payload(200, HEADERS, big(b"a"), 1000)
    assert a.cut and len(a.body) == 1000 and a.full_size == len(big(b"a"))
    result = compare(a, b)
    assert result.differences == ()
    assert any("SHA-256" in n for n in result.notes)


def test_cut_bodies_differing_after_the_kept_prefix_differ() -> None:
    same_start = b'{"x": "' + b"a" * 5000
    a = capped_payload(200, HEADERS, same_start + b'1"}', 1000)
    b = capped_payload(200, HEADERS, same_start + b'2"}', 1000)
    assert a.body == b.body  # the kept bytes alone would call them equal
    (diff,) = compare(a, b).differences
    assert diff.path == "$body" and diff.kind == Kind.VALUE_CHANGED
    assert diff.primary["sha256"] != diff.candidate["sha256"]


def test_one_side_cut_differs_from_a_whole_body() -> None:
    a = capped_payload(200, HEADERS, big(b"a"), 1000)
    b = Payload(200, HEADERS, b'{"x": "a"}')
    (diff,) = compare(a, b).differences
    assert diff.primary["length"] == len(big(b"a")) and diff.candidate["length"] == 10


def test_the_same_bytes_whole_on_one_side_and_cut_on_the_other_match() -> None:
    # Replay without --primary: the recorded answer may be whole, the candidate's cut.
    whole = Payload(200, HEADERS, big(b"a"))
    cut = capped_payload(200, HEADERS, big(b"a"), 1000)
    assert compare(whole, cut).differences == ()
    assert compare(cut, whole).differences == ()


def test_buffer_keeps_limit_bytes_and_digests_the_whole_stream() -> None:
    body = bytes(range(256)) * 40  # 10,240 bytes
    whole = capped_payload(200, (), body, 4096)
    buf = BodyBuffer(4096)
    for i in range(0, len(body), 1000):
        buf.add(body[i : i + 1000])
    streamed = buf.payload(200, ())
    assert streamed == whole
    assert streamed.body == body[:4096] and streamed.full_size == len(body)


def test_buffer_under_the_limit_is_whole_and_not_cut() -> None:
    buf = BodyBuffer(100)
    buf.add(b"abc")
    buf.add(b"")
    buf.add(b"d" * 97)
    p = buf.payload(204, ())
    assert not p.cut and p.body == b"abc" + b"d" * 97 and p.sha256 == ""
    assert p.same_body(Payload(204, (), b"abc" + b"d" * 97))
