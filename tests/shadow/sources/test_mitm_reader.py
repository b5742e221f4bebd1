"""mitmproxy dumps written with FlowWriter from tflow flows."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.io import FlowWriter
from mitmproxy.test import tflow, tutils

from comparators.model import Payload
from shadow.errors import InputError
from shadow.model import Request
from shadow.sources import mitm, read_traffic
from shadow.sources._base import BadEntry

GZ_BODY = gzip.compress(b'{"items": [1, 2, 3]}')


def dump(tmp_path: Path, *, cut: int = 0) -> Path:
    get = tflow.tflow(resp=True)
    post = tflow.tflow(
        req=tutils.treq(
            method=b"POST",
            host="api.example.com",
            port=443,
            scheme=b"https",
            path=b"/v1/items?dry=1&x=%20",
            headers=http.Headers(
                ((b"Host", b"api.example.com"), (b"Content-Type", b"application/json"))
            ),
            content=b'{"name": "w"}',
        ),
        resp=tutils.tresp(
            status_code=201,
            headers=http.Headers(
                ((b"Content-Encoding", b"gzip"), (b"Content-Type", b"application/json"))
            ),
            content=b"",
        ),
    )
    assert post.response is not None
    post.response.raw_content = GZ_BODY
    no_response = tflow.tflow(err=True)
    buf = io.BytesIO()
    writer = FlowWriter(buf)
    for flow in (get, tflow.ttcpflow(), post, no_response):
        writer.add(flow)
    data = buf.getvalue()
    path = tmp_path / "flows.mitm"
    path.write_bytes(data[: len(data) - cut])
    return path


def test_http_flows(tmp_path: Path) -> None:
    get, post, no_response = read_traffic(str(dump(tmp_path)))
    # the TCP flow (position 1) is passed over but still counted
    assert [r.index for r in (get, post, no_response)] == [0, 2, 3]

    assert get.request == Request(
        "GET", "/path", "", (("header", "qvalue"), ("content-length", "7")), b"content"
    )
    assert get.response == Payload(
        200, (("header-response", "svalue"), ("content-length", "7")), b"message"
    )
    assert get.url == "http://address:22/path"
    assert get.started_at == 946681200
    assert get.elapsed_ms == 2000.0  # request end 946681201 -> response end 946681203

    assert post.request == Request(
        "POST",
        "/v1/items",
        "dry=1&x=%20",
        (("Host", "api.example.com"), ("Content-Type", "application/json")),
        b'{"name": "w"}',
    )
    assert post.url == "https://api.example.com/v1/items?dry=1&x=%20"
    # raw_content: still gzip, headers untouched
    assert post.response == Payload(
        201, (("Content-Encoding", "gzip"), ("Content-Type", "application/json")), GZ_BODY
    )

    assert no_response.response is None
    assert no_response.elapsed_ms is None


def test_truncated_dump(tmp_path: Path) -> None:
    path = dump(tmp_path, cut=25)  # inside the last flow
    with pytest.raises(InputError, match=r"flows\.mitm: entry 3: truncated or corrupt flow data"):
        list(read_traffic(str(path)))

    skipped: list[str] = []
    recs = list(read_traffic(str(path), skip_bad=True, on_skip=skipped.append))
    assert [r.index for r in recs] == [0, 2]
    assert len(skipped) == 1
    assert skipped[0].startswith(f"{path}: entry 3: ")


def test_garbage_after_valid_flows(tmp_path: Path) -> None:
    path = dump(tmp_path)
    path.write_bytes(path.read_bytes() + b"999999:not a flow")
    with pytest.raises(InputError, match="entry 4: truncated or corrupt"):
        list(read_traffic(str(path), fmt="mitm"))


def test_flow_over_the_size_limit_is_passed_over(tmp_path: Path) -> None:
    data = dump(tmp_path).read_bytes()
    sizes = []
    rest = io.BytesIO(data)
    while prefix := rest.read(1):  # the sizes of the four flows' tnetstrings
        while (char := rest.read(1)) != b":":
            prefix += char
        sizes.append(int(prefix))
        rest.seek(int(prefix) + 1, io.SEEK_CUR)
    limit = sizes[2] - 1  # the POST's flow is the largest
    assert max(sizes[:2] + sizes[3:]) <= limit
    items = list(mitm.read(str(dump(tmp_path)), max_entry_bytes=limit))
    reason = f"flow larger than {limit} bytes, the most one entry may take; passed over"
    assert [getattr(i, "index", None) for i in items] == [0, 2, 3]
    assert items[1] == BadEntry(2, reason)


def test_a_flow_that_does_not_parse_is_passed_over(tmp_path: Path) -> None:
    data = dump(tmp_path).read_bytes()
    first = int(data[: data.index(b":")]) + len(data[: data.index(b":")]) + 2  # flow 0's end
    broken = data[:first] + b"6:hello!," + data[first:]  # a string, not a flow
    path = tmp_path / "broken.mitm"
    path.write_bytes(broken)
    skipped: list[str] = []
    recs = list(read_traffic(str(path), skip_bad=True, on_skip=skipped.append))
    assert [r.index for r in recs] == [0, 3, 4]  # entry 1 is bad, entry 2 the TCP flow
    assert len(skipped) == 1 and skipped[0].startswith(f"{path}: entry 1: truncated or corrupt")
