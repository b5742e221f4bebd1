"""GoReplay files and the raw HTTP/1.x parser behind them."""

from __future__ import annotations

from pathlib import Path

import pytest

from comparators.model import Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources import gor, read_traffic
from shadow.sources._base import BadEntry
from shadow.sources._http1 import HttpParseError, parse_request, parse_response
from shadow.sources.detect import GOR_SEPARATOR


def test_sample_file(traffic_dir: Path) -> None:
    get, post, slow = read_traffic(str(traffic_dir / "goreplay.gor"))
    assert [r.index for r in (get, post, slow)] == [0, 1, 5]  # record numbers

    assert get.request == Request(
        "GET",
        "/api/items",
        "page=2",
        (("Host", "api.example.com"), ("Accept", "application/json"), ("User-Agent", "curl/8.5.0")),
        b"",
    )
    assert get.url == "http://api.example.com/api/items?page=2"
    assert get.started_at == pytest.approx(1715678493.512)
    assert get.elapsed_ms == 18.5  # the response's latency field, ns -> ms
    assert get.response == Payload(
        200,
        (("Content-Type", "application/json"), ("Content-Length", "26")),
        b'{"items":[21,22],"page":2}',
    )

    assert post.request.method == "POST"
    assert post.request.body == b'{"name":"widget","qty":3}'
    # the original response (type 2), not the replayed 500 (type 3); chunks joined
    assert post.response == Payload(
        201,
        (("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")),
        b'{"id":23,"ok":1}\n',
    )
    assert post.elapsed_ms == 41.0

    assert slow.request.path == "/slow"
    assert slow.response is None
    assert slow.elapsed_ms is None


def gor_file(tmp_path: Path, records: list[bytes], *, end: bytes = GOR_SEPARATOR) -> Path:
    path = tmp_path / "t.gor"
    path.write_bytes(GOR_SEPARATOR.join(records) + end)
    return path


REQ = b"1 id1 1700000000000000000 -1\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n"


def test_request_that_is_not_http(tmp_path: Path) -> None:
    path = gor_file(tmp_path, [b"1 id0 1700000000000000000 -1\nhello there\r\n\r\n", REQ])
    with pytest.raises(InputError, match=r"t\.gor: entry 0: request record does not parse as HTTP"):
        list(read_traffic(str(path)))
    skipped: list[str] = []
    recs = list(read_traffic(str(path), skip_bad=True, on_skip=skipped.append))
    assert [r.request.path for r in recs] == ["/a"]
    assert len(skipped) == 1 and "entry 0" in skipped[0]


def test_truncated_last_record(tmp_path: Path) -> None:
    post = (
        b"1 id2 1700000000000000000 -1\n"
        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345"
    )
    path = gor_file(tmp_path, [REQ, post], end=b"")
    with pytest.raises(InputError, match=r"entry 1: .*5 of its 10 bytes.*cut off"):
        list(read_traffic(str(path)))
    skipped: list[str] = []
    recs = list(read_traffic(str(path), skip_bad=True, on_skip=skipped.append))
    assert [r.request.path for r in recs] == ["/a"]
    assert len(skipped) == 1


def test_old_three_field_headers_and_lf_only(tmp_path: Path) -> None:
    req = b"1 id9 1700000000000000000\nGET /x?y=1 HTTP/1.1\nHost: h\n\n"
    resp = b"2 id9 2500000\nHTTP/1.0 404 Not Found\nContent-Length: 2\n\nno"
    (rec,) = read_traffic(str(gor_file(tmp_path, [req, resp])))
    assert rec.request.query == "y=1"
    assert rec.response == Payload(404, (("Content-Length", "2"),), b"no")
    assert rec.elapsed_ms == 2.5
    assert rec.started_at == 1700000000.0


def test_responses_out_of_order_and_orphans(tmp_path: Path) -> None:
    records = [
        b"2 nobody 1700000000000000000 1\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"1 a 1700000000000000000 -1\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n",
        b"1 b 1700000000100000000 -1\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        b"2 b 1700000000200000000 0\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB",
        b"2 a 1700000000300000000 0\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA",
    ]
    a, b = read_traffic(str(gor_file(tmp_path, records)))
    assert (a.request.path, a.response and a.response.body) == ("/a", b"A")
    assert (b.request.path, b.response and b.response.body) == ("/b", b"B")
    assert a.elapsed_ms == pytest.approx(300.0)  # latency 0: timestamps used instead


# -- raw HTTP/1.x -------------------------------------------------------------------


def test_chunked_with_extensions_and_trailers() -> None:
    raw = (
        b"POST /up HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"4;name=x\r\nabcd\r\n2\r\nef\r\n0\r\nX-Checksum: 1\r\n\r\n"
    )
    method, target, headers, body = parse_request(raw)
    assert (method, target, body) == ("POST", "/up", b"abcdef")
    assert headers == (("Transfer-Encoding", "gzip, chunked"),)


def test_folded_header_and_absolute_target() -> None:
    raw = b"GET http://h:8080/p?q HTTP/1.1\r\nX-Long: one\r\n two\r\n\r\n"
    _, target, headers, _ = parse_request(raw)
    assert target == "http://h:8080/p?q"
    assert headers == (("X-Long", "one two"),)


def test_interim_and_bodiless_responses() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert parse_response(raw) == (200, (("Content-Length", "2"),), b"ok")
    not_modified = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
    assert parse_response(not_modified) == (304, (("Content-Length", "99"),), b"")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
    assert parse_response(head, head_request=True)[2] == b""


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n", "no blank line"),
        (b"GET /\r\n\r\n", "not an HTTP request line"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "bad header line"),
        (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "chunk shorter"),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    ],
)
def test_parse_errors(raw: bytes, message: str) -> None:
    with pytest.raises(HttpParseError, match=message):
        parse_request(raw)


def test_records_over_the_size_limit_are_passed_over(tmp_path: Path) -> None:
    body = b"x" * 5000
    big_request = (
        b"1 id3 1700000000000000000 -1\nPOST /big HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"
    )
    big_response = b"2 id4 1700000000000000001 7\nHTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
    records = [
        REQ,
        big_request + body,
        b"1 id4 1700000000000000000 -1\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        big_response + body,
        b"1 id5 1700000000000000000 -1\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n",
    ]
    path = gor_file(tmp_path, records)
    items = list(gor.read(str(path), max_entry_bytes=1000))
    bad = [i for i in items if isinstance(i, BadEntry)]
    assert bad == [
        BadEntry(
            1, "request record larger than 1000 bytes, the most one entry may take; passed over"
        ),
        BadEntry(
            3,
            "response to entry 2 larger than 1000 bytes, the most one entry may take; passed over",
        ),
    ]
    recs = [i for i in items if not isinstance(i, BadEntry)]
    assert [(r.request.path, r.response) for r in recs] == [
        ("/a", None),
        ("/b", None),
        ("/c", None),
    ]


def test_a_file_without_separators_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "t.gor"
    path.write_bytes(REQ + b"x" * 300_000)  # one endless record
    (bad,) = gor.read(str(path), max_entry_bytes=100_000)
    assert isinstance(bad, BadEntry) and bad.index == 0
    assert bad.reason.startswith("request record larger than 100000 bytes")


def test_requests_waiting_for_responses_are_bounded_in_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def request(name: str) -> bytes:
        return f"1 {name} 1700000000000000000 -1\nGET /{name} HTTP/1.1\r\nHost: h\r\n\r\n".encode()

    def response(name: str) -> bytes:
        return (
            f"2 {name} 1700000000100000000 7\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".encode()
        )

    records = [request("a"), request("b"), request("c"), response("a"), response("c")]
    path = gor_file(tmp_path, records)
    held = len(request("a").partition(b"\n")[2])  # the HTTP bytes each waiting one holds
    monkeypatch.setattr(gor, "MAX_PENDING_BYTES", 2 * held)
    a, b, c = read_traffic(str(path))
    # the third waiting request is one too many: the first goes out without an answer
    assert (a.request.path, a.response) == ("/a", None)
    assert (b.request.path, b.response) == ("/b", None)
    assert c.request.path == "/c" and c.response is not None
