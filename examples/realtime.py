"""Real-time demo traffic: Socket.IO conversations and server-sent event streams.

The example backends serve two real-time routes (see examples/README.md): a
Socket.IO server on path `/api/socketio` and `GET /api/process-updates/stream`
(text/event-stream). `drive_realtime(base_url)` runs a few of each against
`base_url` (the proxy in `make demo`, or an app directly), concurrently and
bounded in count and time, and returns what it saw; a failed conversation is
recorded, never raised. `summary_line()` makes one printable line of it.

* `socketio_conversation()`: connect (websocket transport), emit `subscribe`
  `{"analysisId": id}`, collect `progress` events until `complete` (or the
  timeout), emit `status` with an ack, disconnect.
* `sse_stream()`: read one progress stream to its end, event by event.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import socketio

SOCKETIO_PATH = "api/socketio"
STREAM_PATH = "/api/process-updates/stream"
ANALYSIS_IDS = ("3", "6", "9")  # as in the HTTP demo traffic: 6 and 9 hit slips there


@dataclass
class Conversation:
    """One Socket.IO conversation: the events received, in order, and the ack."""

    analysis_id: str
    events: list[tuple[str, Any]] = field(default_factory=list)
    ack: Any = None
    error: str | None = None

    @property
    def progress(self) -> list[Any]:
        return [data for name, data in self.events if name == "progress"]

    @property
    def completed(self) -> bool:
        return any(name == "complete" for name, _ in self.events)


@dataclass
class Stream:
    """One server-sent event stream: status, content type, the (event, data) pairs."""

    analysis_id: str
    status: int | None = None
    content_type: str = ""
    events: list[tuple[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def done(self) -> bool:
        return any(name == "done" for name, _ in self.events)


@dataclass
class RealtimeResult:
    conversations: list[Conversation]
    streams: list[Stream]

    @property
    def errors(self) -> list[str]:
        return [
            f"{kind} {item.analysis_id}: {item.error}"
            for kind, items in (("socketio", self.conversations), ("sse", self.streams))
            for item in items
            if item.error
        ]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


async def socketio_conversation(
    base_url: str, analysis_id: str, timeout: float = 5.0
) -> Conversation:
    """Subscribe to one analysis over Socket.IO, wait for `complete`, ask `status`."""
    result = Conversation(analysis_id)
    client = socketio.AsyncClient(reconnection=False)
    complete = asyncio.Event()

    @client.on("progress")
    async def on_progress(data: Any) -> None:
        result.events.append(("progress", data))

    @client.on("complete")
    async def on_complete(data: Any) -> None:
        result.events.append(("complete", data))
        complete.set()

    @client.on("error")
    async def on_error(data: Any) -> None:
        result.events.append(("error", data))
        complete.set()

    try:
        await client.connect(
            base_url,
            transports=["websocket"],
            socketio_path=SOCKETIO_PATH,
            wait_timeout=timeout,
        )
        await client.emit("subscribe", {"analysisId": analysis_id})
        try:
            await asyncio.wait_for(complete.wait(), timeout)
        except TimeoutError:
            result.error = f"no complete within {timeout:g} s"
        result.ack = await client.call("status", timeout=timeout)
    except Exception as exc:  # a demo tolerates anything: record it, go on
        result.error = result.error or _describe(exc)
    finally:
        try:
            await asyncio.wait_for(client.disconnect(), timeout)
        except Exception as exc:
            result.error = result.error or f"disconnect: {_describe(exc)}"
    return result


async def sse_stream(client: httpx.AsyncClient, analysis_id: str, timeout: float = 5.0) -> Stream:
    """Read one progress stream to its end; `client` carries the base URL."""
    result = Stream(analysis_id)
    event, data_lines = "message", []

    async def read() -> None:
        nonlocal event, data_lines
        async with client.stream(
            "GET", STREAM_PATH, params={"analysisId": analysis_id}
        ) as response:
            result.status = response.status_code
            result.content_type = response.headers.get("content-type", "")
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[len("event:") :].strip()
                elif line.startswith("data:"):
                    data_lines.append(line[len("data:") :].strip())
                elif line == "" and data_lines:
                    text = "\n".join(data_lines)
                    try:
                        value: Any = json.loads(text)
                    except ValueError:
                        value = text
                    result.events.append((event, value))
                    event, data_lines = "message", []

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        result.error = f"no end within {timeout:g} s"
    except Exception as exc:  # a demo tolerates anything: record it, go on
        result.error = _describe(exc)
    return result


async def drive_realtime(
    base_url: str,
    conversations: int = 3,
    streams: int = 3,
    timeout: float = 5.0,
) -> RealtimeResult:
    """`conversations` Socket.IO conversations and `streams` SSE streams, all at once.

    Each one is bounded by `timeout` seconds per step, so the whole run takes at
    most a few times `timeout`, however the server (or the proxy) behaves.
    """
    ids = [ANALYSIS_IDS[i % len(ANALYSIS_IDS)] for i in range(max(conversations, streams))]
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as client:
        talks = [socketio_conversation(base_url, ids[i], timeout) for i in range(conversations)]
        reads = [sse_stream(client, ids[i], timeout) for i in range(streams)]
        done = await asyncio.gather(*talks, *reads)
    return RealtimeResult(
        conversations=[item for item in done if isinstance(item, Conversation)],
        streams=[item for item in done if isinstance(item, Stream)],
    )


def summary_line(result: RealtimeResult) -> str:
    """One line: what the conversations and streams got, and the errors, if any."""
    talks, reads = result.conversations, result.streams
    line = (
        f"{len(talks)} Socket.IO conversations "
        f"({sum(t.completed for t in talks)} complete, "
        f"{sum(len(t.progress) for t in talks)} progress events, "
        f"{sum(t.ack is not None for t in talks)} acks), "
        f"{len(reads)} SSE streams "
        f"({sum(len(s.events) for s in reads)} events, {sum(s.done for s in reads)} done)"
    )
    errors = result.errors
    if errors:
        line += f"; {len(errors)} errors: " + "; ".join(errors[:3])
        if len(errors) > 3:
            line += "; ..."
    return line
