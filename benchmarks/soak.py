"""Soak test: `shadow proxy` for a long time at half of mitmdump's maximum rate.

    python benchmarks/soak.py                         # 30 min (+ ~15 s to measure the rate)
    python benchmarks/soak.py --minutes 3 --rate 150  # a short run at a fixed rate

Starts two small backends on 127.0.0.1 (subprocesses of this script, `--serve`):

- the **primary** answers every GET /api/items/{n} at once with JSON of one of three
  sizes (~0.2, ~0.8 and ~6 KB, by n);
- the **candidate** answers the same request by a fixed mixture, chosen by n (so a
  run is repeatable): 68 % the same bytes, 20 % slightly different JSON, 5 % the
  same after 2 s, 3 % a connection reset, 2 % a 500, 1 % invalid JSON, 1 % a gzip
  body that inflates to 64 MiB (shadow stops decoding at its limit).

Unless `--rate` is given, it first measures plain mitmdump's closed-loop maximum in
front of the primary (~10 s, as benchmarks/run.py does) and uses half of it. Then it
starts the real `shadow proxy` (`--run-id soak`, its own DuckDB file) and sends GETs
with increasing n at that rate for `--minutes` (benchmarks/loadgen.py's open-loop
rate mode, at most `--max-connections` connections). Every `--sample-every` seconds
it reads VmRSS and CPU time of the proxy, its worker process and the worker's
comparison process from /proc. At the end it stops the proxy with SIGINT, waits for
it to drain, reads the run's accounting row and what was stored, prints a summary
and writes every sample to `--out`.

Exit 0 when: the proxy exited 0; runs.requests equals the answers the load generator
got; requests_lost = 0; rows + spilled + shed + lost = requests; no exchange stored
twice; no worker restart; every client request got a 2xx from the proxy; and the RSS
of each process grew by at most `--max-growth-mb` MB and `--max-growth-pct` % from
the first sample after the warm-up to the last one. Otherwise 1 (2: could not run).
Only 127.0.0.1; every loop is bounded in time; every subprocess is killed on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import gzip
import json
import math
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from benchmarks.procs import Procs, _children, cpu_seconds, free_port, tool  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soak.json"
RUN_ID = "soak"
MIB = 1024 * 1024

# ---------------------------------------------------------------------------
# The candidate's mixture: kind of answer by request number n (repeatable).
# ---------------------------------------------------------------------------
MIXTURE: tuple[tuple[str, int], ...] = (  # (kind, percent); the percents add up to 100
    ("equal", 68),
    ("differ", 20),  # slightly different JSON: a changed value, a changed number, a new field
    ("slow", 5),  # the same bytes, after SLOW_S seconds
    ("reset", 3),  # the connection is reset (RST) instead of an answer
    ("error500", 2),  # 500 with a small JSON error
    ("garbage", 1),  # 200 application/json that is neither JSON nor UTF-8
    ("gzip_bomb", 1),  # 200 application/json, gzip, inflating to BOMB_SIZE bytes
)
SLOW_S = 2.0
BOMB_SIZE = 64 * MIB
_KIND_BY_BUCKET: tuple[str, ...] = tuple(k for k, pct in MIXTURE for _ in range(pct))
assert len(_KIND_BY_BUCKET) == 100


def bucket(n: int) -> int:
    """0..99 from request number n (Knuth's multiplicative hash: spread, deterministic)."""
    return (n * 2654435761) % 2**32 % 100


def kind_of(n: int) -> str:
    return _KIND_BY_BUCKET[bucket(n)]


def request_number(target: bytes) -> int:
    """n of a target like /api/items/123 (0 when there is none)."""
    last = target.split(b"?", 1)[0].rstrip(b"/").rsplit(b"/", 1)[-1]
    return int(last) if last.isdigit() and len(last) < 19 else 0


# ---------------------------------------------------------------------------
# The backends: a tiny HTTP/1.1 keep-alive server (asyncio Protocol; GETs only).
# ---------------------------------------------------------------------------
def _rest(items: int, changed: bool) -> bytes:
    """A JSON document without its leading `{"id":N`: `,"kind":...}`."""
    doc: dict[str, Any] = {
        "kind": "item",
        "status": "completed" if changed else "complete",
        "owner": {"id": 17, "name": "Ada Lovelace", "email": "ada@example.com"},
        "metrics": {"latency_ms": 13.0 if changed else 12.5, "error_rate": 0.0025, "ok": True},
        "items": [
            {"sku": f"SKU-{i:04d}", "name": f"item number {i}", "qty": i * 3, "price": i * 1.25}
            for i in range(items)
        ],
    }
    if changed:
        doc["version"] = 2
    return b"," + json.dumps(doc, separators=(",", ":")).encode()[1:]


_ITEMS_BY_SIZE = (1, 10, 90)  # 240 B, 811 B, 6.1 KB (+ digits of n)
_REST = {changed: [_rest(k, changed) for k in _ITEMS_BY_SIZE] for changed in (False, True)}


def json_body(n: int, changed: bool = False) -> bytes:
    return b'{"id":' + str(n).encode() + _REST[changed][n % len(_ITEMS_BY_SIZE)]


def http_response(status: str, body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


class Backend(asyncio.Protocol):
    """One client connection; answers its requests in order, one at a time."""

    bomb = b""  # the gzip body (made once per candidate process)
    MAX_BUFFER = 1 * MIB

    def __init__(self, role: str) -> None:
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiting = False  # a slow answer is pending: later requests wait

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > self.MAX_BUFFER and self.transport:
            self.transport.abort()
            return
        self._serve()

    def _serve(self) -> None:
        # Bounded: each pass consumes one complete request from a buffer of at most 1 MiB.
        while self.transport is not None and not self.waiting:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).split(b"\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            parts = head[0].split(b" ")
            self._answer(request_number(parts[1] if len(parts) > 1 else b"/"))

    def _answer(self, n: int) -> None:
        assert self.transport is not None
        if self.role == "primary":
            self.transport.write(http_response("200 OK", json_body(n)))
            return
        kind = kind_of(n)
        if kind == "equal":
            self.transport.write(http_response("200 OK", json_body(n)))
        elif kind == "differ":
            self.transport.write(http_response("200 OK", json_body(n, changed=True)))
        elif kind == "slow":
            self.waiting = True
            asyncio.get_running_loop().call_later(SLOW_S, self._late, json_body(n))
        elif kind == "reset":
            sock = self.transport.get_extra_info("socket")
            if sock is not None:  # linger 0: close() sends RST, not FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
        elif kind == "error500":
            self.transport.write(http_response("500 Internal Server Error", b'{"error":"boom"}'))
        elif kind == "garbage":
            body = b'{"id":' + str(n).encode() + b',"items":[tru\xff\xfe<html>oops'
            self.transport.write(http_response("200 OK", body))
        else:  # gzip_bomb
            self.transport.write(http_response("200 OK", self.bomb, b"content-encoding: gzip\r\n"))

    def _late(self, body: bytes) -> None:
        self.waiting = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(http_response("200 OK", body))
            self._serve()


def serve(role: str, port: int, lifetime: float) -> None:
    """Run a backend until killed, its parent dies, or `lifetime` seconds pass."""
    if role == "candidate":
        doc = b'{"pad":"' + b"a" * (BOMB_SIZE - 10) + b'"}'
        Backend.bomb = gzip.compress(doc, 9, mtime=0)
        del doc
    parent = os.getppid()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Backend(role), "127.0.0.1", port, backlog=512)
        deadline = time.monotonic() + lifetime
        async with server:
            while time.monotonic() < deadline and os.getppid() == parent:
                await asyncio.sleep(1.0)

    asyncio.run(main())


# ---------------------------------------------------------------------------
# Load: loadgen's open-loop rate mode, with a new request number per request.
# ---------------------------------------------------------------------------
class SoakLoad(loadgen._Runner):
    """GET /api/items/1, /2, ... at a fixed rate; answers counted by status."""

    def __init__(self, port: int, **kwargs: Any) -> None:
        self.issued = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failed = 0  # connection broke or timed out with a request in flight
        self._head = (
            b"GET /api/items/%d HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() + b"\r\n"
            b"User-Agent: shadow-soak\r\nAccept: */*\r\n\r\n"
        )
        super().__init__(f"http://127.0.0.1:{port}/", **kwargs)

    @property  # type: ignore[override]
    def request(self) -> bytes:
        """Read once per request sent (loadgen's _Conn.send): the next request number."""
        self.issued += 1
        return self._head % self.issued

    @request.setter
    def request(self, value: bytes) -> None:
        pass  # the base class's one fixed request is not used

    def done(self, conn: Any, status: int) -> None:
        self.statuses[status] += 1
        super().done(conn, status)

    def lost(self, conn: Any, failed: bool) -> None:
        if failed:
            self.failed += 1
        super().lost(conn, failed)


# ---------------------------------------------------------------------------
# Processes and memory.
# ---------------------------------------------------------------------------
def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def real_children(pid: int) -> list[int]:
    """Children of pid except multiprocessing's resource tracker."""
    return sorted(c for c in _children(pid) if "resource_tracker" not in _cmdline(c))


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclass
class Sample:
    t: float  # seconds since the load started
    issued: int  # requests sent by the load generator so far
    answered: int  # answers it got so far (any status)
    proxy_pid: int
    worker_pid: int | None
    compare_pid: int | None
    proxy_rss_mb: float | None
    worker_rss_mb: float | None
    compare_rss_mb: float | None
    proxy_cpu_s: float
    worker_cpu_s: float | None
    compare_cpu_s: float | None
    load1: float
    p50_ms: float | None = None  # client latency of the answers since the previous sample
    p99_ms: float | None = None
    rows: int | None = None  # exchanges stored so far (--rows only)


PROCESSES = ("proxy", "worker", "compare")


def _percentiles(lat: list[float]) -> tuple[float | None, float | None]:
    if not lat:
        return None, None
    v = sorted(lat)
    return (
        round(v[len(v) // 2] * 1000, 1),
        round(v[min(len(v) - 1, int(0.99 * len(v)))] * 1000, 1),
    )


def take_sample(t: float, load: SoakLoad, proxy_pid: int, db: str | None, since: int = 0) -> Sample:
    """One sample; client latency percentiles over load.lat[since:]."""
    p50, p99 = _percentiles(load.lat[since:])
    workers = real_children(proxy_pid)
    worker = workers[-1] if workers else None
    compares = real_children(worker) if worker else []
    compare = compares[-1] if compares else None
    rows = None
    if db is not None:
        rows = count_rows(db)
    return Sample(
        t=round(t, 1),
        issued=load.issued,
        answered=load.responses,
        proxy_pid=proxy_pid,
        worker_pid=worker,
        compare_pid=compare,
        proxy_rss_mb=rss_mb(proxy_pid),
        worker_rss_mb=rss_mb(worker),
        compare_rss_mb=rss_mb(compare),
        proxy_cpu_s=cpu_seconds(proxy_pid),
        worker_cpu_s=cpu_seconds(worker) if worker else None,
        compare_cpu_s=cpu_seconds(compare) if compare else None,
        load1=round(os.getloadavg()[0], 2),
        p50_ms=p50,
        p99_ms=p99,
        rows=rows,
    )


def count_rows(db: str) -> int | None:
    """Rows stored so far, through shadow's reader protocol (the writer lets go meanwhile)."""
    from shadow.errors import ShadowError
    from shadow.store.writer import reading

    try:
        with reading(db, wait=5.0) as con:
            row = con.execute("SELECT count(*) FROM exchanges").fetchone()
            return int(row[0]) if row else 0
    except (ShadowError, OSError):
        return None


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def sample_line(s: Sample) -> str:
    rows = "" if s.rows is None else f" rows {s.rows}"
    return (
        f"  t={s.t:>6.0f}s sent {s.issued:>7} answered {s.answered:>7}{rows}  RSS MB: proxy "
        f"{_fmt(s.proxy_rss_mb)} worker {_fmt(s.worker_rss_mb)} compare "
        f"{_fmt(s.compare_rss_mb)}  p99 {_fmt(s.p99_ms, '.0f')} ms  load {s.load1:.1f}"
    )


class Sampler(threading.Thread):
    """Samples every `every` seconds until stopped (at most `limit` samples)."""

    def __init__(
        self, load: SoakLoad, proxy_pid: int, every: float, limit: int, db: str | None
    ) -> None:
        super().__init__(daemon=True, name="soak-sampler")
        self.load, self.proxy_pid, self.db = load, proxy_pid, db
        self.every, self.limit = every, limit
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self.print_every = every
        self.t0 = time.monotonic()
        self._seen = 0  # latencies already summarized

    def sample(self) -> Sample:
        since, self._seen = self._seen, len(self.load.lat)
        s = take_sample(time.monotonic() - self.t0, self.load, self.proxy_pid, self.db, since)
        self.samples.append(s)
        return s

    def run(self) -> None:
        printed = -math.inf
        for i in range(self.limit):
            if i and self.stop.wait(max(0.0, self.t0 + i * self.every - time.monotonic())):
                return
            s = self.sample()
            if s.t - printed >= self.print_every - 0.5:
                printed = s.t
                print(sample_line(s), flush=True)


# ---------------------------------------------------------------------------
# The run.
# ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Soak test of `shadow proxy` (loopback only).")
    p.add_argument("--minutes", type=float, default=30.0, help="minutes of load (default 30)")
    p.add_argument(
        "--rate", type=float, default=None, help="requests/s (default: half of mitmdump's max)"
    )
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples")
    p.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before RSS counts as warm (default: 2 min, or 20 %% of a shorter run)",
    )
    p.add_argument("--max-growth-mb", type=float, default=50.0, help="RSS growth allowed, MB")
    p.add_argument("--max-growth-pct", type=float, default=20.0, help="RSS growth allowed, %%")
    p.add_argument("--max-connections", type=int, default=16, help="client connections at most")
    p.add_argument("--rows", action="store_true", help="also count stored rows at each sample")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="the proxy's, seconds")
    p.add_argument("--out", default=str(RESULTS), help="samples and summary (.json or .csv)")
    p.add_argument("--keep-tmp", action="store_true", help="keep logs and the DuckDB file")
    p.add_argument("--serve", choices=("primary", "candidate"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--lifetime", type=float, default=3600.0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.serve is None:
        if a.minutes <= 0 or a.sample_every <= 0 or (a.rate is not None and a.rate <= 0):
            p.error("--minutes, --sample-every and --rate must be positive")
        a.duration = a.minutes * 60
        if a.warmup is None:
            a.warmup = min(120.0, 0.2 * a.duration)
    return a


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        self.a, self.tmp = args, tmp
        self.procs = Procs(tmp)
        self.confdir = os.path.join(tmp, "mitmproxy")
        self.db = os.path.join(tmp, "soak.duckdb")

    def start(self, name: str, argv: list[str], port: int) -> int:
        self.procs.start(name, argv, cwd=str(ROOT))
        self.procs.wait_port(name, port, timeout=60)
        return port

    def backend(self, role: str) -> int:
        port = free_port()
        lifetime = self.a.duration + 900  # outlives the run; its parent kills it anyway
        argv = [sys.executable, __file__, "--serve", role, "--port", str(port)]
        return self.start(role, [*argv, "--lifetime", str(lifetime)], port)

    def mitmdump_max(self, primary: int) -> float:
        """Plain mitmdump's closed-loop maximum in front of the primary (~10 s)."""
        port = free_port()
        argv = [
            tool("mitmdump"), "--mode", f"reverse:http://127.0.0.1:{primary}",
            "--listen-host", "127.0.0.1", "--listen-port", str(port),
            "--set", f"confdir={self.confdir}", "-q",
        ]  # fmt: skip
        self.start("mitmdump", argv, port)
        try:
            res = asyncio.run(
                loadgen.run(
                    f"http://127.0.0.1:{port}/api/items/1",  # the 811-byte answer
                    connections=10,
                    duration=8.0,
                    warmup=1.0,
                )
            )
        finally:
            self.procs.stop("mitmdump", signal.SIGINT)
        print(f"mitmdump closed loop: {res.line()}", flush=True)
        return res.rps

    def proxy(self, primary: int, candidate: int) -> int:
        port = free_port()
        argv = [
            sys.executable, "-m", "shadow.cli.main", "proxy",
            "--primary", f"http://127.0.0.1:{primary}",
            "--candidate", f"http://127.0.0.1:{candidate}",
            "--listen", f"127.0.0.1:{port}", "--db", self.db, "--confdir", self.confdir,
            "--run-id", RUN_ID, "--drain-timeout", str(self.a.drain_timeout), "--quiet",
        ]  # fmt: skip
        self.start("proxy", argv, port)
        # Load starts once the worker process is there (it is spawned after listening).
        pid = self.procs.running["proxy"].pid
        deadline = time.monotonic() + 30
        while not real_children(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        return port

    def run(self) -> dict[str, Any]:
        a = self.a
        primary, candidate = self.backend("primary"), self.backend("candidate")
        print(f"backends on :{primary} (primary) and :{candidate} (candidate)", flush=True)
        max_rate = None
        if a.rate is None:
            max_rate = self.mitmdump_max(primary)
            if max_rate < 2:
                raise RuntimeError(f"mitmdump managed {max_rate:.1f} req/s: nothing to soak")
        rate = a.rate or round(max_rate / 2)  # type: ignore[operator]
        port = self.proxy(primary, candidate)
        proxy_pid = self.procs.running["proxy"].pid
        print(
            f"shadow proxy on :{port} (pid {proxy_pid}): {rate:g} req/s for {a.minutes:g} min, "
            f"sampling every {a.sample_every:g}s, warm-up {a.warmup:g}s",
            flush=True,
        )
        load = SoakLoad(
            port,
            connections=4,
            duration=a.duration,
            warmup=0.0,
            max_requests=int(a.duration * rate * 1.01) + 100,
            rate=rate,
            max_connections=a.max_connections,
            timeout=10.0,
        )
        sampler = Sampler(
            load,
            proxy_pid,
            a.sample_every,
            limit=int(a.duration / a.sample_every) + 30,
            db=self.db if a.rows else None,
        )
        sampler.print_every = max(a.sample_every, a.duration / 30)
        sampler.start()
        try:
            res = asyncio.run(load.run())
        finally:
            sampler.stop.set()
            sampler.join(30)
        last = sampler.sample()  # the end of the curve: load just finished
        print(sample_line(last), flush=True)
        print(f"load: {res.line()}", flush=True)
        t0 = time.monotonic()
        code = self.procs.stop("proxy", signal.SIGINT, timeout=a.drain_timeout + 120)
        stop_s = time.monotonic() - t0
        log = self.procs.log("proxy").strip()
        print(f"shadow proxy exited with {code} after {stop_s:.1f}s", flush=True)
        if log:
            print("  its output (last lines):\n    " + "\n    ".join(log.splitlines()[-8:]))
        return {
            "mitmdump_max_rps": max_rate,
            "rate": rate,
            "load": asdict(res),
            "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
            "client_failures": load.failed,
            "issued": load.issued,
            "answered": load.responses,
            "proxy_exit_code": code,
            "stop_s": round(stop_s, 1),
            "proxy_log_tail": log[-2000:],
            "store": read_store(self.db, load.issued),
            "samples": sampler.samples,
        }


def read_store(db: str, issued: int) -> dict[str, Any]:
    """The run's accounting row, duplicates, and outcomes by the candidate's kind of answer."""
    from shadow.store.writer import reading

    if not os.path.exists(db):
        return {"error": f"{db} does not exist"}
    with reading(db, wait=30.0) as con:
        names = (
            "requests, exchanges, rows_spilled, requests_shed, requests_lost, "
            "worker_restarts, copies_dropped"
        )
        row = con.execute(f"SELECT {names} FROM runs WHERE run_id = ?", [RUN_ID]).fetchone()
        if row is None:
            return {"error": f"no run {RUN_ID!r} in {db}"}
        out: dict[str, Any] = dict(zip([n.strip() for n in names.split(",")], row, strict=True))
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT exchange_id) FROM exchanges WHERE run_id = ?",
            [RUN_ID],
        ).fetchone() or (0, 0)
        out["rows"], out["duplicate_rows"] = total, total - distinct
        out["verdicts"] = dict(
            con.execute(
                "SELECT verdict, count(*) FROM exchanges WHERE run_id = ? "
                "GROUP BY 1 ORDER BY 2 DESC",
                [RUN_ID],
            ).fetchall()
        )
        out["skip_reasons"] = dict(
            con.execute(
                "SELECT left(skip_reason, 80), count(*) FROM exchanges "
                "WHERE run_id = ? AND skip_reason IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 8",
                [RUN_ID],
            ).fetchall()
        )
        # Outcome by the candidate's kind: the kind follows from n (the path's last part).
        found = con.execute(
            """
            SELECT CAST(regexp_extract(path, '(\\d+)$', 1) AS BIGINT) AS n, verdict,
                   coalesce(split_part(skip_reason, ':', 1), split_part(candidate_error, ' (', 1),
                            CAST(candidate_status AS VARCHAR), '') AS what
            FROM exchanges WHERE run_id = ? AND regexp_matches(path, '\\d+$')
            """,
            [RUN_ID],
        ).fetchall()
    by_kind: dict[str, collections.Counter[str]] = {k: collections.Counter() for k, _ in MIXTURE}
    for n, verdict, what in found:
        by_kind[kind_of(int(n))][f"{verdict} ({what})" if what else verdict] += 1
    expected = collections.Counter(kind_of(n) for n in range(1, issued + 1))
    out["by_kind"] = {
        k: {"sent": expected[k], "outcomes": dict(by_kind[k].most_common())} for k, _ in MIXTURE
    }
    return out


# ---------------------------------------------------------------------------
# Summary.
# ---------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    v = sorted(values)
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def rss_curve(samples: list[Sample], warmup: float) -> dict[str, dict[str, Any]]:
    """Per process, after the warm-up: RSS at the start and the end of the curve, growth.

    start/end = the lowest RSS in the first/last window of samples (10 % of those
    after the warm-up, at least 3): memory that is kept raises this floor, while a
    sample taken during a passing peak (a 16 MiB body being decoded) does not
    decide. The single first and last samples, the median of each window and the
    min/max of the whole curve are kept too.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in PROCESSES:
        pts = [(s.t, getattr(s, f"{name}_rss_mb")) for s in samples]
        pts = [(t, v) for t, v in pts if v is not None]
        warm = [(t, v) for t, v in pts if t >= warmup]
        if len(warm) < 2:
            out[name] = {"error": "fewer than 2 samples after the warm-up"}
            continue
        win = min(max(3, math.ceil(0.1 * len(warm))), len(warm) // 2)
        first, last = [v for _, v in warm[:win]], [v for _, v in warm[-win:]]
        start, end = min(first), min(last)
        n = len(warm)
        mt, mv = sum(t for t, _ in warm) / n, sum(v for _, v in warm) / n
        var = sum((t - mt) ** 2 for t, _ in warm)
        slope = sum((t - mt) * (v - mv) for t, v in warm) / var if var else 0.0
        out[name] = {
            "first_mb": round(pts[0][1], 1),  # the first sample of all (t = 0 or so)
            "window_samples": win,
            "start_t": [warm[0][0], warm[win - 1][0]],
            "start_mb": round(start, 1),
            "end_t": [warm[-win][0], warm[-1][0]],
            "end_mb": round(end, 1),
            "start_median_mb": round(_median(first), 1),
            "end_median_mb": round(_median(last), 1),
            "first_warm_sample_mb": round(warm[0][1], 1),
            "last_sample_mb": round(warm[-1][1], 1),
            "min_mb": round(min(v for _, v in warm), 1),
            "max_mb": round(max(v for _, v in warm), 1),
            "growth_mb": round(end - start, 1),
            "growth_pct": round(100 * (end - start) / start, 1) if start else None,
            "slope_mb_per_hour": round(slope * 3600, 1),
        }
    return out


def cpu_per_request(samples: list[Sample], answered: int) -> dict[str, float | None]:
    """CPU ms per answered request of each process over the run (one pid throughout)."""
    out: dict[str, float | None] = {}
    for name in PROCESSES:
        pid = [getattr(s, f"{name}_pid") for s in samples if getattr(s, f"{name}_pid")]
        cpu = [getattr(s, f"{name}_cpu_s") for s in samples if getattr(s, f"{name}_pid")]
        ok = pid and len(set(pid)) == 1 and answered
        out[name] = round((cpu[-1] - cpu[0]) * 1000 / answered, 2) if ok else None
    return out


def verdict(result: dict[str, Any], a: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(failures, warnings)."""
    fail: list[str] = []
    warn: list[str] = []
    st = result["store"]
    if "error" in st:
        return [f"store: {st['error']}"], warn
    if result["proxy_exit_code"] != 0:
        fail.append(f"shadow proxy exited with {result['proxy_exit_code']}")
    if st["requests"] != result["answered"]:
        why = ""
        if st["requests"] - result["answered"] == result["client_failures"]:
            why = " (the difference: requests the client gave up on, see failures)"
        fail.append(f"runs.requests {st['requests']} != answered {result['answered']}{why}")
    if st["requests_lost"]:
        fail.append(f"requests_lost = {st['requests_lost']}")
    parts = st["exchanges"] + st["rows_spilled"] + st["requests_shed"] + st["requests_lost"]
    if parts != st["requests"]:
        fail.append(f"rows + spilled + shed + lost = {parts} != requests {st['requests']}")
    if st["duplicate_rows"]:
        fail.append(f"{st['duplicate_rows']} exchanges stored twice")
    if st["worker_restarts"]:
        fail.append(f"{st['worker_restarts']} worker restarts")
    bad = sum(v for k, v in result["statuses"].items() if not 200 <= int(k) < 300)
    if bad or result["client_failures"]:
        fail.append(
            f"clients got {bad} non-2xx answers and {result['client_failures']} failures "
            "(connection broke, or no answer within 10 s)"
        )
    for name, c in result["rss"].items():
        if "error" in c:
            fail.append(f"RSS {name}: {c['error']}")
        elif c["growth_mb"] > a.max_growth_mb or (c["growth_pct"] or 0) > a.max_growth_pct:
            fail.append(
                f"RSS {name} grew {c['growth_mb']:+.1f} MB ({c['growth_pct']:+.1f} %) after the "
                f"warm-up (allowed {a.max_growth_mb:g} MB and {a.max_growth_pct:g} %)"
            )
    if st["requests_shed"] or st["rows_spilled"]:
        warn.append(f"{st['requests_shed']} copies shed, {st['rows_spilled']} rows spilled")
    load = result["load"]
    if load["not_sent"] or load["rps"] < 0.95 * result["rate"]:
        warn.append(
            f"achieved {load['rps']:.1f} req/s of {result['rate']:g} "
            f"({load['not_sent']} not sent): the machine could not keep the rate"
        )
    return fail, warn


def print_summary(result: dict[str, Any], fail: list[str], warn: list[str]) -> None:
    st, load = result["store"], result["load"]
    print(f"\nsoak summary ({result['meta']['minutes']:g} min)")
    if result["mitmdump_max_rps"]:
        print(f"  mitmdump max {result['mitmdump_max_rps']:.0f} req/s -> target {result['rate']}")
    print(
        f"  rate achieved {load['rps']:.1f} req/s (target {result['rate']:g}); client p50 "
        f"{load['p50_ms']:.1f} ms p99 {load['p99_ms']:.1f} ms max {load['max_ms']:.0f} ms"
    )
    print(
        f"  answered {result['answered']} of {result['issued']} sent, by status "
        f"{result['statuses']}, connection failures {result['client_failures']}"
    )
    if "error" not in st:
        print(
            f"  run row: requests {st['requests']}  exchanges {st['exchanges']}  spilled "
            f"{st['rows_spilled']}  shed {st['requests_shed']}  lost {st['requests_lost']}  "
            f"worker restarts {st['worker_restarts']}  (rows in table {st['rows']}, "
            f"duplicates {st['duplicate_rows']})"
        )
        print(f"  verdicts: {st['verdicts']}")
        for reason, n in st["skip_reasons"].items():
            print(f"  skipped {n:>6}: {reason}")
        print("  candidate kind: sent -> stored outcomes")
        for kind, v in st["by_kind"].items():
            outcomes = ", ".join(f"{k} {n}" for k, n in v["outcomes"].items())
            print(f"    {kind:<10} {v['sent']:>7} -> {outcomes}")
    print(
        f"  proxy stopped in {result['stop_s']:.1f}s (exit {result['proxy_exit_code']}); "
        f"CPU ms/request: {result['cpu_ms_per_request']}"
    )
    warmup = result["meta"]["warmup_s"]
    print(
        f"  RSS MB after the warm-up ({warmup:g}s): start/end = lowest in the first/last "
        "window of samples (median in brackets); min/max over all after the warm-up"
    )
    print(f"    {'process':<8} {'t=0':>6} {'start':>15} {'end':>15} {'min':>6} {'max':>6} "
          f"{'growth':>16} {'MB/hour':>8}  windows")  # fmt: skip
    for name, c in result["rss"].items():
        if "error" in c:
            print(f"    {name:<8} {c['error']}")
            continue
        growth = f"{c['growth_mb']:+.1f} ({_fmt(c['growth_pct'], '+.1f')}%)"
        start = f"{c['start_mb']:.1f} ({c['start_median_mb']:.1f})"
        end = f"{c['end_mb']:.1f} ({c['end_median_mb']:.1f})"
        print(
            f"    {name:<8} {c['first_mb']:>6.1f} {start:>15} {end:>15} "
            f"{c['min_mb']:>6.1f} {c['max_mb']:>6.1f} {growth:>16} "
            f"{c['slope_mb_per_hour']:>+8.1f}  t={c['start_t'][0]:g}-{c['start_t'][1]:g}s / "
            f"{c['end_t'][0]:g}-{c['end_t'][1]:g}s"
        )
    for w in warn:
        print(f"  warning: {w}")
    print("  PASS" if not fail else "  FAIL: " + "; ".join(fail))


def write_out(path: str, result: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    samples: list[Sample] = result["samples"]
    if path.endswith(".csv"):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([fld.name for fld in fields(Sample)])
            w.writerows([list(asdict(s).values()) for s in samples])
        return
    data = {**result, "samples": [asdict(s) for s in samples]}
    with open(path, "w") as f:
        json.dump(data, f, indent=1, default=str)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.serve:
        serve(a.serve, a.port, a.lifetime)
        return 0
    load = os.getloadavg()
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "minutes": a.minutes,
        "sample_every_s": a.sample_every,
        "warmup_s": a.warmup,
        "mixture_pct": dict(MIXTURE),
    }
    print(f"shadow soak: {a.minutes:g} min, {os.cpu_count()} CPUs, load {load[0]:.2f}")
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print("  warning: the machine is already busy; the rate and latencies will be noisy")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = tempfile.mkdtemp(prefix="shadow-soak-")
    soak = Soak(a, tmp)
    try:
        result = soak.run()
    except KeyboardInterrupt:
        print("\nshadow soak: interrupted; stopping everything")
        return 130
    except RuntimeError as exc:
        print(f"shadow soak: failed: {exc}")
        return 2
    finally:
        soak.procs.close()
        if a.keep_tmp:
            print(f"logs and the DuckDB file kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["loadavg_at_end"] = os.getloadavg()
    result["meta"] = meta
    result["rss"] = rss_curve(result["samples"], a.warmup)
    result["cpu_ms_per_request"] = cpu_per_request(result["samples"], result["answered"])
    fail, warn = verdict(result, a)
    result["failures"], result["warnings"] = fail, warn
    print_summary(result, fail, warn)
    write_out(a.out, result)
    print(f"samples written to {a.out}")
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
