"""detect_format: the content decides, the extension only breaks ties."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from mitmproxy.io import FlowWriter
from mitmproxy.test import tflow

from shadow.errors import InputError
from shadow.sources import FORMATS, detect_format, read_traffic


@pytest.mark.parametrize(
    ("name", "expected"),
    [("chrome.har", "har"), ("goreplay.gor", "gor"), ("sample.jsonl", "jsonl")],
)
def test_checked_in_samples(traffic_dir: Path, name: str, expected: str) -> None:
    assert detect_format(str(traffic_dir / name)) == expected


def test_mitmproxy_dump(tmp_path: Path) -> None:
    buf = io.BytesIO()
    FlowWriter(buf).add(tflow.tflow(resp=True))
    path = tmp_path / "capture.bin"  # an extension that says nothing
    path.write_bytes(buf.getvalue())
    assert detect_format(str(path)) == "mitm"


def test_content_beats_extension(tmp_path: Path, traffic_dir: Path) -> None:
    jsonl_named_har = tmp_path / "traffic.har"
    jsonl_named_har.write_bytes((traffic_dir / "sample.jsonl").read_bytes())
    har_named_gor = tmp_path / "traffic.gor"
    har_named_gor.write_bytes((traffic_dir / "chrome.har").read_bytes())
    assert detect_format(str(jsonl_named_har)) == "jsonl"
    assert detect_format(str(har_named_gor)) == "har"


def test_compact_single_line_har(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": []}}))
    assert detect_format(str(path)) == "har"


def test_har_with_bom(tmp_path: Path, traffic_dir: Path) -> None:
    path = tmp_path / "bom.har"
    path.write_bytes(b"\xef\xbb\xbf" + (traffic_dir / "chrome.har").read_bytes())
    assert detect_format(str(path)) == "har"
    assert len(list(read_traffic(str(path)))) == 4


def test_extension_breaks_a_tie(tmp_path: Path) -> None:
    # The first line is broken JSON: the content alone cannot say which JSON format.
    lines = '{"method": "GET", "url": \n{"method": "GET", "url": "http://h/"}\n'
    as_jsonl = tmp_path / "t.jsonl"
    as_jsonl.write_text(lines)
    as_txt = tmp_path / "t.txt"
    as_txt.write_text(lines)
    assert detect_format(str(as_jsonl)) == "jsonl"
    with pytest.raises(InputError, match="not a recognised traffic file"):
        detect_format(str(as_txt))


def test_gor_without_separator_in_head_needs_http(tmp_path: Path) -> None:
    good = tmp_path / "one.gor"
    good.write_bytes(b"1 abc 1715678493512000000 -1\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")
    bad = tmp_path / "numbers.txt"
    bad.write_bytes(b"1 abc 1715678493512000000 -1\nhello world\n")
    assert detect_format(str(good)) == "gor"
    with pytest.raises(InputError, match="not a recognised"):
        detect_format(str(bad))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (bytes(range(256)) * 8, "binary data"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
        (b"id,method,url\n1,GET,http://h/\n", "not a recognised traffic file"),
        (b'{"name": "a config file"}\n', "not a recognised traffic file"),
        (b"12:34:56 server started\n", "not a recognised traffic file"),
    ],
)
def test_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "input.dat"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        detect_format(str(path))
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert "\n" not in text


def test_csv_named_har_is_refused_by_read_traffic(tmp_path: Path) -> None:
    path = tmp_path / "export.har"
    path.write_text("timestamp,method,url,status\n2024-05-14,GET,http://h/,200\n")
    with pytest.raises(InputError, match=r"export\.har: not a recognised traffic file"):
        read_traffic(str(path))


def test_missing_file() -> None:
    with pytest.raises(InputError, match=r"nowhere\.har: cannot read"):
        detect_format("/nonexistent/nowhere.har")


def test_read_traffic_checks_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "x.har"
    path.write_text("{}")
    with pytest.raises(InputError, match="unknown traffic format 'pcap'"):
        read_traffic(str(path), fmt="pcap")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match="empty file"):
        read_traffic(str(empty), fmt="jsonl")
    assert set(FORMATS) == {"har", "mitm", "gor", "jsonl"}
