"""Side by side, in turns: mitmdump, `shadow proxy` as it was, and as it is.

    python benchmarks/profiles/ab_live.py --before /tmp/shadow-before [--rate 200] [--cycles 20]

The 2-vCPU machine this project is measured on runs 1.5-3x slower at some times than
at others (other tenants of its host), so configs measured one after the other (as
benchmarks/run.py does) can differ by more than what is being measured. Here the
configs run at the same time and take the load in turns: per cycle, in a shuffled
order, each gets `--slice` seconds closed loop (throughput) and `--slice` seconds at
`--rate` per second (latency), after 0.2 s of warm-up each, then `--gap` seconds of
quiet so that its worker finishes what the turn gave it. A config's CPU per request
is what its process tree used from the start of its turn to the end of its gap.

`--before DIR` is a copy of the project as it was (its `shadow` package is put first
on PYTHONPATH for that proxy); without it only mitmdump and the current tree run.
Prints per config: closed-loop req/s, CPU ms per request (proxy, worker + pool) and
p50/p99 at the fixed rate, pooled over the turns, and the ratios to mitmdump with
the spread of the per-cycle ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import loadgen  # noqa: E402
from benchmarks.procs import cpu_seconds, descendants, free_port, tool  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


def _tree_cpu(pid: int) -> tuple[float, float]:
    kids = descendants(pid)
    return cpu_seconds(pid), sum(cpu_seconds(k) for k in kids)


class Config:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: str) -> None:
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen(
            [*argv, *self._listen(name)],
            env=env,
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
            stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.closed: list[float] = []  # req/s per closed-loop turn
        self.lat: list[float] = []
        self.cpu_proxy = self.cpu_kids = 0.0
        self.requests = 0
        self.pooled: list[float] = []  # latencies (ms) at the fixed rate, all turns

    def _listen(self, name: str) -> list[str]:
        if name == "mitmdump":
            return ["--listen-host", "127.0.0.1", "--listen-port", str(self.port)]
        return ["--listen", f"127.0.0.1:{self.port}"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def turn(c: Config, a: argparse.Namespace) -> None:
    url = f"http://127.0.0.1:{c.port}/api/items/42"
    p0, k0 = _tree_cpu(c.proc.pid)
    closed = asyncio.run(loadgen.run(url, connections=10, duration=a.slice, warmup=0.2))
    runner = loadgen._Runner(
        url, connections=10, duration=a.slice, warmup=0.2, max_requests=10**6, rate=a.rate,
        max_connections=64, timeout=10.0,
    )  # fmt: skip
    fixed = asyncio.run(runner.run())
    time.sleep(a.gap)
    p1, k1 = _tree_cpu(c.proc.pid)
    c.closed.append(closed.rps)
    c.cpu_proxy += p1 - p0
    c.cpu_kids += k1 - k0
    c.requests += closed.total_responses + fixed.total_responses
    c.lat.append(fixed.p99_ms)
    c.pooled += [x * 1000 for x in runner.lat]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--before", default="", help="a copy of the project as it was")
    p.add_argument(
        "--tree", action="append", default=[], metavar="NAME=DIR", help="another tree to compare"
    )
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--cycles", type=int, default=15)
    p.add_argument("--slice", type=float, default=2.0)
    p.add_argument("--gap", type=float, default=0.6)
    a = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="shadow-ab-")
    apps = []
    try:
        ports = []
        for _ in range(2):
            port = free_port()
            apps.append(
                subprocess.Popen(
                    [sys.executable, "benchmarks/app.py", "--port", str(port)],
                    cwd=str(ROOT),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            ports.append(port)
        for port in ports:
            _wait_port(port)
        primary, candidate = (f"http://127.0.0.1:{port}" for port in ports)
        env = dict(os.environ)
        configs = [
            Config(
                "mitmdump",
                [
                    tool("mitmdump"),
                    "--mode",
                    f"reverse:{primary}",
                    "--set",
                    f"confdir={tmp}/m",
                    "-q",
                ],
                env,
                f"{tmp}/mitmdump.log",
            )
        ]
        trees = [("after", str(ROOT))] + ([("before", a.before)] if a.before else [])
        trees += [tuple(t.split("=", 1)) for t in a.tree]  # type: ignore[misc]
        for name, tree in trees:
            env_t = dict(env, PYTHONPATH=tree)
            configs.append(
                Config(
                    name,
                    [
                        tool("shadow"),
                        "proxy",
                        "--primary",
                        primary,
                        "--candidate",
                        candidate,
                        "--db",
                        f"{tmp}/{name}.duckdb",
                        "--confdir",
                        f"{tmp}/m",
                        "--quiet",
                    ],
                    env_t,
                    f"{tmp}/{name}.log",
                )
            )
        for c in configs:
            _wait_port(c.port)
        time.sleep(3)  # the workers' start-up
        rng = random.Random(16)
        for cycle in range(a.cycles):
            order = configs[:]
            rng.shuffle(order)
            for c in order:
                turn(c, a)
            line = "  ".join(f"{c.name} {c.closed[-1]:.0f}/s p99 {c.lat[-1]:.1f}" for c in configs)
            print(f"cycle {cycle + 1}: {line}  (load {os.getloadavg()[0]:.1f})", flush=True)
        base = configs[0]
        print(f"\n{'config':<10} {'req/s':>7} {'x mitm':>14} {'cpu/req':>8} {'(proxy':>7} "
              f"{'+kids)':>7} {'x mitm':>6} {'p99':>8} {'x mitm':>6}")  # fmt: skip
        out: dict[str, Any] = {}
        for c in configs:
            ratios = sorted(x / y for x, y in zip(c.closed, base.closed, strict=True))
            cpu = (c.cpu_proxy + c.cpu_kids) * 1000 / max(1, c.requests)
            bcpu = (base.cpu_proxy + base.cpu_kids) * 1000 / max(1, base.requests)
            p99 = _pct(c.pooled, 0.99)
            bp99 = _pct(base.pooled, 0.99)
            lo, hi = ratios[len(ratios) // 10], ratios[-1 - len(ratios) // 10]
            print(
                f"{c.name:<10} {statistics.median(c.closed):>7.0f} "
                f"{statistics.median(ratios):>5.2f} ({lo:.2f}-{hi:.2f}) {cpu:>8.2f} "
                f"{c.cpu_proxy * 1000 / max(1, c.requests):>7.2f} "
                f"{c.cpu_kids * 1000 / max(1, c.requests):>7.2f} {cpu / bcpu:>6.2f} "
                f"{p99:>8.1f} {p99 / bp99:>6.2f}  p50 {_pct(c.pooled, 0.5):.1f}"
            )
            out[c.name] = {"closed": c.closed, "p99": c.lat, "cpu_ms": cpu}
    finally:
        for c in locals().get("configs", []):
            c.stop()
        for app in apps:
            app.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
