"""Every reader streams: the first entry comes out long before the file is read."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mitmproxy.io import FlowWriter
from mitmproxy.test import tflow, tutils

from shadow.sources import gor, har, jsonl, mitm, read_traffic
from shadow.sources._base import Recorded
from shadow.sources.detect import GOR_SEPARATOR

ENTRIES = 5000
MITM_FLOWS = 250


def _har(path: Path) -> None:
    entry = {
        "startedDateTime": "2024-01-01T00:00:00Z",
        "time": 1,
        "request": {"method": "GET", "url": "http://h/a", "headers": []},
        "response": {"status": 200, "headers": [], "content": {"text": "x" * 1000}},
    }
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry] * ENTRIES}}))


def _jsonl(path: Path) -> None:
    line = json.dumps({"method": "GET", "url": "http://h/a", "body": "x" * 1000})
    path.write_text((line + "\n") * ENTRIES)


def _gor(path: Path) -> None:
    request = b"1 id%d 1700000000000000000 -1\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    response = b"2 id%d 1700000000000000001 5\nHTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    records = [
        r % i + (b"x" * 1000 if r is response else b"")
        for i in range(ENTRIES)
        for r in (request, response)
    ]
    path.write_bytes(GOR_SEPARATOR.join(records) + GOR_SEPARATOR)


def _mitm(path: Path) -> None:
    buf = io.BytesIO()
    writer = FlowWriter(buf)
    flow = tflow.tflow(req=tutils.treq(path=b"/a"), resp=True)
    assert flow.response is not None
    flow.response.content = b"x" * (ENTRIES * 1000 // MITM_FLOWS)  # parsing flows is slow
    for _ in range(MITM_FLOWS):
        writer.add(flow)
    path.write_bytes(buf.getvalue())


def counting_open(monkeypatch: pytest.MonkeyPatch, module: ModuleType) -> list[int]:
    """Make `module`'s open() count the bytes it reads from the disk; [total so far]."""
    total = [0]

    class Counting(io.FileIO):
        def readinto(self, buffer: Any) -> int | None:  # every buffered read ends here
            n = super().readinto(buffer)
            total[0] += n or 0
            return n

        def readall(self) -> bytes:
            data = super().readall()
            total[0] += len(data)
            return data

    def fake_open(path: str, mode: str = "rb") -> io.BufferedReader:
        assert mode == "rb"
        return io.BufferedReader(Counting(path, "r"))

    monkeypatch.setattr(module, "open", fake_open, raising=False)
    return total


@pytest.mark.parametrize(
    ("module", "write"),
    [(har, _har), (jsonl, _jsonl), (gor, _gor), (mitm, _mitm)],
    ids=["har", "jsonl", "gor", "mitm"],
)
def test_first_entry_before_the_file_is_read(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module: ModuleType,
    write: Callable[[Path], None],
) -> None:
    path = tmp_path / "traffic"
    write(path)
    size = path.stat().st_size
    assert size > 2_500_000
    read_so_far = counting_open(monkeypatch, module)
    entries = module.read(str(path))
    first = next(entries)
    assert isinstance(first, Recorded) and first.request.path == "/a"
    assert read_so_far[0] <= (1 << 20) + 64 * 1024 < size / 2
    assert sum(1 for _ in entries) + 1 == (MITM_FLOWS if module is mitm else ENTRIES)
    assert read_so_far[0] == size


def test_har_whose_tail_is_garbage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = {"request": {"method": "GET", "url": "http://h/a"}, "response": {"status": 204}}
    head = json.dumps({"log": {"entries": [entry] * 5}})[: -len("]}}")]
    path = tmp_path / "tail.har"
    path.write_text(head + ", " + "garbage " * 1_000_000)
    read_so_far = counting_open(monkeypatch, har)
    messages: list[str] = []
    recs = list(read_traffic(str(path), skip_bad=True, on_skip=messages.append))
    assert len(recs) == 5
    assert messages == [
        f"{path}: entry 5: invalid or incomplete JSON: Expecting value "
        f"(line 1 column {len(head) + 3}); the file is cut off (truncated)"
    ]
    assert read_so_far[0] < 2 << 20  # of 8 MB: the garbage was not read to its end
