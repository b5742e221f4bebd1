"""Scale-out: `shadow proxy --processes 1` vs `2`, and `shadow sink` taking mirrored traffic.

    python benchmarks/scale_bench.py [--duration 8] [--connections 16] [--sink-rate 300]

The backend is a static asyncio server (this file with `--serve PORT`): one fixed
1 KB JSON answer, a few microseconds of CPU each, so the proxy is the limit, not
the backend. Rows (closed loop unless a rate is given):

1. **static backend (direct)**: what the backend alone does (the ceiling).
2. **proxy --processes 1** and **proxy --processes 2**: `shadow proxy` in front of it,
   copying every request to a second static server; req/s, CPU ms per request of
   all the proxy's processes (proxies, workers, compare pools) and the copies stored
   after the stop (one run in `--db`, the shards folded). Goal: 2 processes > 1.
3. **sink @R/s**: the load generator plays the mirror, sending R requests/s to
   `shadow sink`, which calls primary and candidate itself. Goal: stored = sent,
   nothing shed. CPU ms per mirrored request of the sink and its compare pool.

Everything runs on 127.0.0.1; every load loop is bounded in time and count.
On 2 cores the load generator, both backends and every shadow process share the
CPU: the 1 -> 2 figure is a floor, not what a machine with free cores shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, report  # noqa: E402
from benchmarks.app import BODY  # noqa: E402
from benchmarks.procs import Procs, cpu_seconds, descendants, free_port, tool  # noqa: E402

_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n"
)


class _Static(asyncio.Protocol):
    """Answers every request on a keep-alive connection with the same JSON (GETs only)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 1 << 20:  # bounded: a client sending no request ends
            self.transport.close()  # type: ignore[attr-defined]
            return
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            self.buf = self.buf[end + 4 :]
            self.transport.write(_HEAD + BODY)  # type: ignore[attr-defined]


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Static, "127.0.0.1", port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


class Bench:
    def __init__(self, a: argparse.Namespace, tmp: str) -> None:
        self.a, self.tmp = a, tmp
        self.procs = Procs(tmp)
        self.rows: list[dict[str, Any]] = []

    def start(self, name: str, argv: list[str]) -> int:
        port = free_port()
        name = name.replace("/", "-").replace(" ", "_")
        self.procs.start(name, [*argv, *self._port_args(argv, port)], cwd=str(ROOT))
        self.procs.wait_port(name, port)
        return port

    @staticmethod
    def _port_args(argv: list[str], port: int) -> list[str]:
        if "--serve" in argv:
            return [str(port)]
        return ["--listen", f"127.0.0.1:{port}"]

    def load(self, name: str, port: int, proc: str | None, rate: float | None) -> dict[str, Any]:
        p = self.procs.running.get((proc or "").replace("/", "-").replace(" ", "_"))
        before = {q: cpu_seconds(q) for q in ([p.pid, *descendants(p.pid)] if p else [])}
        res = asyncio.run(
            loadgen.run(
                f"http://127.0.0.1:{port}/api/x",
                connections=self.a.connections,
                duration=self.a.duration,
                warmup=1.0,
                rate=rate,
            )
        )
        row: dict[str, Any] = {"config": name, "rps": res.rps, "p99_ms": res.p99_ms}
        row["total_responses"] = res.total_responses
        row["errors"] = res.errors
        if p:
            time.sleep(1.0)  # the copies still in flight are CPU of this row too
            now = [p.pid, *descendants(p.pid)]
            used = sum(cpu_seconds(q) - before.get(q, 0.0) for q in now)
            row["cpu_ms_per_req"] = used * 1000 / max(1, res.total_responses)
            row["processes"] = len(now)
        print(f"  {name:<28} {res.line()}", flush=True)
        self.rows.append(row)
        return row

    def shadow(self, name: str, argv: list[str], db: str, rate: float | None) -> dict[str, Any]:
        port = self.start(name, argv)
        proc = self.procs.running[name.replace("/", "-").replace(" ", "_")]
        deadline = time.monotonic() + 30
        while len(descendants(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)  # workers up
        time.sleep(1.0)
        row = self.load(name, port, name, rate)
        row["exit_code"] = self.procs.stop(
            name.replace("/", "-").replace(" ", "_"), signal.SIGINT, timeout=120
        )
        row["store"] = report.read_store(db, row["total_responses"])
        print(f"    {report.copies('copies', row['store'])}", flush=True)
        return row

    def run(self) -> dict[str, Any]:
        serve = [sys.executable, "benchmarks/scale_bench.py", "--serve"]
        primary = self.start("static_primary", serve)
        candidate = self.start("static_candidate", serve)
        direct = self.load("static backend (direct)", primary, "static_primary", None)
        urls = ["--primary", f"http://127.0.0.1:{primary}"]
        urls += ["--candidate", f"http://127.0.0.1:{candidate}"]
        by_n = {}
        for n in (1, 2):
            db = os.path.join(self.tmp, f"p{n}.duckdb")
            argv = [tool("shadow"), "proxy", *urls, "--db", db, "--quiet",
                    "--confdir", os.path.join(self.tmp, "mitm"), "--processes", str(n)]  # fmt: skip
            by_n[n] = self.shadow(f"proxy --processes {n}", argv, db, None)
        rate = self.a.sink_rate
        db = os.path.join(self.tmp, "sink.duckdb")
        sink = self.shadow(
            f"sink @{rate:g}/s", [tool("shadow"), "sink", *urls, "--db", db], db, rate
        )
        scaling = by_n[2]["rps"] / max(by_n[1]["rps"], 1e-9)
        goals = [
            ("proxy --processes 2 / 1 (req/s)", f"{scaling:.2f}x", "> 1.0x", scaling > 1.0),
            (
                "backend not the limit",
                f"{direct['rps']:.0f} vs {by_n[2]['rps']:.0f} req/s",
                "direct > proxies",
                direct["rps"] > by_n[2]["rps"],
            ),
            (
                f"sink @{rate:g}/s: stored / sent",
                f"{sink['store'].get('stored')} / {sink['store'].get('sent')}",
                "all stored, none shed",
                sink["store"].get("stored") == sink["store"].get("sent")
                and not sink["store"].get("copies_dropped"),
            ),
        ]
        print("\nscale goals:")
        print(f"  {'measure':<34} {'measured':>22}  {'goal':<22} met")
        for what, got, goal, met in goals:
            print(f"  {what:<34} {got:>22}  {goal:<22} {'yes' if met else 'NO'}")
        return {
            "rows": self.rows,
            "scaling_2_over_1": scaling,
            "goals": [
                {"measure": g[0], "measured": g[1], "goal": g[2], "met": g[3]} for g in goals
            ],
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--duration", type=float, default=8.0, help="seconds per row (measured)")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--sink-rate", type=float, default=300.0, help="requests/s the mirror sends")
    p.add_argument("--keep-tmp", action="store_true")
    a = p.parse_args(argv)
    if a.serve is not None:
        asyncio.run(_serve(a.serve))
        return 0
    tmp = tempfile.mkdtemp(prefix="shadow-scale-")
    bench = Bench(a, tmp)
    try:
        data = bench.run()
    finally:
        bench.procs.close()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps(data, indent=2, default=str))
    if not a.keep_tmp:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
