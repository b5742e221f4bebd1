"""HAR reading: a Chrome DevTools export, mitmproxy's own exporter, damaged files."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import tflow, tutils

from comparators.model import Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources import Recorded, _jsontext, har, read_traffic
from shadow.sources._base import BadEntry

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, whose pyasn1 use warns at import time (not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons.savehar import SaveHar

PNG_PREFIX = b"\x89PNG\r\n\x1a\n"


def read_all(path: Path, **kwargs: Any) -> list[Recorded]:
    return list(read_traffic(str(path), **kwargs))


# -- Chrome DevTools ----------------------------------------------------------------


def test_chrome_export(traffic_dir: Path) -> None:
    recs = read_all(traffic_dir / "chrome.har")
    # 5 entries; the data: URL (entry 3) is not network traffic and is passed over
    assert [r.index for r in recs] == [0, 1, 2, 4]

    get = recs[0]
    assert get.request == Request(
        "GET",
        "/api/items",
        "page=2&sort=name",
        (
            ("accept", "application/json"),
            ("accept-encoding", "gzip, deflate, br, zstd"),
            ("accept-language", "en-GB,en;q=0.9"),
            (
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
                "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            ),
        ),
        b"",
    )
    assert get.url == "https://app.example.com/api/items?page=2&sort=name"
    assert get.started_at == pytest.approx(1715678493.512)
    assert get.elapsed_ms == 48.213
    # DevTools gives the brotli response decoded: the body stays decoded and the
    # content-encoding/content-length headers that no longer fit are dropped.
    assert get.response == Payload(
        200,
        (
            ("cache-control", "no-store"),
            ("content-type", "application/json; charset=utf-8"),
            ("date", "Tue, 14 May 2024 09:21:33 GMT"),
            ("vary", "Accept-Encoding"),
        ),
        b'{"items":[{"id":21,"name":"bolt"},{"id":22,"name":"nut"}],"page":2}',
    )


def test_chrome_post_and_base64(traffic_dir: Path) -> None:
    post, png, failed = read_all(traffic_dir / "chrome.har")[1:]
    assert post.request.method == "POST"
    assert post.request.path == "/api/items"
    assert post.request.body == b'{"name":"widget","qty":3}'
    assert post.request.header("content-type") == "application/json"
    assert post.request.header(":authority") is None  # HTTP/2 pseudo-headers dropped
    assert post.response is not None
    assert post.response.status == 201
    assert post.response.body == b'{"id":23,"name":"widget","qty":3}'
    assert post.response.header("location") == "/api/items/23"

    assert png.response is not None
    assert png.response.body.startswith(PNG_PREFIX)
    assert len(png.response.body) == int(png.response.header("content-length") or 0) == 70

    assert failed.response is None  # status 0 + net::ERR_CONNECTION_REFUSED
    assert failed.url == "http://metrics.example.com:8080/ping?t=1"
    assert failed.request.query == "t=1"
    assert failed.elapsed_ms == 3.4


# -- mitmproxy's own HAR exporter -------------------------------------------------------


def mitmproxy_flows() -> list[http.HTTPFlow]:
    get = tflow.tflow(resp=True)
    post = tflow.tflow(
        req=tutils.treq(
            method=b"POST",
            path=b"/api/items?dry=1",
            headers=http.Headers(((b"content-type", b"application/json"),)),
            content=b'{"a": 1}',
        ),
        resp=tutils.tresp(
            status_code=201,
            headers=http.Headers(((b"content-type", b"application/json"),)),
            content=b'{"id": 7}',
        ),
    )
    text = b"hello " * 50
    gz = tflow.tflow(
        req=tutils.treq(path=b"/big", content=b""),
        resp=tutils.tresp(
            headers=http.Headers(
                (
                    (b"content-type", b"text/plain"),
                    (b"content-encoding", b"gzip"),
                    (b"content-length", str(len(gzip.compress(text))).encode()),
                )
            ),
            content=b"",
        ),
    )
    assert gz.response is not None
    gz.response.raw_content = gzip.compress(text)
    binary = tflow.tflow(
        req=tutils.treq(path=b"/bin", content=b""),
        resp=tutils.tresp(
            headers=http.Headers(((b"content-type", b"application/octet-stream"),)),
            content=bytes(range(255, -1, -1)),
        ),
    )
    failed = tflow.tflow(err=True)
    return [get, post, gz, binary, failed]


@pytest.fixture
def mitmproxy_har(tmp_path: Path) -> Path:
    path = tmp_path / "mitmproxy-export.har"
    path.write_text(json.dumps(SaveHar().make_har(mitmproxy_flows()), indent=4))
    return path


def test_mitmproxy_export(mitmproxy_har: Path) -> None:
    get, post, gz, binary, failed = read_all(mitmproxy_har)
    assert [r.index for r in (get, post, gz, binary, failed)] == [0, 1, 2, 3, 4]

    assert get.request == Request(
        "GET", "/path", "", (("header", "qvalue"), ("content-length", "7")), b""
    )  # mitmproxy writes postData only for POST/PUT/PATCH
    assert get.url == "http://address:22/path"
    assert get.started_at == 946681200.0
    assert get.response == Payload(
        200, (("header-response", "svalue"), ("content-length", "7")), b"message"
    )

    assert post.request.method == "POST"
    assert (post.request.path, post.request.query) == ("/api/items", "dry=1")
    assert post.request.body == b'{"a": 1}'
    assert post.response == Payload(201, (("content-type", "application/json"),), b'{"id": 7}')

    # mitmproxy exports the decoded text: the gzip headers are dropped to match it
    assert gz.response == Payload(200, (("content-type", "text/plain"),), b"hello " * 50)
    assert binary.response is not None
    assert binary.response.body == bytes(range(255, -1, -1))  # exported as base64
    assert failed.response is None


# -- damaged and odd files -------------------------------------------------------------


def har_with(entries: list[Any], indent: int | None = None, **log: Any) -> str:
    doc = {"log": {"version": "1.2", "creator": {"name": "t"}, **log, "entries": entries}}
    return json.dumps(doc, indent=indent)


def entry(url: str | None = "http://h/a", **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "GET", "headers": []}
    if url is not None:
        request["url"] = url
    return {
        "startedDateTime": "2024-01-01T00:00:00Z",
        "time": 1,
        "request": request,
        "response": {"status": 204, "headers": [], "content": {}},
        **extra,
    }


def test_entry_without_url(tmp_path: Path) -> None:
    path = tmp_path / "nourl.har"
    path.write_text(har_with([entry("http://h/0"), entry(None), entry("http://h/2")]))
    with pytest.raises(InputError) as info:
        read_all(path)
    assert str(info.value) == f"{path}: entry 1: request has no url"

    skipped: list[str] = []
    recs = read_all(path, skip_bad=True, on_skip=skipped.append)
    assert [r.index for r in recs] == [0, 2]
    assert [r.request.path for r in recs] == ["/0", "/2"]
    assert skipped == [f"{path}: entry 1: request has no url"]


def test_truncated_har_keeps_complete_entries(tmp_path: Path, traffic_dir: Path) -> None:
    text = (traffic_dir / "chrome.har").read_text()
    cut = text.index('"/static/logo.png"')  # inside entry 2
    path = tmp_path / "cut.har"
    path.write_text(text[:cut])

    with pytest.raises(InputError, match=r"cut\.har: entry 2: .*truncated") as info:
        read_all(path)
    assert "\n" not in str(info.value)

    skipped: list[str] = []
    recs = read_all(path, skip_bad=True, on_skip=skipped.append)
    assert [r.index for r in recs] == [0, 1]
    assert len(skipped) == 1
    assert skipped[0].startswith(f"{path}: entry 2: ")


def test_truncated_before_entries(tmp_path: Path) -> None:
    path = tmp_path / "head.har"
    path.write_text('{"log": {"version": "1.2", "creator": {"na')
    with pytest.raises(InputError, match=r"head\.har: not valid HAR/JSON"):
        read_all(path, skip_bad=True)


def test_missing_closing_brackets(tmp_path: Path) -> None:
    text = har_with([entry("http://h/0"), entry("http://h/1")])
    path = tmp_path / "open.har"
    path.write_text(text[:-2])  # the entries list is closed, "log" and the top are not
    messages: list[str] = []
    recs = read_all(path, skip_bad=True, on_skip=messages.append)
    assert [r.request.path for r in recs] == ["/0", "/1"]
    assert messages and messages[0].startswith(f"{path}: after the last entry: ")


def test_har_without_entries(tmp_path: Path) -> None:
    path = tmp_path / "x.har"
    path.write_text('{"log": {"version": "1.2"}}')
    with pytest.raises(InputError, match=r'no "log.entries" list'):
        read_all(path)


def test_other_header_shapes_and_bodies(tmp_path: Path) -> None:
    form = entry(
        "http://h/form",
        request={
            "method": "post",
            "url": "http://h/form#frag",
            "headers": [["X-Slack-Style", "yes"]],
            "postData": {
                "mimeType": "application/x-www-form-urlencoded",
                "params": [{"name": "a", "value": "1 2"}, {"name": "b", "value": "&"}],
            },
        },
    )
    b64 = entry(
        request={
            "method": "PUT",
            "url": "http://h/up",
            "headers": [],
            "postData": {
                "mimeType": "",
                "text": base64.b64encode(b"\xff\x00").decode(),
                "encoding": "base64",
            },
        },
        startedDateTime="2024-01-01T00:00:00",  # no zone: taken as UTC
        time=-1,
    )
    path = tmp_path / "shapes.har"
    path.write_text(har_with([form, b64]))
    first, second = read_all(path)
    assert first.request.method == "POST"
    assert first.request.headers == (("X-Slack-Style", "yes"),)
    assert first.request.body == b"a=1+2&b=%26"
    assert first.request.path == "/form"
    assert second.request.body == b"\xff\x00"
    assert second.started_at == 1704067200.0
    assert second.elapsed_ms is None


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"response": {"status": "200"}}, "response.status '200' is not an integer"),
        (
            {"response": {"status": 200, "content": {"text": "!!", "encoding": "base64"}}},
            "response.content.text is not valid base64",
        ),
        (
            {"response": {"status": 200, "headers": [{"name": "a"}]}},
            "is not a name/value pair of strings",
        ),
        ({"request": "GET /"}, "request is missing or not an object"),
        ({"request": {"method": "GET", "url": "/relative"}}, "not an absolute http(s) URL"),
    ],
)
def test_bad_entry_messages(tmp_path: Path, bad: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.har"
    path.write_text(har_with([entry(**bad)]))
    with pytest.raises(InputError, match=f"^{path}: entry 0: ") as info:
        read_all(path)
    assert message in str(info.value)


# -- streamed: bytes that are not UTF-8, BOM, cut-off files, the size of one entry ----------


def test_bytes_that_are_not_utf8_are_kept_and_other_entries_read(tmp_path: Path) -> None:
    middle = entry("http://h/1")
    middle["request"]["headers"] = [{"name": "X-Name", "value": "NAME"}]
    middle["response"]["content"] = {"text": "BODY"}
    text = har_with([entry("http://h/0"), middle, entry("http://h/2")], indent=2)
    # latin-1 "é" and a stray byte, as a hand-edited or badly exported file has them
    raw = text.encode().replace(b"NAME", b"caf\xe9").replace(b"BODY", b"\xff\xfe ok")
    path = tmp_path / "latin.har"
    path.write_bytes(b"\xef\xbb\xbf" + raw)  # with a BOM too

    recs = read_all(path)
    assert [r.request.path for r in recs] == ["/0", "/1", "/2"]
    name = recs[1].request.header("x-name")
    assert name is not None
    assert name.encode("utf-8", "surrogateescape") == b"caf\xe9"  # the same bytes again
    assert recs[1].response is not None
    assert recs[1].response.body == b"\xff\xfe ok"


def test_bytes_that_are_not_utf8_outside_strings(tmp_path: Path) -> None:
    raw = har_with([entry("http://h/0"), entry("http://h/1")]).encode()
    path = tmp_path / "bad.har"
    path.write_bytes(raw.replace(b"}, {", b"}, \xff{", 1))
    messages: list[str] = []
    recs = read_all(path, skip_bad=True, on_skip=messages.append)
    assert [r.request.path for r in recs] == ["/0"]
    column = raw.index(b"}, {") + len("}, ") + 1
    assert messages == [
        f"{path}: entry 1: invalid or incomplete JSON: Expecting value (line 1 column {column})"
    ]


@pytest.mark.parametrize("chunk", [64, 1 << 20], ids=["small-window", "whole-file-window"])
def test_cut_off_file_gives_complete_entries_then_one_final_bad_entry(
    tmp_path: Path, traffic_dir: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(_jsontext, "CHUNK", chunk)
    text = json.dumps(json.loads((traffic_dir / "chromium.har").read_text()), indent=1)
    cut = text.index('"entries"')
    for _ in range(7):  # into the 7th entry (index 6), as a crashed exporter leaves it
        cut = text.index('"startedDateTime"', cut + 1)
    path = tmp_path / "cut.har"
    path.write_text(text[: cut + 30])

    *good, last = har.read(str(path))
    assert [r.index for r in good if isinstance(r, Recorded)] == [0, 1, 2, 3, 4, 5]
    start = text.index('"', cut + len('"startedDateTime"'))  # of the cut string
    line, column = text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)
    assert last == BadEntry(
        6,
        "invalid or incomplete JSON: Unterminated string starting at "
        f"(line {line} column {column}); the file is cut off (truncated)",
        final=True,
    )


def big_entry(url: str, size: int) -> dict[str, Any]:
    """An entry of about `size` bytes whose body has quotes, backslashes and brackets."""
    body = '{"a": "\\"]}[{", "b": [1, {"c": "\\\\"}]}' * (size // 40)
    return entry(url, response={"status": 200, "headers": [], "content": {"text": body}})


@pytest.mark.parametrize("chunk", [256, 1 << 20], ids=["window-grows", "fits-the-window"])
def test_entry_over_the_size_limit_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(_jsontext, "CHUNK", chunk)
    entries = [entry("http://h/0"), big_entry("http://h/1", 20_000), entry("http://h/2")]
    path = tmp_path / "big.har"
    path.write_text(har_with(entries, indent=2))

    items = list(har.read(str(path), max_entry_bytes=4096))
    assert [type(i).__name__ for i in items] == ["Recorded", "BadEntry", "Recorded"]
    assert [i.request.path for i in items if isinstance(i, Recorded)] == ["/0", "/2"]
    assert items[1] == BadEntry(
        1, "larger than 4096 bytes, the most one entry may take; passed over"
    )
    # under the limit the same entry is read
    assert (
        len([i for i in har.read(str(path), max_entry_bytes=64_000) if isinstance(i, Recorded)])
        == 3
    )


def test_cut_off_inside_an_entry_over_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_jsontext, "CHUNK", 256)
    text = har_with([entry("http://h/0"), big_entry("http://h/1", 20_000)])
    path = tmp_path / "cut.har"
    path.write_text(text[:15_000])
    *good, last = har.read(str(path), max_entry_bytes=4096)
    assert [r.request.path for r in good if isinstance(r, Recorded)] == ["/0"]
    assert isinstance(last, BadEntry) and last.final and last.index == 1
    assert "unexpected end of file" in last.reason and "truncated" in last.reason


def test_syntax_error_in_a_large_file_is_damage_not_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_jsontext, "CHUNK", 256)
    text = har_with([entry(f"http://h/{i}") for i in range(100)])
    broken = text.replace('"time": 1', '"time" 1', 2)  # the second entry
    path = tmp_path / "broken.har"
    path.write_text(broken)
    *good, last = har.read(str(path), max_entry_bytes=4096)  # ~20 KB follow the error
    assert len(good) == 1
    column = broken.index('"time" 1', broken.index('"time" 1') + 1) + len('"time" ') + 1
    assert last == BadEntry(
        1, f"invalid or incomplete JSON: Expecting ':' delimiter (line 1 column {column})", True
    )


def test_large_values_outside_the_entries_are_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_jsontext, "CHUNK", 256)
    pages = [{"id": "p", "title": "x" * 10_000}]
    path = tmp_path / "pages.har"
    path.write_text(har_with([entry("http://h/0")], pages=pages))
    (rec,) = har.read(str(path), max_entry_bytes=4096)
    assert isinstance(rec, Recorded) and rec.request.path == "/0"


def test_reading_holds_one_window_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_jsontext, "CHUNK", 64 * 1024)
    path = tmp_path / "many.har"
    path.write_text(har_with([big_entry(f"http://h/{i}", 4000) for i in range(1000)], indent=2))
    assert path.stat().st_size > 4_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_traffic(str(path)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 1000
    assert peak < 1_000_000  # the whole file decoded would be tens of MB
