"""One command for the proxy benchmark: direct vs plain mitmdump vs `shadow proxy`.

    python benchmarks/run.py [--quick] [--duration S] [--connections N]

Starts the ~1 KB JSON app twice (primary, candidate), then measures side by side:
the primary directly; plain mitmdump as a reverse proxy (closed loop, then at a
fixed rate equal to its own maximum, then at half of it); `shadow proxy` (closed
loop, then at the same two fixed rates), stopping each shadow proxy with SIGINT and reading what it
stored. Prints a table, writes benchmarks/results/latest.json. Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, report  # noqa: E402
from benchmarks.procs import Procs, cpu_seconds, descendants, free_port, tool  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "latest.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Proxy overhead benchmark (loopback only).")
    p.add_argument("--duration", type=float, default=None, help="seconds measured per config")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up per config")
    p.add_argument("--connections", type=int, default=10, help="closed-loop connections")
    p.add_argument("--quick", action="store_true", help="~20 s smoke run (2 s per config)")
    p.add_argument("--rate", type=float, default=None, help="fixed rate (default: mitmdump max)")
    p.add_argument("--path", default="/api/items/42", help="request path")
    p.add_argument("--drain-timeout", type=float, default=150.0, help="wait for shadow to exit")
    p.add_argument("--no-compare", action="store_true", help="skip the comparator micro-bench")
    p.add_argument("--keep-tmp", action="store_true", help="keep logs and DuckDB files")
    p.add_argument("--json", default=str(RESULTS), help="where to write the results")
    a = p.parse_args(argv)
    a.duration = a.duration or (2.0 if a.quick else 10.0)
    a.warmup = a.warmup if a.warmup is not None else (0.3 if a.quick else 1.0)
    return a


def _settle(pid: int, limit: float = 10.0) -> float:
    """Wait (up to `limit` s) until `pid`'s children stop working on the load that ended
    (under 5 % of a core over 0.5 s): their catch-up is counted. Seconds waited."""
    t0 = time.monotonic()
    before = sum(cpu_seconds(p) for p in descendants(pid))
    while time.monotonic() - t0 < limit:
        time.sleep(0.5)
        now = sum(cpu_seconds(p) for p in descendants(pid))
        if now - before < 0.025:
            break
        before = now
    return round(time.monotonic() - t0, 2)


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        self.a, self.tmp = args, tmp
        self.procs = Procs(tmp)
        self.confdir = os.path.join(tmp, "mitmproxy")
        self.rows: list[dict[str, Any]] = []

    def start(self, name: str, argv: list[str]) -> int:
        port = free_port()
        self.procs.start(name, [*argv, *self._port_args(name, port)], cwd=str(ROOT))
        self.procs.wait_port(name, port)
        return port

    def _port_args(self, name: str, port: int) -> list[str]:
        if name.startswith("app"):
            return ["--port", str(port)]
        if name.startswith("mitmdump"):
            return ["--listen-port", str(port)]
        return ["--listen", f"127.0.0.1:{port}"]

    def measure(
        self, config: str, port: int, proxy: str | None, rate: float | None = None
    ) -> dict[str, Any]:
        """Load 127.0.0.1:port; CPU per request of the proxy process and its children."""
        proc = self.procs.running.get(proxy or "")
        kids0 = {p: cpu_seconds(p) for p in descendants(proc.pid)} if proc else {}
        proxy0 = cpu_seconds(proc.pid) if proc else 0.0
        self_before = _self_cpu()
        res = asyncio.run(
            loadgen.run(
                f"http://127.0.0.1:{port}{self.a.path}",
                connections=self.a.connections,
                duration=self.a.duration,
                warmup=self.a.warmup,
                rate=rate,
            )
        )
        n = max(1, res.total_responses)
        row: dict[str, Any] = {"config": config, **asdict(res)}
        row["proxy_cpu_ms_per_req"] = row["worker_cpu_ms_per_req"] = None
        if proc:
            row["proxy_cpu_ms_per_req"] = (cpu_seconds(proc.pid) - proxy0) * 1000 / n
            # Children (shadow's worker, its compare pool) may start during the run, and
            # may still work on copies after the load ends: that CPU is theirs too.
            row["settle_s"] = _settle(proc.pid)
            kids = set(kids0) | set(descendants(proc.pid))
            used = sum(cpu_seconds(p) - kids0.get(p, 0.0) for p in kids)
            row["worker_cpu_ms_per_req"] = used * 1000 / n if kids else None
            row["child_processes"] = len(kids)
        row["loadgen_cpu_ms_per_req"] = (_self_cpu() - self_before) * 1000 / n
        print(f"  {config:<26} {res.line()}", flush=True)
        self.rows.append(row)
        return row

    def shadow(
        self, config: str, primary: int, candidate: int, rate: float | None, name: str
    ) -> dict:
        db = os.path.join(self.tmp, f"{name}.duckdb")
        argv = [
            tool("shadow"), "proxy",
            "--primary", f"http://127.0.0.1:{primary}",
            "--candidate", f"http://127.0.0.1:{candidate}",
            "--db", db, "--confdir", self.confdir, "--quiet",
        ]  # fmt: skip
        port = self.start(name, argv)
        # The worker's start-up (a new interpreter importing DuckDB, Arrow, aiohttp: about
        # a second of CPU) is no cost per request: the load starts once it is idle.
        proc = self.procs.running[name]
        deadline = time.monotonic() + 20
        while not descendants(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        _settle(proc.pid)
        row = self.measure(config, port, name, rate)
        t0 = time.monotonic()
        row["exit_code"] = self.procs.stop(name, signal.SIGINT, timeout=self.a.drain_timeout)
        row["stop_s"] = round(time.monotonic() - t0, 2)
        row["store"] = report.read_store(db, row["total_responses"])
        print(f"    {report.copies('copies', row['store'])} (stopped in {row['stop_s']}s)")
        return row

    def run(self) -> dict[str, Any]:
        a = self.a
        app = [sys.executable, "benchmarks/app.py"]
        primary = self.start("app_primary", app)
        candidate = self.start("app_candidate", app)
        print(f"apps on :{primary} (primary) and :{candidate} (candidate)", flush=True)
        self.measure("direct (primary)", primary, "app_primary")
        mitm = [
            tool("mitmdump"), "--mode", f"reverse:http://127.0.0.1:{primary}",
            "--listen-host", "127.0.0.1", "--set", f"confdir={self.confdir}", "-q",
        ]  # fmt: skip
        port = self.start("mitmdump", mitm)
        base = self.measure("mitmdump", port, "mitmdump")
        rate = round(a.rate or base["rps"])
        base_rate = self.measure(f"mitmdump @{rate}/s", port, "mitmdump", rate)
        # Half of mitmdump's maximum: no queueing, so the added p50 is the real cost.
        half = max(1, round(rate / 2))
        base_half = self.measure(f"mitmdump @{half}/s", port, "mitmdump", half)
        self.procs.stop("mitmdump", signal.SIGINT)
        shadow = self.shadow("shadow proxy", primary, candidate, None, "shadow")
        shadow_rate = self.shadow(f"shadow proxy @{rate}/s", primary, candidate, rate, "shadow_r")
        shadow_half = self.shadow(f"shadow proxy @{half}/s", primary, candidate, half, "shadow_h")
        for row in [*self.rows[:2], shadow]:
            report.compare_to(row, base)
        for row in (base_rate, shadow_rate):
            report.compare_to(row, base_rate)
        for row in (base_half, shadow_half):
            report.compare_to(row, base_half)
        self.procs.close()
        return {"rate": rate, "rows": self.rows}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "path": args.path,
    }
    print(f"shadow bench: {args.duration:g}s per config after {args.warmup:g}s warm-up, "
          f"{args.connections} connections, {os.cpu_count()} CPUs, load {load[0]:.2f}")  # fmt: skip
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print("  warning: the machine is already busy; numbers will be noisy")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = tempfile.mkdtemp(prefix="shadow-bench-")
    bench = Bench(args, tmp)
    t0 = time.monotonic()
    try:
        out = bench.run()
    except KeyboardInterrupt:
        print("\nshadow bench: interrupted; stopping everything")
        return 130
    except RuntimeError as exc:
        print(f"shadow bench: failed: {exc}")
        return 1
    finally:
        bench.procs.close()
        if args.keep_tmp:
            print(f"logs and DuckDB files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    data: dict[str, Any] = {"meta": meta, **out}
    if not args.no_compare:
        from benchmarks import compare_bench

        print()
        data["compare"] = compare_bench.run(0.1 if args.quick else 0.4)
    data["meta"]["total_s"] = round(time.monotonic() - t0, 1)
    print(f"\nresults ({data['meta']['total_s']}s; x mitm and +p50 vs the mitmdump row at the "
          "same load: closed loop, or the same fixed rate)")  # fmt: skip
    print(report.table(out["rows"]))
    for row in out["rows"]:
        if "store" in row:
            print(report.copies(row["config"], row["store"]))
    data["goals"] = report.goals(out["rows"])
    print("\ngoals (issue 16, the live path):")
    for g in data["goals"]:
        print(f"  {g['goal']:<44} {g['measured']:<34} {'met' if g['met'] else 'NOT met'}")
    report.write_json(args.json, data)
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
