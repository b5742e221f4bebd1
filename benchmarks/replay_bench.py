"""Replay throughput: `shadow replay` next to plain httpx sending the same requests.

    python benchmarks/replay_bench.py [--requests 2000] [--concurrency 16] [--quick]

For each scenario it writes a JSON Lines file of N recorded GETs, then measures

- **shadow replay** (the CLI, as a user runs it) without --primary (the recorded
  answers stand for the primary's: one request per exchange) and with --primary
  (two requests per exchange). Throughput = exchanges compared AND stored per
  second over the run's own duration in the store (`runs.ended_at -
  started_at`: from opening the store to the last row written, so the
  comparison process's start and the final flush count; interpreter start-up
  does not and is shown apart as wall time); the rows are counted in the
  DuckDB file afterwards.
- **httpx**: an `httpx.AsyncClient` sending the same requests (one per exchange,
  or primary and candidate concurrently) with the same concurrency, reading
  each body and nothing more; once with httpx's own transport (httpcore) and
  once with httpx-aiohttp's transport, the one shadow's sender uses.

Scenarios: `bench` = benchmarks/app.py twice (the same 1 KB JSON: every
exchange matches, no structural diff needed) and `examples` = the example
legacy and candidate apps on /api/analysis/{id} (every exchange differs:
each goes through the comparison process). Bounded in count (N per run) and
time (each subprocess has a timeout); loopback only; every server is killed on
exit. Prints a table and writes benchmarks/results/replay_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.procs import Procs, free_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "replay_bench.json"
_STORED = re.compile(r"(\d+) exchanges stored in ([\d.]+)s")


@dataclass
class Row:
    scenario: str
    mode: str  # "recorded" (candidate only) | "primary" (both backends)
    requests: int
    concurrency: int
    replay_per_s: float
    replay_seconds: float
    replay_wall_seconds: float
    stored: int
    compared: int
    httpx_per_s: float
    httpx_seconds: float
    httpx_aiohttp_per_s: float

    @property
    def ratio(self) -> float:
        return self.replay_per_s / self.httpx_per_s if self.httpx_per_s else 0.0

    @property
    def ratio_aiohttp(self) -> float:
        return self.replay_per_s / self.httpx_aiohttp_per_s if self.httpx_aiohttp_per_s else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Replay throughput vs plain httpx (loopback only).")
    p.add_argument("--requests", type=int, default=2000, help="recorded GETs per run")
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight (both)")
    p.add_argument("--scenario", choices=["bench", "examples", "all"], default="all")
    p.add_argument("--quick", action="store_true", help="300 requests, bench scenario only")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per replay, at most")
    p.add_argument("--keep-tmp", action="store_true", help="keep the traffic files and stores")
    p.add_argument("--json", default=str(RESULTS), help="where to write the results")
    a = p.parse_args(argv)
    if a.quick:
        a.requests, a.scenario = 300, "bench"
    if a.requests < 1 or a.concurrency < 1:
        p.error("--requests and --concurrency must be at least 1")
    return a


def _start(procs: Procs, name: str, argv: list[str], port: int) -> str:
    procs.start(name, argv, cwd=str(ROOT))
    procs.wait_port(name, port)
    return f"http://127.0.0.1:{port}"


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log", "--lifespan", "off",
    ]  # fmt: skip


def _paths(scenario: str, n: int) -> list[str]:
    if scenario == "bench":
        return [f"/api/items/{i}" for i in range(n)]
    return [f"/api/analysis/{i % 40 + 1}" for i in range(n)]


def _write_traffic(path: Path, primary: str, paths: list[str]) -> None:
    """N recorded GETs; the recorded answers are the primary's real ones (one per path)."""
    import httpx

    answers: dict[str, tuple[int, list[list[str]], str]] = {}
    with httpx.Client(base_url=primary, timeout=10) as client:
        for p in dict.fromkeys(paths):
            r = client.get(p)
            answers[p] = (r.status_code, [["content-type", r.headers["content-type"]]], r.text)
    now = time.time()
    with path.open("w") as fh:
        for i, p in enumerate(paths):
            status, headers, body = answers[p]
            line = {
                "method": "GET",
                "url": f"http://recorded.example{p}",
                "headers": [["accept", "application/json"], ["user-agent", "replay-bench"]],
                "timestamp": now + i / 1000,
                "elapsed_ms": 1.0,
                "response": {"status": status, "headers": headers, "body": body},
            }
            fh.write(json.dumps(line) + "\n")


def _replay(
    traffic: Path, db: Path, candidate: str, primary: str | None, a: argparse.Namespace
) -> tuple[float, float, int, int]:
    """(engine seconds, wall seconds, stored rows, compared rows) of one `shadow replay`."""
    import duckdb

    args = [
        sys.executable, "-m", "shadow.cli.main", "replay", str(traffic), "--candidate", candidate,
        "--db", str(db), "--concurrency", str(a.concurrency), "--no-progress", "--run-id", "bench",
    ]  # fmt: skip
    if primary:
        args += ["--primary", primary]
    t0 = time.perf_counter()
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=a.timeout)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"bench: shadow replay failed ({r.returncode}):\n{r.stderr}")
    if not _STORED.search(r.stdout):
        raise SystemExit(f"bench: unexpected replay summary:\n{r.stdout}")
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE verdict IN ('match', 'differ')), "
            "(SELECT epoch(ended_at) - epoch(started_at) FROM runs WHERE run_id = 'bench') "
            "FROM exchanges WHERE run_id = 'bench'"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return float(row[2]), wall, int(row[0]), int(row[1])


async def _httpx(
    paths: list[str], candidate: str, primary: str | None, concurrency: int, aiohttp: bool
) -> float:
    """Seconds to send every request (to both backends when `primary`) with httpx.

    `aiohttp`: through httpx-aiohttp's transport, as shadow's sender does;
    else httpx's own (httpcore) transport.
    """
    import httpx

    pool = concurrency * 2
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    headers = {"accept": "application/json", "user-agent": "replay-bench"}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in paths:
        queue.put_nowait(p)
    transport: httpx.AsyncBaseTransport | None = None
    if aiohttp:
        import aiohttp as aio
        from httpx_aiohttp import AiohttpTransport

        session = aio.ClientSession(connector=aio.TCPConnector(limit=pool), trust_env=False)
        transport = AiohttpTransport(client=session)
    client_ = httpx.AsyncClient(limits=limits, timeout=10, headers=headers, transport=transport)
    async with client_ as client:

        async def worker() -> None:
            while not queue.empty():
                p = queue.get_nowait()
                sends = [client.get(candidate + p)]
                if primary:
                    sends.append(client.get(primary + p))
                for resp in await asyncio.gather(*sends):
                    if resp.status_code >= 500:
                        raise RuntimeError(f"{resp.url}: {resp.status_code}")

        await client.get(candidate + paths[0])  # connect before timing, as replay's
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 300)
        return time.perf_counter() - t0


def run(a: argparse.Namespace) -> list[Row]:
    tmp = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    procs = Procs(str(tmp))
    rows: list[Row] = []
    try:
        scenarios = ["bench", "examples"] if a.scenario == "all" else [a.scenario]
        for scenario in scenarios:
            if scenario == "bench":
                apps = ("benchmarks.app:app", "benchmarks.app:app")
            else:
                apps = ("examples.legacy.app:app", "examples.candidate.app:app")
            ports = free_port(), free_port()
            primary = _start(procs, f"{scenario}-primary", _uvicorn(apps[0], ports[0]), ports[0])
            candidate = _start(procs, f"{scenario}-cand", _uvicorn(apps[1], ports[1]), ports[1])
            paths = _paths(scenario, a.requests)
            traffic = tmp / f"{scenario}.jsonl"
            _write_traffic(traffic, primary, paths)
            for mode in ("recorded", "primary"):
                prim = primary if mode == "primary" else None
                db = tmp / f"{scenario}-{mode}.duckdb"
                seconds, wall, stored, compared = _replay(traffic, db, candidate, prim, a)
                httpx_s = asyncio.run(_httpx(paths, candidate, prim, a.concurrency, False))
                aio_s = asyncio.run(_httpx(paths, candidate, prim, a.concurrency, True))
                row = Row(
                    scenario, mode, a.requests, a.concurrency,
                    round(compared / seconds, 1), round(seconds, 2), round(wall, 2),
                    stored, compared, round(a.requests / httpx_s, 1), round(httpx_s, 2),
                    round(a.requests / aio_s, 1),
                )  # fmt: skip
                rows.append(row)
                print(_format(row), flush=True)
            procs.stop(f"{scenario}-primary")
            procs.stop(f"{scenario}-cand")
    finally:
        procs.close()
        if a.keep_tmp:
            print(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


HEADER = (
    f"{'scenario':<9} {'mode':<9} {'N':>5} {'conc':>4} {'replay ex/s':>11} "
    f"{'(s)':>6} {'wall s':>6} {'stored':>6} {'compared':>8} {'httpx ex/s':>10} {'(s)':>6} "
    f"{'ratio':>5} {'httpx+aiohttp':>13} {'ratio':>5}"
)


def _format(r: Row) -> str:
    return (
        f"{r.scenario:<9} {r.mode:<9} {r.requests:>5} {r.concurrency:>4} {r.replay_per_s:>11.0f} "
        f"{r.replay_seconds:>6.2f} {r.replay_wall_seconds:>6.2f} {r.stored:>6} {r.compared:>8} "
        f"{r.httpx_per_s:>10.0f} {r.httpx_seconds:>6.2f} {r.ratio:>5.2f} "
        f"{r.httpx_aiohttp_per_s:>13.0f} {r.ratio_aiohttp:>5.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    print(f"replay bench: {a.requests} GETs, concurrency {a.concurrency}, {cpus} CPUs, "
          f"load {load:.1f}")  # fmt: skip
    if load > cpus / 2:
        print("bench: warning: the machine is busy; numbers will be noisy")
    print(HEADER)
    rows = run(a)
    bad = [r for r in rows if r.stored != r.requests or r.compared != r.requests]
    out = Path(a.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "load_at_start": load,
        "cpus": cpus,
        "python": sys.version.split()[0],
        "rows": [
            {**asdict(r), "ratio": round(r.ratio, 3), "ratio_aiohttp": round(r.ratio_aiohttp, 3)}
            for r in rows
        ],
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        "ex/s = exchanges compared and stored per second (httpx: request pairs sent with "
        f"--primary); ratio = replay / httpx. -> {out}"
    )
    if bad:
        print(f"bench: {len(bad)} runs did not store and compare every exchange")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
