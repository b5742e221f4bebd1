"""Notifications: a webhook retried on failure, bounded in time; a command hook."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from shadow.control import notify

EVENT = {"kind": "rollback", "route": "/api/x", "summary": "rolled back /api/x"}


async def _server(answers: list[int | None]) -> tuple[asyncio.Server, int, list[bytes]]:
    """A local HTTP server answering each request with the next status (None: never answers)."""
    bodies: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        bodies.append(await reader.readexactly(length))
        status = answers.pop(0) if answers else 200
        if status is None:
            await asyncio.sleep(3600)
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], bodies


def test_webhook_is_retried_until_it_takes() -> None:
    async def go() -> tuple[bool, str, list[bytes]]:
        server, port, bodies = await _server([503, 429, 200])
        async with server:
            ok, text = await notify.post_webhook(
                f"http://127.0.0.1:{port}/hooks/SECRET", EVENT, backoff=0.01
            )
        return ok, text, bodies

    ok, text, bodies = asyncio.run(go())
    assert ok and "attempt 3" in text and "SECRET" not in text
    body = json.loads(bodies[0])
    assert body["text"] == "rolled back /api/x" and body["shadow"]["route"] == "/api/x"


def test_webhook_gives_up_on_a_client_error_and_bounds_a_hang() -> None:
    async def go(answers: list[int | None], timeout: float) -> tuple[bool, str, float]:
        server, port, _ = await _server(answers)
        async with server:
            start = time.monotonic()
            ok, text = await notify.post_webhook(
                f"http://127.0.0.1:{port}/", EVENT, timeout=timeout, attempts=2, backoff=0.01
            )
            return ok, text, time.monotonic() - start

    ok, text, _ = asyncio.run(go([404], 1.0))
    assert not ok and "404" in text
    ok, text, took = asyncio.run(go([None, None], 0.3))
    assert not ok and "after 2 attempts" in text
    assert took < 4  # two bounded attempts, not a hang


def test_command_gets_the_event_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    ok, text = asyncio.run(notify.run_command(f"{sys.executable} -c {script!r}", EVENT))
    assert ok, text
    got: dict[str, Any] = json.loads(out.read_text())
    assert got == EVENT


def test_command_failures_and_hangs_are_reported() -> None:
    ok, text = asyncio.run(notify.run_command("echo broken >&2; exit 3", EVENT))
    assert not ok and "exited 3" in text and "broken" in text
    start = time.monotonic()
    ok, text = asyncio.run(notify.run_command("sleep 30", EVENT, timeout=0.3))
    assert not ok and "killed" in text and time.monotonic() - start < 5
