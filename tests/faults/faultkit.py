"""Shared by the fault-injection tests: paced load, process lookup, memory and accounting.

Each test counts the requests its clients got an answer for itself (`Load`), and
compares that count with the run's row in `runs` (`Accounting`), never the store
with itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shadow.store.writer import reading
from tests.conftest import RunningProxy
from tests.integration.helpers import rows


@dataclass
class Sent:
    """One request a client sent through the proxy, and what came back."""

    n: int
    path: str
    started: float  # time.monotonic()
    ended: float = 0.0
    status: int | None = None  # None: no HTTP answer (refused, reset, timeout)
    error: str = ""
    refused: bool = False  # the connection was refused: the proxy no longer listens

    @property
    def answered(self) -> bool:
        return self.status is not None


@dataclass
class Load:
    """GETs through the proxy from `clients` clients, paced at `rate` per second in all.

    Each client keeps its connection alive unless `fresh_connections`. Bounded three
    ways: at most `count` requests, none started after `seconds`, and (with
    `until_gone`) a client stops at its first request without an answer: the proxy
    refused the connection or dropped it.
    """

    base: str
    rate: float
    count: int
    seconds: float
    clients: int = 8
    path: Callable[[int], str] = lambda n: f"/api/item/{n}"
    until_gone: bool = False
    fresh_connections: bool = False  # "Connection: close": a new connection per request
    sent: list[Sent] = field(default_factory=list)
    t0: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 60.0) -> list[Sent]:
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load did not end in time"
        return self.sent

    async def _run(self) -> None:
        tickets = iter(range(self.count))
        await asyncio.gather(*(self._client(tickets) for _ in range(self.clients)))

    async def _client(self, tickets: Iterator[int]) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=15, trust_env=False, limits=limits) as client:
            for n in tickets:
                due = self.t0 + n / self.rate
                if self._stop.is_set() or due - self.t0 > self.seconds:
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                sent = Sent(n, self.path(n), time.monotonic())
                self.sent.append(sent)
                headers = {"connection": "close"} if self.fresh_connections else {}
                try:
                    resp = await client.get(self.base + sent.path, headers=headers)
                    sent.status = resp.status_code
                except httpx.HTTPError as exc:
                    sent.error = f"{type(exc).__name__}: {exc}"
                    sent.refused = isinstance(exc, httpx.ConnectError)
                sent.ended = time.monotonic()
                if self.until_gone and not sent.answered:
                    return

    def errors(self) -> list[str]:
        return [s.error for s in self.sent if not s.answered]


# -- processes -------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid and fields[0] != b"Z":
            found.append(int(entry))
    return found


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def worker_children(pid: int) -> list[int]:
    """Children of `pid` started by multiprocessing's spawn, but not its resource tracker.

    Under the proxy: its worker; under the worker: its comparison process(es).
    """
    found = []
    for child in children(pid):
        line = cmdline(child)
        if b"spawn_main" in line and b"resource_tracker" not in line:
            found.append(child)
    return found


def find_worker(proxy: RunningProxy, timeout: float = 30.0) -> int:
    """The pid of the proxy's worker process, once it is the same for 0.3 s."""
    deadline = time.monotonic() + timeout
    last: list[int] = []
    while time.monotonic() < deadline:
        found = worker_children(proxy.process.pid)
        if len(found) == 1 and found == last:
            return found[0]
        last = found
        time.sleep(0.3)
    raise AssertionError(f"no single worker process under the proxy: {last}")


def vm_hwm(pid: int) -> int | None:
    """Peak resident set size of `pid` in bytes (VmHWM), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory(threading.Thread):
    """Polls the worker and its comparison process(es) every 50 ms; keeps each one's peak."""

    def __init__(self, worker: int) -> None:
        super().__init__(daemon=True)
        self.worker = worker
        self.worker_peak = 0
        self.pool_peak = 0
        self.pool_pids: set[int] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(0.05)

    def sample(self) -> None:
        self.worker_peak = max(self.worker_peak, vm_hwm(self.worker) or 0)
        for pid in worker_children(self.worker):
            self.pool_pids.add(pid)
            self.pool_peak = max(self.pool_peak, vm_hwm(pid) or 0)

    def finish(self) -> None:
        self.sample()
        self._halt.set()
        self.join(5)


# -- the store --------------------------------------------------------------


@dataclass(frozen=True)
class Accounting:
    """A run's row in `runs`, and the rows it really has in `exchanges`."""

    run_id: str
    rows: int  # SELECT count(*) FROM exchanges WHERE run_id = ?
    exchanges: int
    requests: int
    rows_spilled: int
    requests_shed: int
    requests_lost: int
    worker_restarts: int
    copies_dropped: int
    ended: bool

    def check(self, answered: int | None = None) -> None:
        """The accounting invariant; with `answered`, also requests == answered."""
        total = self.rows + self.rows_spilled + self.requests_shed + self.requests_lost
        assert total == self.requests, self
        assert self.ended, self
        if answered is not None:
            assert self.requests == answered, (self, answered)


def accounting(db: Path) -> Accounting:
    """The only run of a closed store."""
    found = rows(
        db,
        "SELECT run_id, (SELECT count(*) FROM exchanges e WHERE e.run_id = r.run_id), "
        "exchanges, requests, rows_spilled, requests_shed, requests_lost, worker_restarts, "
        "copies_dropped, ended_at IS NOT NULL FROM runs r",
    )
    assert len(found) == 1, found
    r = found[0]
    rows_, exchanges, requests, spilled, shed, lost, restarts, dropped = (
        int(v or 0) for v in r[1:9]
    )
    return Accounting(
        str(r[0]), rows_, exchanges, requests, spilled, shed, lost, restarts, dropped, bool(r[9])
    )


def live_count(db: Path, sql: str = "SELECT count(*) FROM exchanges") -> int:
    """A count from a store the proxy is writing (asks the writer to let go meanwhile)."""
    with reading(str(db), wait=10) as con:
        found = con.execute(sql).fetchone()
    return int(found[0]) if found else 0


def wait_ready(db: Path, timeout: float = 90.0) -> None:
    """Until the worker has written the run's row: it is started and holds the store.

    Polled gently (every 0.5 s): each read makes the writer let go of the file.
    """
    ok = wait_until(lambda: live_count(db, "SELECT count(*) FROM runs") > 0, timeout, 0.5)
    assert ok, f"the worker did not start within {timeout} s"


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return True
        time.sleep(step)
    return False


def stop(proxy: RunningProxy, sig: int = signal.SIGINT, timeout: float = 90.0) -> float:
    """Signal the proxy and wait for it to exit; seconds from the signal to its exit."""
    t0 = time.monotonic()
    if proxy.process.poll() is None:
        proxy.process.send_signal(sig)
    out, _ = proxy.process.communicate(timeout=timeout)
    proxy.output = out
    return time.monotonic() - t0


def stored_paths(db: Path) -> set[str]:
    return {str(p) for (p,) in rows(db, "SELECT path FROM exchanges")}


def app(handlers: dict[str, Any]) -> Any:
    """A Starlette app from {path: async handler} (GET and POST)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route(p, h, methods=["GET", "POST"]) for p, h in handlers.items()])


# -- misbehaving servers -----------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The request line and headers (a copy has no body unless it is a POST)."""
    return await reader.readuntil(b"\r\n\r\n")


def target_of(head: bytes) -> str:
    return head.split(b" ", 2)[1].decode("latin-1")


def http_answer(body: bytes) -> bytes:
    """A 200 JSON answer that closes the connection."""
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


class RawServer:
    """A TCP server on 127.0.0.1 (its own event loop, in a thread): `handler` per connection.

    For backends that misbehave below HTTP: reset, garbage, answers that never come.
    Connections still open at the end are cancelled, not waited for.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self.heads: list[bytes] = []  # request heads seen, for handlers that record them
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RawServer:
        self._thread.start()
        assert self._ready.wait(10), "raw server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512)
        self.port = int(server.sockets[0].getsockname()[1])
        self._ready.set()
        async with server:
            await self._done.wait()
        # asyncio.run cancels the connections still being served

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # the server stops: end quietly (asyncio would log a cancelled handler)
        finally:
            writer.close()


def raw_request(port: int, data: bytes, timeout: float = 15.0) -> bytes:
    """Send raw bytes to 127.0.0.1:`port` and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        reply = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                reply += chunk
    return reply
