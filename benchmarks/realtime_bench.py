"""WebSocket messages per second through the proxy, with and without shadowing.

    python benchmarks/realtime_bench.py [--quick] [--duration S] [--slice S] [--clients N]

Starts a WebSocket app (benchmarks/ws_app.py: one ~200-byte JSON answer per message)
twice, as primary and candidate, and puts three targets side by side:

    direct     the primary itself (the reference of what the machine can do)
    mitmdump   plain `mitmdump --mode reverse:PRIMARY` (mitmproxy, no shadowing)
    shadow     `shadow proxy` (every conversation copied to the candidate and compared)

Load: `--clients` clients, each a closed loop of conversations of `--per-conversation`
messages (send one, wait for its answer; a new connection after each conversation, so
conversations end and are compared, well under --stream-messages). The targets take
the load in turns: short slices (`--slice` seconds after a 0.3 s warm-up), in a new
order every cycle, until each has had `--duration` measured seconds, so a burst of other
work on the shared machine falls on every target alike. The ratio shadow / mitmdump
and its 95 % interval come from resampling the cycles. At the end the shadow proxy is
stopped with SIGINT and its store read: every conversation must be stored and match.
Writes benchmarks/results/realtime.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.procs import Procs, cpu_seconds, descendants, free_port, peak_rss, tool  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "realtime.json"
WARMUP = 0.3
TARGETS = ("direct", "mitmdump", "shadow")
MAX_RUN_S = 1800.0  # the whole run stops by itself after this, whatever happens


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="WebSocket shadowing cost (loopback only).")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds per target")
    p.add_argument("--slice", type=float, default=2.0, help="seconds per turn")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-conversation", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="6 s per target (a smoke run)")
    p.add_argument(
        "--flood",
        type=int,
        default=100_000,
        help="then one conversation of this many server messages through each proxy: "
        "seconds and peak RSS (0: skip)",
    )
    p.add_argument("--json", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 6.0
    return args


async def _client(url: str, per: int, stop: float, counts: list[int]) -> None:
    from websockets.asyncio.client import connect

    while time.monotonic() < stop:
        async with connect(url, proxy=None, open_timeout=10) as ws:
            for i in range(per):
                await ws.send(json.dumps({"type": "tick", "n": i}))
                await asyncio.wait_for(ws.recv(), 10)
                if time.monotonic() < stop:
                    counts[0] += 1
            await ws.close()


def one_slice(url: str, clients: int, per: int, seconds: float) -> float:
    """Messages answered per second at `url` over `seconds` (after a warm-up)."""

    async def run() -> float:
        warm = [0]
        warm_until = time.monotonic() + WARMUP
        await asyncio.gather(*(_client(url, per, warm_until, warm) for _ in range(clients)))
        counts = [0]
        t0 = time.monotonic()
        await asyncio.gather(*(_client(url, per, t0 + seconds, counts) for _ in range(clients)))
        return counts[0] / (time.monotonic() - t0)

    return asyncio.run(run())


def flood(url: str, n: int) -> float:
    """Seconds for one conversation of `n` server messages to reach the client."""

    async def run() -> float:
        from websockets.asyncio.client import connect

        t0 = time.monotonic()
        async with connect(url, proxy=None, ping_interval=None, max_size=None) as ws:
            await ws.send(json.dumps({"type": "flood", "n": n}))
            for _ in range(n):
                await asyncio.wait_for(ws.recv(), 60)
        return time.monotonic() - t0

    return asyncio.run(run())


def _cpu(pid: int | None) -> tuple[float, float]:
    """CPU seconds of process `pid` and of its descendants (the worker, the comparison)."""
    if pid is None:
        return 0.0, 0.0
    return cpu_seconds(pid), sum(cpu_seconds(p) for p in descendants(pid))


def bootstrap(a: list[float], b: list[float], n: int = 2000) -> tuple[float, float]:
    """95 % interval of sum(a)/sum(b) over resampled cycles."""
    rng = random.Random(7)
    ratios = []
    for _ in range(n):
        idx = [rng.randrange(len(a)) for _ in a]
        ratios.append(sum(a[i] for i in idx) / sum(b[i] for i in idx))
    ratios.sort()
    return ratios[int(0.025 * n)], ratios[int(0.975 * n) - 1]


def read_store(db: str) -> dict[str, Any]:
    from shadow.store.writer import reading

    with reading(db) as con:
        verdicts = dict(
            con.execute(
                "SELECT verdict, count(*) FROM shadow_exchange_outcomes(NULL) GROUP BY 1"
            ).fetchall()
        )
        row = con.execute(
            "SELECT count(*), sum(client_messages), sum(dropped) FROM conversations"
        ).fetchone()
    assert row is not None
    return {"verdicts": verdicts, "conversations": row[0], "client_messages": row[1],
            "dropped": row[2]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.alarm(int(MAX_RUN_S))
    tmp = tempfile.mkdtemp(prefix="shadow-realtime-")
    procs = Procs(tmp)
    py = sys.executable
    ports = {name: free_port() for name in ("primary", "candidate", "mitmdump", "shadow")}
    db = os.path.join(tmp, "realtime.duckdb")
    try:
        for name in ("primary", "candidate"):
            procs.start(name, [py, "-m", "uvicorn", "benchmarks.ws_app:app", "--host",
                               "127.0.0.1", "--port", str(ports[name]), "--log-level",
                               "warning"], cwd=str(ROOT))  # fmt: skip
            procs.wait_port(name, ports[name])
        primary = f"http://127.0.0.1:{ports['primary']}"
        procs.start("mitmdump", [tool("mitmdump"), "-q", "--mode", f"reverse:{primary}",
                                 "--listen-host", "127.0.0.1", "--listen-port",
                                 str(ports["mitmdump"])])  # fmt: skip
        procs.start("shadow", [tool("shadow"), "proxy", "--primary", primary, "--candidate",
                               f"http://127.0.0.1:{ports['candidate']}", "--listen",
                               f"127.0.0.1:{ports['shadow']}", "--db", db, "--confdir",
                               os.path.join(tmp, "mitm"), "--quiet"])  # fmt: skip
        for name in ("mitmdump", "shadow"):
            procs.wait_port(name, ports[name], 60)
        urls = {
            "direct": f"ws://127.0.0.1:{ports['primary']}/ws",
            "mitmdump": f"ws://127.0.0.1:{ports['mitmdump']}/ws",
            "shadow": f"ws://127.0.0.1:{ports['shadow']}/ws",
        }
        time.sleep(3.0)  # the shadow worker's start (imports) is not measured
        cycles = max(1, round(args.duration / args.slice))
        rates: dict[str, list[float]] = {t: [] for t in TARGETS}
        shadow_pid = procs.running["shadow"].pid
        pids = {"mitmdump": procs.running["mitmdump"].pid, "shadow": shadow_pid}
        used = {t: [0.0, 0.0, 0.0] for t in pids}  # proxy CPU s, its children's, messages
        cpu0 = sum(cpu_seconds(p) for p in [shadow_pid, *descendants(shadow_pid)])
        print(f"realtime: {cycles} turns of {args.slice:g}s per target, {args.clients} clients, "
              f"{args.per_conversation} messages per conversation, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
        for cycle in range(cycles):
            order = list(TARGETS)
            random.Random(cycle).shuffle(order)
            for target in order:
                pid = pids.get(target)
                before = _cpu(pid)
                t0 = time.monotonic()
                rate = one_slice(urls[target], args.clients, args.per_conversation, args.slice)
                rates[target].append(rate)
                if pid is not None:
                    after = _cpu(pid)
                    msgs = rate * args.slice  # the measured part; the warm-up's CPU is in too
                    used[target][0] += after[0] - before[0]
                    used[target][1] += after[1] - before[1]
                    used[target][2] += msgs * (time.monotonic() - t0) / args.slice
            print(f"  cycle {cycle + 1}/{cycles}: "
                  + ", ".join(f"{t} {rates[t][-1]:.0f}/s" for t in TARGETS))  # fmt: skip
        cpu = sum(cpu_seconds(p) for p in [shadow_pid, *descendants(shadow_pid)]) - cpu0
        floods: dict[str, Any] = {}
        for target in ("mitmdump", "shadow") if args.flood else ():
            pid = pids[target]
            before = {"proxy": peak_rss(pid), "worker": sum(map(peak_rss, descendants(pid)))}
            seconds = flood(urls[target], args.flood)
            after = {"proxy": peak_rss(pid), "worker": sum(map(peak_rss, descendants(pid)))}
            floods[target] = {
                "seconds": round(seconds, 1),
                "rss_peak_growth_mib": {
                    k: round((after[k] - before[k]) / 2**20, 1) for k in before
                },
                "rss_peak_mib": {k: round(v / 2**20, 1) for k, v in after.items()},
            }
            print(f"  flood of {args.flood} messages via {target}: {seconds:.1f}s, peak RSS "
                  f"growth {floods[target]['rss_peak_growth_mib']} MiB")  # fmt: skip
        procs.stop("shadow", signal.SIGINT, timeout=60)
        store = read_store(db)
    except KeyboardInterrupt:
        print("realtime: interrupted; stopping everything")
        return 130
    except RuntimeError as exc:
        print(f"realtime: failed: {exc}")
        return 1
    finally:
        procs.close()
    mean = {t: sum(v) / len(v) for t, v in rates.items()}
    per_msg = {
        t: {"proxy_us": 1e6 * u[0] / u[2], "others_us": 1e6 * u[1] / u[2]} for t, u in used.items()
    }
    low, high = bootstrap(rates["shadow"], rates["mitmdump"])
    data = {
        "meta": {
            "clients": args.clients,
            "per_conversation": args.per_conversation,
            "slice_s": args.slice,
            "cycles": cycles,
            "cpus": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
        },
        "messages_per_s": {t: round(v, 1) for t, v in mean.items()},
        "shadow_vs_mitmdump": round(mean["shadow"] / mean["mitmdump"], 3),
        "shadow_vs_mitmdump_ci95": [round(low, 3), round(high, 3)],
        "mitmdump_vs_direct": round(mean["mitmdump"] / mean["direct"], 3),
        "shadow_cpu_s": round(cpu, 1),
        "flood": {"messages": args.flood, **floods},
        "cpu_per_message_us": {
            t: {k: round(v, 1) for k, v in d.items()} for t, d in per_msg.items()
        },
        "store": store,
    }
    print("\nresults (messages answered per second, mean over the turns)")
    for t in TARGETS:
        print(f"  {t:9} {mean[t]:8.0f}/s")
    ratio, direct = data["shadow_vs_mitmdump"], data["mitmdump_vs_direct"]
    print(f"  shadow / mitmdump = {ratio:.3f} (95% {low:.3f}-{high:.3f}); "
          f"mitmdump / direct = {direct:.3f}")  # fmt: skip
    for t in ("mitmdump", "shadow"):
        print(f"  CPU per message, {t}: proxy {per_msg[t]['proxy_us']:.0f} us, its other "
              f"processes {per_msg[t]['others_us']:.0f} us")  # fmt: skip
    print(f"  store: {store['conversations']} conversations, verdicts {store['verdicts']}, "
          f"dropped {store['dropped']}")  # fmt: skip
    report.write_json(args.json, data)
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
