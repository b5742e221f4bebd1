"""shadow's JSON Lines format."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from comparators.model import Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources import jsonl, read_traffic
from shadow.sources._base import BadEntry


def test_sample_file(traffic_dir: Path) -> None:
    items, upload, report = read_traffic(str(traffic_dir / "sample.jsonl"))
    assert [r.index for r in (items, upload, report)] == [0, 2, 3]  # line 2 is blank

    assert items.request == Request(
        "GET",
        "/api/items",
        "page=2&sort=name",
        (("Accept", "application/json"), ("X-Trace", "a"), ("X-Trace", "b")),
        b"",
    )
    assert items.response == Payload(
        200, (("Content-Type", "application/json"),), b'{"items":[21,22]}'
    )
    assert (items.started_at, items.elapsed_ms) == (1715678493.5, 18.5)

    # "path" form: the URL is built from the Host header
    assert upload.url == "http://api.example.com/api/upload?kind=bin"
    assert upload.request.body == b"\x00\x01\xfe\xff"
    assert upload.response is None
    assert upload.started_at is None

    # a decoded body under Content-Encoding: gzip loses the headers that lie about it
    assert report.response == Payload(
        200, (("Content-Type", "text/plain"),), b"already decoded text"
    )


def write_lines(tmp_path: Path, *lines: Any) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


GOOD = {"method": "GET", "url": "http://h/ok"}


def test_wire_gzip_body_is_kept(tmp_path: Path) -> None:
    gz = gzip.compress(b"hello")
    line = {
        **GOOD,
        "response": {
            "status": 200,
            "headers": {"Content-Encoding": "gzip", "Content-Length": str(len(gz))},
            "body_base64": base64.b64encode(gz).decode(),
        },
    }
    (rec,) = read_traffic(str(write_lines(tmp_path, line)))
    assert rec.response == Payload(
        200, (("Content-Encoding", "gzip"), ("Content-Length", str(len(gz)))), gz
    )


def test_broken_json_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path, GOOD, '{"method": "GET", "url": ', GOOD)
    with pytest.raises(InputError) as info:
        list(read_traffic(str(path)))
    message = str(info.value)
    assert message.startswith(f"{path}: entry 1 (line 2): not valid JSON")
    assert "\n" not in message

    skipped: list[str] = []
    recs = list(read_traffic(str(path), skip_bad=True, on_skip=skipped.append))
    assert [r.index for r in recs] == [0, 2]
    assert len(skipped) == 1 and skipped[0].startswith(f"{path}: entry 1 (line 2)")


def test_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD)[:-5])
    with pytest.raises(InputError, match=r"entry 1 \(line 2\): not valid JSON.*cut off"):
        list(read_traffic(str(path)))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"url": "http://h/"}, "missing 'method'"),
        ({"method": "GET"}, "missing 'url'"),
        ({"method": "GET", "url": "ftp://h/x"}, "not an absolute http(s) URL"),
        ({"method": "GET", "url": "http://h/", "headers": [["a"]]}, "headers must be"),
        ({"method": "GET", "url": "http://h/", "headers": {"a": 1}}, "not a pair of strings"),
        ({"method": "GET", "url": "http://h/", "body_base64": "@@"}, "not valid base64"),
        ({"method": "GET", "url": "http://h/", "body": 3}, "body is not a string"),
        ({"method": "GET", "url": "http://h/", "response": {"status": "ok"}}, "response.status"),
        ({"method": "GET", "url": "http://h/", "timestamp": "today"}, "timestamp 'today'"),
        ([1, 2], "not a JSON object"),
    ],
)
def test_bad_lines(tmp_path: Path, line: Any, message: str) -> None:
    path = write_lines(tmp_path, GOOD, line)
    with pytest.raises(InputError, match=r"entry 1 \(line 2\): ") as info:
        list(read_traffic(str(path), fmt="jsonl"))
    assert message in str(info.value)


def test_line_over_the_size_limit_is_passed_over(tmp_path: Path) -> None:
    big = {"method": "GET", "url": "http://h/big", "body": "x" * 5000}
    path = write_lines(tmp_path, GOOD, big, GOOD)
    path.write_bytes(path.read_bytes() + json.dumps(big).encode())  # and the last, unended
    items = list(jsonl.read(str(path), max_entry_bytes=1000))
    assert [type(i).__name__ for i in items] == ["Recorded", "BadEntry", "Recorded", "BadEntry"]
    reason = "line larger than 1000 bytes, the most one entry may take; passed over"
    assert items[1] == BadEntry(1, reason, where="entry 1 (line 2)")
    assert items[3] == BadEntry(3, reason, where="entry 3 (line 4)")
    # a line of exactly the limit is read
    exact = json.dumps(GOOD).encode()
    path.write_bytes(exact + b"\n" + exact)
    assert len(list(jsonl.read(str(path), max_entry_bytes=len(exact)))) == 2
