"""HarWriter and JsonlWriter: what they write reads back (modulo the documented rules)."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mitmproxy.io import FlowReader

from comparators.model import Payload
from shadow.model import Request
from shadow.sources import HarWriter, JsonlWriter, Recorded, read_traffic

POST = Request(
    "POST",
    "/api/items",
    "dry=1&tag=a&tag=b",
    (("Host", "api.example.com"), ("Content-Type", "application/json"), ("X-Trace", "1")),
    b'{"name": "w\xc3\xa9"}',
)
BINARY = Request(
    "PUT", "/blob", "", (("Content-Type", "application/octet-stream"),), b"\xff\x00\x80"
)
CREATED = Payload(201, (("Content-Type", "application/json"),), b'{"id": 7}')
PNG = Payload(200, (("Content-Type", "image/png"),), b"\x89PNG\r\n\x1a\n\x00\xff")

CASES: list[tuple[Request, Payload | None, float, float | None, str]] = [
    (POST, CREATED, 1715678493.25, 12.5, "http://api.example.com/api/items?dry=1&tag=a&tag=b"),
    (BINARY, PNG, 1715678494.0, None, "https://api.example.com/blob"),
    (Request("GET", "/slow"), None, 1715678495.5, 30000.0, "http://api.example.com/slow"),
]


def expected() -> list[Recorded]:
    return [
        Recorded(req, resp, started, elapsed, url, index)
        for index, (req, resp, started, elapsed, url) in enumerate(CASES)
    ]


@pytest.mark.parametrize("writer_cls", [HarWriter, JsonlWriter])
def test_round_trip(tmp_path: Path, writer_cls: type[HarWriter] | type[JsonlWriter]) -> None:
    path = tmp_path / ("out.har" if writer_cls is HarWriter else "out.jsonl")
    with writer_cls.open(str(path)) as writer:
        for case in CASES:
            writer.add(*case)
    assert list(read_traffic(str(path))) == expected()


def test_har_is_valid_har_12(tmp_path: Path) -> None:
    path = tmp_path / "out.har"
    writer = HarWriter(str(path))
    for case in CASES:
        writer.add(*case)
    writer.close()
    writer.close()  # idempotent
    doc = json.loads(path.read_text())
    log = doc["log"]
    assert log["version"] == "1.2"
    assert log["creator"]["name"] == "shadow"
    assert len(log["entries"]) == 3
    first = log["entries"][0]
    assert first["startedDateTime"] == "2024-05-14T09:21:33.250000Z"
    assert first["request"]["postData"] == {
        "mimeType": "application/json",
        "text": '{"name": "wé"}',
    }
    assert first["request"]["queryString"] == [
        {"name": "dry", "value": "1"},
        {"name": "tag", "value": "a"},
        {"name": "tag", "value": "b"},
    ]
    second = log["entries"][1]
    assert second["request"]["postData"]["encoding"] == "base64"
    assert second["response"]["content"]["encoding"] == "base64"
    assert second["time"] == -1
    assert log["entries"][2]["response"]["status"] == 0


def test_har_readable_by_mitmproxy(tmp_path: Path) -> None:
    path = tmp_path / "out.har"
    with HarWriter.open(str(path)) as writer:
        for case in CASES[:2]:
            writer.add(*case)
    with path.open("rb") as fh:
        flows = list(FlowReader(fh).stream())
    assert [f.request.method for f in flows] == ["POST", "PUT"]  # type: ignore[attr-defined]
    assert flows[0].request.content == POST.body  # type: ignore[attr-defined]
    assert flows[0].response.status_code == 201  # type: ignore[attr-defined]
    assert flows[0].response.content == CREATED.body  # type: ignore[attr-defined]


def test_compressed_response_reads_back_decoded(tmp_path: Path) -> None:
    text = b"hello " * 40
    wire = Payload(
        200,
        (("Content-Encoding", "gzip"), ("Content-Length", "999"), ("Content-Type", "text/plain")),
        gzip.compress(text),
    )
    har, jsonl = tmp_path / "gz.har", tmp_path / "gz.jsonl"
    for cls, path in ((HarWriter, har), (JsonlWriter, jsonl)):
        with cls.open(str(path)) as writer:
            writer.add(Request("GET", "/t"), wire, 1.0, 1.0, "http://h/t")
    (from_har,) = read_traffic(str(har))
    (from_jsonl,) = read_traffic(str(jsonl))
    # HAR stores the decoded body (spec): it comes back decoded, encoding headers dropped
    assert from_har.response == Payload(200, (("Content-Type", "text/plain"),), text)
    # JSON Lines keeps the wire bytes
    assert from_jsonl.response == wire


def test_unfinished_har_still_gives_its_entries(tmp_path: Path) -> None:
    path = tmp_path / "crashed.har"
    writer = HarWriter(str(path))
    for case in CASES:
        writer.add(*case)
    # no close(): the proxy died; every added entry was flushed
    skipped: list[str] = []
    recs = list(read_traffic(str(path), skip_bad=True, on_skip=skipped.append))
    assert recs == expected()
    assert len(skipped) == 1 and "truncated" in skipped[0]
    writer.close()


def test_jsonl_appends_and_flushes_per_line(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    first = JsonlWriter(str(path))
    first.add(*CASES[0])
    assert len(path.read_text().splitlines()) == 1  # visible before close
    first.close()
    with JsonlWriter.open(str(path)) as second:
        second.add(*CASES[1])
    recs = list(read_traffic(str(path)))
    assert [r.url for r in recs] == [CASES[0][4], CASES[1][4]]
    assert [r.index for r in recs] == [0, 1]


# -- property: any request/response survives a round trip --------------------------------

_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
    min_size=1,
    max_size=12,
)
_header_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"),
    max_size=20,
)
_headers = st.lists(
    st.tuples(_token.filter(lambda n: n.lower() not in ("content-encoding",)), _header_value),
    max_size=4,
).map(tuple)
_url_chars = "abcdefghijklmnopqrstuvwxyz0123456789-._~%!$&'()*+,;=:@/"
_path = st.text(alphabet=_url_chars, max_size=15).map(lambda p: "/" + p)
_query = st.text(alphabet=_url_chars + "?", max_size=15)
_requests = st.builds(
    Request,
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    path=_path,
    query=_query,
    headers=_headers,
    body=st.binary(max_size=40) | st.text(max_size=20).map(str.encode),
)
_responses = st.none() | st.builds(
    Payload,
    status=st.integers(min_value=100, max_value=599),
    headers=_headers,
    body=st.binary(max_size=40) | st.text(max_size=20).map(str.encode),
)
_started = st.integers(min_value=0, max_value=4_000_000_000 * 10**6).map(lambda us: us / 1e6)
_elapsed = st.none() | st.floats(min_value=0, max_value=1e7, allow_nan=False)


@given(
    st.lists(st.tuples(_requests, _responses, _started, _elapsed), min_size=1, max_size=4),
    st.sampled_from([HarWriter, JsonlWriter]),
)
def test_round_trip_property(
    cases: list[tuple[Request, Payload | None, float, float | None]],
    writer_cls: type[HarWriter] | type[JsonlWriter],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "t.out")
        with writer_cls.open(path) as writer:
            for req, resp, started, elapsed in cases:
                writer.add(req, resp, started, elapsed, f"http://h.example{req.target}")
        got = list(read_traffic(path))
    want = [
        Recorded(req, resp, started, elapsed, f"http://h.example{req.target}", i)
        for i, (req, resp, started, elapsed) in enumerate(cases)
    ]
    assert got == want
