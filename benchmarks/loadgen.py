"""A minimal, CPU-cheap HTTP/1.1 keep-alive load generator (asyncio Protocols, callbacks).

On a 2-core machine the load generator shares the CPU with what it measures, so
the hot path has no HTTP client library, no task per request and no timer per
request: each connection is an asyncio.Protocol that writes one pre-built GET,
parses the status line and Content-Length (or chunked) framing, and starts the
next request from its own data_received callback.

Two modes, both bounded in time AND in count and stopping by themselves:

* closed loop (`rate=None`): N connections, each sending requests back to back;
  measures the maximum throughput.
* rate (`rate=R`): requests are scheduled at fixed times (R per second) and sent
  on an idle connection, opening more (up to `max_connections`) when all are
  busy; latency counts from the scheduled time, so queueing shows (open-loop-ish).

Only loopback targets are accepted.

    python benchmarks/loadgen.py http://127.0.0.1:8080/ --connections 10 --duration 10
    python benchmarks/loadgen.py http://127.0.0.1:8080/ --rate 800 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HARD_MAX_REQUESTS = 5_000_000
perf = time.perf_counter


@dataclass
class Result:
    mode: str  # "closed" | "rate"
    connections: int  # connections opened at most at once
    duration_s: float  # measured window
    requests: int  # requests sent in the measured window (answered or failed)
    errors: int  # of those: non-2xx/3xx, connection failures, timeouts
    rps: float  # good responses that arrived within the measured window, per second
    p50_ms: float  # latency of the requests sent (rate mode: scheduled) in the window
    p99_ms: float
    mean_ms: float
    max_ms: float
    total_responses: int  # incl. warm-up, any status: requests that reached the server
    total_errors: int
    target_rate: float | None = None
    not_sent: int = 0  # rate mode: scheduled but never sent (all connections busy until the end)

    def line(self) -> str:
        rate = ""
        if self.target_rate:
            rate = f" target {self.target_rate:.0f}/s not_sent {self.not_sent}"
        return (
            f"{self.mode}: {self.rps:.0f} req/s p50 {self.p50_ms:.2f} ms p99 {self.p99_ms:.2f} ms "
            f"errors {self.errors} ({self.requests} in {self.duration_s:.1f}s, "
            f"{self.connections} conns){rate}"
        )


def parse_response(buf: bytearray) -> tuple[int, int, bool] | None:
    """(status, bytes used, keep-alive) of the first complete response in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    version, status_s = lines[0].split(b" ", 2)[:2]
    status = int(status_s)
    length, chunked, keep = -1, False, version != b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    pos = end + 4
    if status < 200 or status in (204, 304):
        return status, pos, keep
    if chunked:
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                if buf[pos : pos + 2] == b"\r\n":
                    return status, pos + 2, keep
                trailer_end = buf.find(b"\r\n\r\n", pos)
                return None if trailer_end < 0 else (status, trailer_end + 4, keep)
            if len(buf) < pos + size + 2:
                return None
            pos += size + 2
    if length < 0:
        raise ValueError("response without Content-Length or chunked framing")
    return (status, pos + length, keep) if len(buf) >= pos + length else None


class _Conn(asyncio.Protocol):
    def __init__(self, runner: _Runner) -> None:
        self.runner = runner
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy = False
        self.closed = False
        self.t_sched = 0.0
        self.t_start = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, t_sched: float) -> None:
        self.busy, self.t_sched, self.t_start = True, t_sched, perf()
        self.transport.write(self.runner.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            parsed = parse_response(self.buf)
        except ValueError:
            self.transport.abort()  # type: ignore[union-attr]
            return
        if parsed is None:
            return
        status, used, keep = parsed
        del self.buf[:used]
        self.busy = False
        if not keep:
            self.closed = True
            self.transport.close()  # type: ignore[union-attr]
        self.runner.done(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.runner.lost(self, failed=self.busy)
        self.busy = False


class _Runner:
    def __init__(
        self,
        url: str,
        *,
        connections: int,
        duration: float,
        warmup: float,
        max_requests: int,
        rate: float | None,
        max_connections: int,
        timeout: float,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK:
            raise ValueError(f"loadgen only targets http://127.0.0.1 (got {url!r})")
        self.host, self.port = parts.hostname, parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "User-Agent: shadow-bench\r\nAccept: */*\r\n\r\n"
        ).encode()
        self.rate, self.timeout = rate, timeout
        self.want = max(1, connections if rate is None else min(connections, max_connections))
        self.max_conns = self.want if rate is None else max(self.want, max_connections)
        self.duration, self.warmup = duration, warmup
        self.max_requests = min(max_requests, HARD_MAX_REQUESTS)
        self.conns: set[_Conn] = set()
        self.connecting = 0
        self.idle: list[_Conn] = []
        self.backlog: collections.deque[float] = collections.deque()
        self.lat: list[float] = []
        self.errors = self.responses = self.total_errors = self.peak = self.ok_in_window = 0
        self.stopping = False
        self.t_measure = self.t_end = 0.0
        self.t_full = 0.0  # when max_requests was reached, if it was

    # -- callbacks (hot path) ------------------------------------------------
    def _record(self, t_sched: float, ok: bool) -> None:
        if not ok:
            self.total_errors += 1
        if ok and self.t_measure <= perf() < self.t_end:
            self.ok_in_window += 1
        if self.t_measure <= t_sched < self.t_end:
            if ok:
                self.lat.append(perf() - t_sched)
            else:
                self.errors += 1
            if len(self.lat) + self.errors >= self.max_requests and not self.stopping:
                self.t_full = perf()
                self.stopping = True

    def done(self, conn: _Conn, status: int) -> None:
        self.responses += 1
        self._record(conn.t_sched, 200 <= status < 400)
        self._next(conn)

    def lost(self, conn: _Conn, failed: bool) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if failed:
            self._record(conn.t_sched, False)
        if not self.stopping and (self.rate is None or self.backlog):
            asyncio.get_running_loop().call_later(0.05 if failed else 0, self._open)
        self._check_finished()

    def _next(self, conn: _Conn) -> None:
        now = perf()
        if now >= self.t_end:
            self.stopping = True
        if conn.closed:
            if not self.stopping and (self.rate is None or self.backlog):
                self._open()
        elif self.rate is None:
            if not self.stopping:
                conn.send(now)
                return
        elif self.backlog:
            conn.send(self.backlog.popleft())
            return
        else:
            self.idle.append(conn)
        self._check_finished()

    # -- connections -----------------------------------------------------------
    def _open(self) -> None:
        if self.stopping or len(self.conns) + self.connecting >= self.max_conns:
            return
        self.connecting += 1
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(self), self.host, self.port), self.timeout
            )
        except (TimeoutError, OSError):
            self.connecting -= 1
            self.total_errors += 1
            if perf() < self.t_end:
                loop.call_later(0.1, self._open)
            return
        self.connecting -= 1
        self.conns.add(conn)
        self.peak = max(self.peak, len(self.conns))
        if self.rate is None:
            self._next(conn)
        elif self.backlog:
            conn.send(self.backlog.popleft())
        else:
            self.idle.append(conn)
            self._check_finished()

    def _check_finished(self) -> None:
        if (
            self.stopping
            and not any(c.busy for c in self.conns)
            and (self.rate is None or not self.ticking)
            and not self.finished.done()
        ):
            self.finished.set_result(None)

    # -- driving -------------------------------------------------------------
    async def _tick(self) -> None:
        """Rate mode: release request i at t0 + i/rate."""
        assert self.rate
        t0 = perf()
        measured = min(int(self.duration * self.rate), self.max_requests)
        limit = int(self.warmup * self.rate) + measured
        issued = 0
        while issued < limit and not self.stopping:
            now = perf()
            due = min(limit, int((now - t0) * self.rate) + 1)
            while issued < due:
                t_sched = t0 + issued / self.rate
                issued += 1
                if self.idle:
                    self.idle.pop().send(t_sched)
                else:
                    self.backlog.append(t_sched)
                    self._open()
            await asyncio.sleep(max(0.0005, t0 + issued / self.rate - perf()))
        self.ticking = False

    async def _watchdog(self) -> None:
        while not self.finished.done():
            await asyncio.sleep(0.25)
            now = perf()
            for c in list(self.conns):
                if c.busy and now - c.t_start > self.timeout and c.transport:
                    c.transport.abort()
            if now >= self.t_end:
                self.stopping = True
                self._check_finished()

    async def run(self) -> Result:
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ticking = self.rate is not None
        start = perf()
        self.t_measure = start + self.warmup
        self.t_end = self.t_measure + self.duration
        for _ in range(self.want):
            self._open()
        tasks = [asyncio.ensure_future(self._watchdog())]
        if self.rate:
            tasks.append(asyncio.ensure_future(self._tick()))
        try:
            await asyncio.wait_for(
                asyncio.shield(self.finished), self.warmup + self.duration + self.timeout + 2
            )
        except TimeoutError:
            pass
        finally:
            for t in tasks:
                t.cancel()
            for c in list(self.conns):
                if c.transport:
                    c.transport.abort()
        window = (self.t_full or self.t_end) - self.t_measure
        not_sent = sum(1 for t in self.backlog if t >= self.t_measure)
        return _summarize(self, window, not_sent)


def _summarize(r: _Runner, window: float, not_sent: int) -> Result:
    lat = sorted(r.lat)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

    n = len(lat) + r.errors
    return Result(
        mode="rate" if r.rate else "closed",
        connections=r.peak,
        duration_s=round(window, 3),
        requests=n,
        errors=r.errors,
        rps=r.ok_in_window / window if window > 0 else 0.0,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        mean_ms=sum(lat) / len(lat) * 1000 if lat else float("nan"),
        max_ms=lat[-1] * 1000 if lat else float("nan"),
        total_responses=r.responses,
        total_errors=r.total_errors,
        target_rate=r.rate,
        not_sent=not_sent,
    )


async def run(
    url: str,
    *,
    connections: int = 10,
    duration: float = 10.0,
    warmup: float = 1.0,
    max_requests: int = 1_000_000,
    rate: float | None = None,
    max_connections: int = 64,
    timeout: float = 10.0,
) -> Result:
    """Load `url` (loopback only) and return what was measured after the warm-up."""
    runner = _Runner(
        url,
        connections=connections,
        duration=duration,
        warmup=warmup,
        max_requests=max_requests,
        rate=rate,
        max_connections=max_connections,
        timeout=timeout,
    )
    return await runner.run()


def main() -> None:
    p = argparse.ArgumentParser(description="Minimal HTTP/1.1 keep-alive load generator.")
    p.add_argument("url")
    p.add_argument("-c", "--connections", type=int, default=10)
    p.add_argument("-d", "--duration", type=float, default=10.0)
    p.add_argument("-w", "--warmup", type=float, default=1.0)
    p.add_argument("-n", "--max-requests", type=int, default=1_000_000)
    p.add_argument("-r", "--rate", type=float, default=None, help="fixed requests per second")
    p.add_argument("--max-connections", type=int, default=64, help="rate mode: at most")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    res = asyncio.run(
        run(
            a.url,
            connections=a.connections,
            duration=a.duration,
            warmup=a.warmup,
            max_requests=a.max_requests,
            rate=a.rate,
            max_connections=a.max_connections,
        )
    )
    print(json.dumps(asdict(res), indent=2) if a.json else res.line())


if __name__ == "__main__":
    main()
