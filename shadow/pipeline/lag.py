"""How much our own delay is in a measurement: the stalls of this event loop.

A copy's latency is timed from sending it to reading the last byte of its answer.
If the event loop is busy (or the process waits for a CPU) when that byte arrives,
the read comes late and the delay would be charged to the candidate. A timer
callback (no task: 200 wake-ups a second in the proxy's own loop should cost as
little as can be) wakes every `TICK` seconds and keeps how late each wake-up came;
`worst(sent)` is the longest stall that can have delayed the write of a request
sent at `sent` or the read of its answer now.
"""

from __future__ import annotations

import asyncio
import collections
import time

TICK = 0.005  # seconds between wake-ups (200 a second: well under 1 % of a core)
NOTABLE = 0.0005  # stalls shorter than this are timer noise, not kept
KEEP = 4096  # stalls remembered (the newest); a flight older than them reads 0


class Recent:
    """The newest (monotonic time, value) pairs, at most `keep` of them."""

    def __init__(self, keep: int = KEEP) -> None:
        self.items: collections.deque[tuple[float, float]] = collections.deque(maxlen=keep)

    def add(self, value: float) -> None:
        self.items.append((time.monotonic(), value))

    def worst(self, window: float) -> float:
        """The largest value of the last `window` seconds (0 when none); safe to call from
        another thread than the one adding (it reads a copy, made in one C call)."""
        since = time.monotonic() - window
        worst = 0.0
        for at, value in reversed(list(self.items)):
            if at < since:
                break
            worst = max(worst, value)
        return worst


class LoopLag:
    """The recent stalls of the running event loop (start it with `start()`)."""

    def __init__(self) -> None:
        self.stalls = Recent()  # (wake-up time, how late it came) of notable stalls
        self._last_wake = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        if self._timer is None:
            self._loop = asyncio.get_running_loop()
            self._last_wake = time.monotonic()
            self._timer = self._loop.call_later(TICK, self._wake)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        now = time.monotonic()
        stall = now - self._last_wake - TICK
        self._last_wake = now
        if stall > NOTABLE:
            self.stalls.items.append((now, stall))
        assert self._loop is not None
        self._timer = self._loop.call_later(TICK, self._wake)

    def worst(self, sent: float) -> float:
        """Our own delay (seconds) in a request timed from `sent` (monotonic) to now.

        Our delay enters a timing at its two ends: a stall right after `sent` holds the
        request's write back, a stall ending at the read of the answer holds the read
        back (and is still going on if the wake-up that measures it is overdue). A
        stall in between, while the backend works, delays neither.
        """
        now = time.monotonic()
        worst = 0.0
        if self._timer is not None:
            worst = max(0.0, now - self._last_wake - TICK)  # going on now
        for wake, stall in reversed(self.stalls.items):  # this loop's thread: no copy
            if wake < sent:
                break
            # A stall spans (wake - stall, wake]: one that ended just now, or that began
            # by the time the write was due, held one of the ends back.
            if wake >= now - 2 * TICK or wake - stall <= sent + 2 * TICK:
                worst = max(worst, stall)
        return worst
