"""Telling the team: a webhook (JSON POST, retried) and a command hook.

Both run in the background of the worker and are bounded in time; what they
answered becomes a `notification` event. A webhook's URL is a secret (Slack's
carries its token in the path): only its scheme and host are ever recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

WEBHOOK_TIMEOUT = 5.0  # seconds per attempt
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF = 1.0  # seconds before the second attempt; doubled after each
COMMAND_TIMEOUT = 30.0
OUTPUT_CAP = 2000  # characters of an answer or a command's output kept


def where(url: str) -> str:
    """A webhook named without its secret parts: scheme://host[:port]."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "webhook"
    return f"{parts.scheme}://{host}{port}"


def message(event: dict[str, Any]) -> dict[str, Any]:
    """The webhook's body: Slack-compatible `text`, and the event itself under `shadow`."""
    return {"text": str(event.get("summary", "")), "shadow": event}


async def post_webhook(
    url: str,
    event: dict[str, Any],
    *,
    timeout: float = WEBHOOK_TIMEOUT,
    attempts: int = WEBHOOK_ATTEMPTS,
    backoff: float = WEBHOOK_BACKOFF,
) -> tuple[bool, str]:
    """POST the event; retried on transport errors, 429 and 5xx. (ok, what happened)."""
    body = orjson.dumps(message(event))
    last = ""
    delay = backoff
    # trust_env off: a notification goes where it is told, not through a proxy variable.
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        for attempt in range(1, attempts + 1):
            try:
                async with asyncio.timeout(timeout + 1):
                    resp = await client.post(
                        url, content=body, headers={"content-type": "application/json"}
                    )
                if resp.status_code < 300:
                    return True, f"{where(url)} answered {resp.status_code} (attempt {attempt})"
                last = f"{where(url)} answered {resp.status_code}"
                if resp.status_code != 429 and resp.status_code < 500:
                    return False, last  # the request is wrong: retrying will not help
            except (httpx.HTTPError, OSError, TimeoutError) as exc:
                last = f"{where(url)} failed: {type(exc).__name__}"
            if attempt < attempts:
                await asyncio.sleep(delay)
                delay *= 2
    return False, f"{last} (after {attempts} attempts)"


async def run_command(
    command: str, event: dict[str, Any], *, timeout: float = COMMAND_TIMEOUT
) -> tuple[bool, str]:
    """Run `command` in a shell with the event as JSON on stdin (and SHADOW_EVENT_* set)."""
    env = {
        **os.environ,
        "SHADOW_EVENT_KIND": str(event.get("kind", "")),
        "SHADOW_EVENT_ROUTE": str(event.get("route", "")),
        "SHADOW_EVENT_SUMMARY": str(event.get("summary", "")),
    }
    try:
        proc = await asyncio.create_subprocess_shell(
            command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return False, f"command could not start: {exc.strerror or exc}"
    try:
        out, _ = await asyncio.wait_for(proc.communicate(orjson.dumps(event)), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)  # its whole group: a shell's children too
        if isinstance(exc, asyncio.CancelledError):
            raise
        await proc.wait()
        return False, f"command did not finish in {timeout:g} s: killed"
    text = out.decode("utf-8", "replace").strip()[-OUTPUT_CAP:]
    if proc.returncode:
        return False, f"command exited {proc.returncode}: {text}"
    return True, f"command exited 0{': ' + text if text else ''}"
