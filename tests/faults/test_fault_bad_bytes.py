"""Bytes that are not UTF-8 on the live path: in the request line and in header values.

tests/integration/test_streams.py checks that one such request is stored escaped.
Here they come interleaved with normal requests, and the run's accounting must
hold: each answered request is one row, nothing lost, storing goes on after them.
The primary and candidate are raw servers that record the bytes they receive.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import run_proxy
from tests.faults.faultkit import (
    Accounting,
    RawServer,
    accounting,
    http_answer,
    raw_request,
    read_head,
    stop,
    target_of,
)
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

ROUNDS = 6
ANSWER = b'{"ok": true, "items": [1, 2, 3]}'


def _bad_path(i: int) -> bytes:
    return f"GET /api/bad{i}/".encode() + b"\xff\xfe?q=\xfa HTTP/1.1\r\nHost: x\r\n\r\n"


def _bad_header(i: int) -> bytes:
    return f"GET /api/hdr{i} HTTP/1.1\r\nHost: x\r\n".encode() + b"X-Raw: a\xff\xfeb\r\n\r\n"


def _plain(i: int) -> bytes:
    return f"GET /api/ok{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


@dataclass
class Outcome:
    answered: int
    sent: int
    code: int | None
    output: str
    acc: Accounting
    primary_heads: dict[str, bytes] = field(default_factory=dict)
    candidate_heads: dict[str, bytes] = field(default_factory=dict)


def _recording_server() -> RawServer:
    server: RawServer

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.heads.append(await read_head(reader))
        writer.write(http_answer(ANSWER))
        await writer.drain()

    server = RawServer(handle)
    return server


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Outcome, Path]]:
    tmp = tmp_path_factory.mktemp("bad-bytes")
    db = tmp / "bytes.duckdb"
    answered = sent = 0
    with (
        _recording_server() as primary,
        _recording_server() as cand,
        run_proxy(primary.url, cand.url, db, tmp) as proxy,
    ):
        for i in range(ROUNDS):
            for make in (_bad_path, _bad_header, _plain):
                # Connection: close from the servers; the proxy closes after answering.
                data = make(i).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
                reply = raw_request(proxy.port, data)
                sent += 1
                answered += reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(ANSWER)
        stop(proxy)
    outcome = Outcome(
        answered,
        sent,
        proxy.process.returncode,
        proxy.output,
        accounting(db),
        {target_of(h).split("?")[0]: h for h in primary.heads},
        {target_of(h).split("?")[0]: h for h in cand.heads},
    )
    yield outcome, db


def test_bad_bytes_interleaved_every_request_is_one_row(run: tuple[Outcome, Path]) -> None:
    outcome, db = run
    assert outcome.code == 0, outcome.output
    assert outcome.answered == outcome.sent == 3 * ROUNDS  # answered untouched
    outcome.acc.check(answered=outcome.answered)
    assert outcome.acc.rows == outcome.acc.requests
    assert outcome.acc.requests_lost == 0
    found = {
        str(path): (query, verdict, notes, headers)
        for path, query, verdict, notes, headers in rows(
            db, "SELECT path, query, verdict, notes, request_headers FROM exchanges"
        )
    }
    for i in range(ROUNDS):
        # The request line's bytes are stored escaped, and noted.
        query, _, notes, _ = found[f"/api/bad{i}/\\xff\\xfe"]
        assert query == "q=\\xfa"
        assert "not UTF-8" in str(notes)
        # A header value is stored as read (latin-1, byte for byte).
        _, _, _, headers = found[f"/api/hdr{i}"]
        assert ["X-Raw", "a\xff\xfeb"] in json.loads(str(headers))
        # Storing went on after each of them.
        assert found[f"/api/ok{i}"][1] == "match"


def test_bad_header_bytes_reach_the_candidate_unchanged(run: tuple[Outcome, Path]) -> None:
    """The copy carries the header bytes the client sent, as the primary got them."""
    outcome, _ = run
    for i in range(ROUNDS):
        to_primary = outcome.primary_heads[f"/api/hdr{i}"]
        to_candidate = outcome.candidate_heads[f"/api/hdr{i}"]
        assert b"X-Raw: a\xff\xfeb\r\n" in to_primary
        lines = [line.lower() for line in to_candidate.split(b"\r\n")]
        assert [h for h in lines if h.startswith(b"x-raw:")] == [b"x-raw: a\xff\xfeb"]
