"""A candidate that misbehaves below HTTP: resets, refuses, answers garbage.

Each copy's failure is stored as a candidate error that names what happened
(and stays short whatever the garbage), the row is counted, and the client's
answer is the primary's, untouched.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from tests.conftest import free_port, run_proxy, serve
from tests.faults.faultkit import (
    RawServer,
    accounting,
    app,
    http_answer,
    read_head,
    stop,
    target_of,
)
from tests.integration.helpers import rows

pytestmark = pytest.mark.integration

N = 6  # requests per kind
GARBAGE = b"\x00\x16\x03\x01 ceci n'est pas HTTP \xff\xfe" * 400 + b"\r\n\r\n"


async def _primary(request: Request) -> Response:
    n = request.path_params["n"]
    return Response(f'{{"n": {n}, "ok": true}}', media_type="application/json")


PRIMARY = app({"/{kind}/{n:int}": _primary})


async def _misbehave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    kind = target_of(await read_head(reader)).split("/")[1]
    if kind == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # closed with linger 0: the peer gets a RST
    elif kind == "garbage":
        writer.write(GARBAGE)
        await writer.drain()
    else:
        writer.write(http_answer(b'{"ok": true}'))
        await writer.drain()


def _send(base: str, direct: str, kinds: list[str]) -> int:
    """GET /<kind>/<n> through the proxy; each answer must be the primary's. Returns count."""
    answered = 0
    with httpx.Client(timeout=15, trust_env=False) as client:
        for n in range(N):
            for kind in kinds:
                via = client.get(f"{base}/{kind}/{n}")
                same = client.get(f"{direct}/{kind}/{n}")
                assert (via.status_code, via.content) == (same.status_code, same.content)
                assert via.headers.get("content-type") == same.headers.get("content-type")
                answered += 1
    return answered


def _errors(db: Path) -> dict[str, list[str | None]]:
    found: dict[str, list[str | None]] = {}
    for path, error in rows(db, "SELECT path, candidate_error FROM exchanges"):
        found.setdefault(str(path).split("/")[1], []).append(error)
    return found


def test_candidate_reset_and_garbage(tmp_path: Path) -> None:
    db = tmp_path / "wire.duckdb"
    with (
        serve(PRIMARY) as primary,
        RawServer(_misbehave) as cand,
        run_proxy(primary.url, cand.url, db, tmp_path) as proxy,
    ):
        answered = _send(proxy.url, primary.url, ["reset", "garbage", "fine"])
        stop(proxy)
    assert proxy.process.returncode == 0, proxy.output
    acc = accounting(db)
    acc.check(answered=answered)
    assert acc.rows == answered == 3 * N
    errors = _errors(db)
    assert len(errors["reset"]) == len(errors["garbage"]) == len(errors["fine"]) == N
    assert errors["fine"] == [None] * N  # the control: a well-behaved answer is no error
    for text in errors["reset"]:
        assert text is not None and "reset" in text, text
    for text in errors["garbage"]:
        assert text is not None and 0 < len(text) <= 512, text
        assert "bad answer" in text, text


def test_candidate_refusing_connections(tmp_path: Path) -> None:
    db = tmp_path / "refused.duckdb"
    closed = f"http://127.0.0.1:{free_port()}"
    with serve(PRIMARY) as primary, run_proxy(primary.url, closed, db, tmp_path) as proxy:
        answered = _send(proxy.url, primary.url, ["refused"])
        stop(proxy)
    assert proxy.process.returncode == 0, proxy.output
    acc = accounting(db)
    acc.check(answered=answered)
    assert acc.rows == answered == N
    for text in _errors(db)["refused"]:
        assert text is not None and "refused" in text, text
