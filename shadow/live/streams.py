"""The addon's side of real-time answers: copies taken as they pass, never holding them up.

`StreamTap` is a mitmproxy stream function for a `text/event-stream` answer: each
chunk goes to the client at once, unchanged, and a bounded copy is kept on the
side until the stream ends or a limit (time, events, bytes) is reached.

`TalkTap` follows one WebSocket conversation: each message, as mitmproxy relays it,
becomes a message for the worker (which copies the client's to the candidate); past
the caps (messages, time, bytes) the copy ends ("limit") and the conversation goes
on untouched for the client.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shadow.pipeline.sender import StreamLimits

Put = Callable[[tuple[Any, ...]], None]
# What becomes of a stream's copy: (bytes, how it ended, chunk times, when it ended in ms).
StreamDone = Callable[[bytes, str, list[tuple[int, float]], float], None]
MAX_TIMES = 100_000  # chunk times kept per stream; later events take the last one's


class StreamTap:
    """Passes an event stream's chunks through and keeps a bounded copy (see module)."""

    def __init__(self, limits: StreamLimits, max_body: int, done: StreamDone) -> None:
        self._limits = limits
        self._max = max_body
        self._done: StreamDone | None = done
        self._kept = bytearray()
        self._events = 0
        self._t0 = time.monotonic()
        # (bytes kept so far, ms) per chunk: the events' times (bounded: see MAX_TIMES)
        self._times: list[tuple[int, float]] = []
        self._timer: asyncio.TimerHandle | None = None
        try:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(limits.seconds, self.finish, "limit")
        except RuntimeError:  # no loop (a unit test): the time limit is checked per chunk
            pass
        self._stop = time.monotonic() + limits.seconds

    def __call__(self, chunk: bytes) -> bytes:
        if self._done is not None:
            if not chunk:  # mitmproxy's end of the stream
                self.finish("closed")
            else:
                self._kept += chunk[: max(0, self._max - len(self._kept))]
                if len(self._times) < MAX_TIMES:
                    self._times.append((len(self._kept), (time.monotonic() - self._t0) * 1000))
                self._events += chunk.count(b"\n\n") + chunk.count(b"\r\n\r\n")
                full = len(self._kept) >= self._max or self._events >= self._limits.messages
                if full or time.monotonic() >= self._stop:
                    self.finish("limit")
        return chunk

    def finish(self, ended: str) -> None:
        """Stop keeping (once): hand the copy on, `ended` "closed" | "limit" | "error"."""
        done, self._done = self._done, None
        if self._timer is not None:
            self._timer.cancel()
        if done is not None:
            t_end = (time.monotonic() - self._t0) * 1000
            done(bytes(self._kept), ended, self._times, t_end)
            self._kept, self._times = bytearray(), []


@dataclass
class TalkTap:
    """One WebSocket conversation's copy to the worker (see module)."""

    key: str
    t0: float  # unix time of the 101
    limits: StreamLimits
    put: Put
    messages: int = 0
    client_bytes: int = 0
    server_bytes: int = 0
    ended: bool = False

    def message(self, from_client: bool, text: bool, content: bytes, at: float) -> None:
        """A message mitmproxy is relaying: copied, or the copy ends at a limit."""
        if self.ended:
            return
        limits = self.limits
        if self.messages >= limits.messages or at - self.t0 > limits.seconds:
            self.end(None, "", "", "limit", at)
            return
        self.messages += 1
        size = len(content)
        if from_client:
            # The candidate must get the client's messages whole: past the budget, stop.
            self.client_bytes += size
            if self.client_bytes > limits.message_bytes:
                self.end(None, "", "", "limit", at)
                return
            self.put(("ws", self.key, True, text, content, at))
            return
        room = max(0, limits.message_bytes - self.server_bytes)
        if size <= room:
            self.server_bytes += size
            self.put(("ws", self.key, False, text, content, at))
            return
        # Past the budget only the first bytes cross to the worker, with the digest.
        self.server_bytes += room
        digest = hashlib.sha256(content).hexdigest()
        self.put(("ws", self.key, False, text, content[:room], at, size, digest))

    def end(self, code: int | None, reason: str, by: str, ended: str, at: float) -> None:
        """The conversation ended (or its copy did, at a limit): once."""
        if not self.ended:
            self.ended = True
            self.put(("wsend", self.key, code, reason, by, ended, at))
