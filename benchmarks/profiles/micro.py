"""Micro-benchmarks behind the live path's changes (benchmarks/profiles/README.md).

    python benchmarks/profiles/micro.py [pickling] [writer] [sender] [headers] [timers]

Each prints CPU per operation in this process (best of a few repeats: the machine's
speed varies), old way against new way:

- pickling: a batch of 13 requests and 13 answers as the addon queues them, with the
  dataclasses' own pickling and with shadow.pipeline.pickling's (per message).
- writer: 650 exchange rows a flush into a DuckDB file, 2 threads against 1 (per row);
  the run's row written with INSERT OR REPLACE against UPDATE (per flush).
- sender: copies to benchmarks/app.py at concurrency 10 through httpx's aiohttp
  transport and through shadow.pipeline.http1 (per copy).
- headers: mitmproxy's `name in headers` against the addon's own scan (per lookup).
- timers: what one wake-up of an idle event loop costs here (a 5 ms timer).
"""

from __future__ import annotations

import asyncio
import copyreg
import os
import pickle
import resource
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from comparators.model import Payload  # noqa: E402
from shadow.model import BackendResponse, Exchange, Request, Served  # noqa: E402
from shadow.pipeline import pickling  # noqa: E402

HEADERS = (("host", "127.0.0.1:8080"), ("user-agent", "shadow-bench"), ("accept", "*/*"))
ANSWER = (
    ("date", "Tue, 01 Dec 2026 15:00:00 GMT"),
    ("server", "uvicorn"),
    ("content-type", "application/json"),
    ("content-length", "1038"),
)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best(f: Any, n: int, repeat: int = 5) -> float:
    """Seconds of CPU per call of `f`, the best of `repeat` rounds of `n` calls."""
    out = []
    for _ in range(repeat):
        c0 = cpu()
        for _ in range(n):
            f()
        out.append((cpu() - c0) / n)
    return min(out)


def bench_pickling() -> None:
    from multiprocessing.reduction import ForkingPickler

    now = time.time()
    batch: list[Any] = []
    for i in range(13):
        req = Request("GET", "/api/items/42", "", HEADERS, b"")
        batch.append(("req", f"{i:032x}", req, now, None, Served("shadow"), now))
        answer = BackendResponse(Payload(200, ANSWER, os.urandom(1038)), 1.2, lag_ms=0.1)
        batch.append(("resp", f"{i:032x}", answer))
    classes = (Request, BackendResponse, Served, Exchange, Payload)
    for label in ("dataclass pickling", "shadow.pipeline.pickling"):
        if label.startswith("dataclass"):
            saved = {c: copyreg.dispatch_table.pop(c) for c in classes}
        data = ForkingPickler.dumps(batch)
        dumps = best(lambda: ForkingPickler.dumps(batch), 500) / len(batch)
        loads = best(lambda: pickle.loads(data), 500) / len(batch)  # noqa: B023
        print(f"pickling, {label:<26} dumps {dumps * 1e6:5.1f} us  loads {loads * 1e6:5.1f} us")
        if label.startswith("dataclass"):
            copyreg.dispatch_table.update(saved)
    assert pickle.loads(ForkingPickler.dumps(batch)) == batch


def bench_writer() -> None:
    from shadow.config.loader import load_config
    from shadow.pipeline import evaluate
    from shadow.store import writer as w

    config = load_config(None)
    body = b'{"id": 1}' * 100
    rows = []
    for _ in range(650):
        primary = BackendResponse(Payload(200, ANSWER, body), 1.0, lag_ms=0.0)
        copy = BackendResponse(Payload(200, ANSWER, body), 1.1, lag_ms=0.2)
        ex = Exchange(uuid.uuid4().hex, Request("GET", "/x", "", HEADERS), primary, copy,
                      "GET /x", time.time(), mode="shadow")  # fmt: skip
        rows.append(evaluate.evaluate(ex, config, "r", 65536, "differ").row)
    path = f"{tempfile.mkdtemp()}/w.duckdb"
    w.StoreWriter(path)
    con = w.connect(path, read_only=False)
    for threads in (2, 1):
        con.execute(f"SET threads = {threads}")

        def flush() -> None:
            batch = [r._replace(exchange_id=uuid.uuid4().hex) for r in rows]
            con.execute("BEGIN TRANSACTION")
            w.insert_rows(con, "exchanges", batch)
            con.execute("COMMIT")

        per_row = best(flush, 3) / len(rows)
        print(f"writer, DuckDB threads={threads}: {per_row * 1e6:5.1f} us of CPU a row")
    run = w.Run("r", "proxy", time.time(), options={"primary": "http://127.0.0.1:1"})
    values = [
        run.source, w._ts(run.started_at), None, run.primary_url, run.candidate_url,
        run.secondary_url, "{}", 0, 0, 0, 0, 0, 0, 0, run.run_id,
    ]  # fmt: skip
    con.execute(w.INSERT_RUN, values)
    upsert = """INSERT OR REPLACE INTO runs (source, started_at, ended_at, primary_url,
        candidate_url, secondary_url, options, copies_dropped, exchanges, rows_spilled, requests,
        requests_shed, requests_lost, worker_restarts, run_id)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
    old = best(lambda: con.execute(upsert, values), 20)
    new = best(lambda: con.execute(w.UPDATE_RUN, values).fetchone(), 20)
    print(f"writer, the run's row: INSERT OR REPLACE {old * 1e3:.2f} ms, UPDATE {new * 1e3:.2f} ms")
    con.close()


def bench_sender() -> None:
    from shadow.pipeline.sender import Sender

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = subprocess.Popen(
        [sys.executable, "benchmarks/app.py", "--port", str(port)],
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    request = Request("GET", "/api/items/42", "", HEADERS, b"")

    async def run(transport: bool) -> float:
        sender = Sender(32)
        if transport:  # the path every copy took before: httpx's aiohttp transport
            sender._plain = lambda base_url, tls: None  # type: ignore[method-assign]
        gate = asyncio.Semaphore(10)

        async def one() -> None:
            async with gate:
                answer = await sender.send(url, request)
                assert answer.payload is not None and answer.payload.status == 200

        await asyncio.gather(*[one() for _ in range(200)])
        rounds = []
        for _ in range(3):
            c0 = cpu()
            await asyncio.gather(*[one() for _ in range(1000)])
            rounds.append((cpu() - c0) / 1000)
        await sender.aclose()
        return min(rounds)

    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        old, new = asyncio.run(run(True)), asyncio.run(run(False))
        print(
            f"sender, httpx + aiohttp transport {old * 1e3:.3f} ms, http1 {new * 1e3:.3f} ms a copy"
        )
    finally:
        app.kill()


def bench_headers() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mitmproxy.test import tflow

    from shadow.live.addon import _values

    h = tflow.tflow(resp=True).request.headers
    h["user-agent"] = "shadow-bench"
    h["accept"] = "*/*"
    n = 100_000
    old = min(timeit.repeat(lambda: "x-shadow-copy" in h, number=n, repeat=5)) / n
    new = min(timeit.repeat(lambda: _values(h, b"x-shadow-copy"), number=n, repeat=5)) / n
    print(f"headers, mitmproxy `in` {old * 1e6:.2f} us, the addon's scan {new * 1e6:.2f} us")


def bench_timers() -> None:
    async def go() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        wakes = [0]

        def wake() -> None:
            wakes[0] += 1
            handle[0] = loop.call_later(0.005, wake)

        handle = [loop.call_later(0.005, wake)]
        c0 = cpu()
        await asyncio.sleep(3)
        used = cpu() - c0
        handle[0].cancel()
        return wakes[0], used

    wakes, used = asyncio.run(go())
    print(f"timers, an idle loop's 5 ms tick: {used / wakes * 1e6:.0f} us of CPU a wake-up, "
          f"{used / 3 * 100:.1f} % of a core")  # fmt: skip


def main() -> int:
    todo = sys.argv[1:] or ["pickling", "writer", "sender", "headers", "timers"]
    for name in todo:
        globals()[f"bench_{name}"]()
    assert pickling.register  # registered on import (the new way is the default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
