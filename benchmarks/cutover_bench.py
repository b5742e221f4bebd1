"""What do route modes cost? Flag stores in shadow mode, and the candidate serving.

    python benchmarks/cutover_bench.py [--quick] [--duration S] [--slice S]

Starts the ~1 KB JSON app twice (primary, candidate) and a redis-server, declares
the route /api/items/{id} in a config, and measures with the same closed-loop
load (N keep-alive connections, 127.0.0.1 only):

  group 1 (flag stores, route in shadow mode; ratio vs the baseline)
    `shadow proxy` with no flags file present (the baseline), a second one alike
    (an A/A pair: the resolution of the comparison), `--flags FILE` and
    `--flags redis://...`, each with the route's record set by `shadow flags set`;
  group 2 (the candidate serving; ratio vs plain mitmdump)
    plain mitmdump reverse to the primary, `shadow proxy` with the route in
    candidate mode (reverse shadow: the primary gets a copy), and the same with
    reverse off (no copy at all: the serving path alone).

On a shared 2-core machine one run after another differs by 20-50 %, so a group's
proxies run side by side and take the load in turns: short slices (`--slice`
seconds after a 0.2 s warm-up each), in a new order every cycle, until each has
had `--duration` measured seconds. A burst of other work then falls on every
config of the group alike. Per slice, the CPU of each proxy (with its worker) and
of the machine's other processes is read from /proc: a config's CPU per request is
what it used in its own slices; its background CPU what it used in the others'
(flag polling, a worker finishing its copies). The ratio's 95 % interval comes from
resampling the cycles. Afterwards each proxy is stopped with SIGINT and its DuckDB
file read (rows by mode and served_by, rollbacks). Writes benchmarks/results/cutover.json.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, report  # noqa: E402
from benchmarks.procs import CLK_TCK, cpu_seconds, descendants, free_port, tool  # noqa: E402
from benchmarks.run import Bench, _self_cpu  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "cutover.json"
ROUTE = "/api/items/{id}"
REDIS_SERVER = "/usr/bin/redis-server"
CONFIG = f'# cutover_bench.py: the one route it measures\n[[endpoints]]\nroute = "{ROUTE}"\n'
SLICE_WARMUP = 0.2  # seconds at the start of each slice not measured (connections open)
GOAL = 0.95  # flag stores: within 5 % of the baseline's throughput


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    group: int
    store: str | None = None  # None: mitmdump; "none": no flags file; "file"; "redis"
    mode: str = "shadow"
    reverse: bool = True
    ref: str | None = None  # the key of the row its ratio is taken against

    @property
    def serving(self) -> bool:
        return self.mode == "candidate"


VARIANTS = (
    Variant("baseline", "shadow, no flags file", 1, "none"),
    Variant("baseline_aa", "same again (A/A)", 1, "none", ref="baseline"),
    Variant("flags_file", "shadow, flags file", 1, "file", ref="baseline"),
    Variant("flags_redis", "shadow, flags redis", 1, "redis", ref="baseline"),
    Variant("mitmdump", "mitmdump", 2),
    Variant("candidate", "candidate, reverse", 2, "file", "candidate", True, "mitmdump"),
    Variant("candidate_noreverse", "candidate, no reverse", 2, "file", "candidate", False,
            "mitmdump"),
)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Route-mode benchmark (loopback only).")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per config, in slices (default 30; --quick 4)",
    )
    p.add_argument(
        "--slice",
        type=float,
        default=None,
        help="measured seconds of one turn (default 1; --quick 0.5)",
    )
    p.add_argument("--connections", type=int, default=10, help="closed-loop connections")
    p.add_argument(
        "--group",
        type=int,
        choices=(1, 2),
        default=None,
        help="only group 1 (flag stores) or 2 (candidate serving)",
    )
    p.add_argument("--quick", action="store_true", help="~1 min smoke run")
    p.add_argument("--path", default="/api/items/42", help="request path (in the route)")
    p.add_argument("--drain-timeout", type=float, default=150.0, help="wait for shadow to exit")
    p.add_argument("--keep-tmp", action="store_true", help="keep logs, flags and DuckDB files")
    p.add_argument("--json", default=str(RESULTS), help="where to write the results")
    a = p.parse_args(argv)  # fmt: skip
    a.duration = a.duration or (4.0 if a.quick else 30.0)
    a.slice = a.slice or (0.5 if a.quick else 1.0)
    a.cycles = max(2, math.ceil(a.duration / a.slice))
    return a


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent not idle so far (all cores, from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK  # minus idle and iowait


def read_modes(db: str) -> dict[str, Any]:
    """Rows by (mode, served_by) and rollback events, from a stopped proxy's DuckDB file."""
    import duckdb

    if not os.path.exists(db):
        return {"error": f"{db} does not exist"}
    con = duckdb.connect(db, read_only=True)
    try:
        by = con.execute(
            "SELECT coalesce(mode, '-'), coalesce(served_by, 'primary'), count(*) "
            "FROM exchanges GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        served = con.execute(
            "SELECT count(*) FROM exchanges WHERE served_by = 'candidate'"
        ).fetchone()[0]  # type: ignore[index]
        fell_back = con.execute("SELECT count(*) FROM exchanges WHERE fell_back").fetchone()[0]  # type: ignore[index]
        rollbacks = con.execute("SELECT count(*) FROM events WHERE kind = 'rollback'").fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    return {
        "rows_by_mode": {f"{m}/{s}": n for m, s, n in by},
        "served_by_candidate": served,
        "fell_back": fell_back,
        "rollbacks": rollbacks,
    }


class CutoverBench(Bench):
    """run.py's Bench (processes, ports) with flag stores, route modes and slices."""

    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        super().__init__(args, tmp)
        self.conf = os.path.join(tmp, "conf", "shadow.toml")  # no shadow-flags.json beside it
        os.makedirs(os.path.dirname(self.conf))
        Path(self.conf).write_text(CONFIG)
        os.makedirs(os.path.join(tmp, "flags"))
        self.redis_url = ""
        self.ports: dict[str, int] = {}
        self.answered: dict[str, int] = {}  # responses of every turn, warm-up included

    def start_redis(self) -> None:
        if not os.path.exists(REDIS_SERVER):
            raise RuntimeError(f"{REDIS_SERVER} not found (needed for the Redis flag store)")
        port = free_port()
        data = os.path.join(self.tmp, "redis")
        os.makedirs(data)
        argv = [
            REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", data,
        ]  # fmt: skip
        self.procs.start("redis", argv, cwd=data)
        self.procs.wait_port("redis", port)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        print(f"redis-server on :{port}", flush=True)

    def set_mode(self, v: Variant) -> str:
        """Write the route's mode with `shadow flags set`; returns the --flags spec."""
        spec = self.redis_url
        if v.store == "file":
            spec = os.path.join(self.tmp, "flags", f"{v.key}.json")
        argv = [
            tool("shadow"), "flags", "set", ROUTE, v.mode,
            "--flags", spec, "--config", self.conf, "--by", "bench", "--why", v.key,
        ]  # fmt: skip
        if v.serving:
            argv.append("--reverse" if v.reverse else "--no-reverse")
        out = subprocess.run(argv, cwd=self.tmp, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"shadow flags set failed ({out.returncode}): {out.stderr}")
        return spec

    def launch(self, v: Variant, primary: int, candidate: int) -> None:
        if v.store is None:
            argv = [
                tool("mitmdump"), "--mode", f"reverse:http://127.0.0.1:{primary}",
                "--listen-host", "127.0.0.1", "--set", f"confdir={self.confdir}", "-q",
            ]  # fmt: skip
        else:
            argv = [
                tool("shadow"), "proxy",
                "--primary", f"http://127.0.0.1:{primary}",
                "--candidate", f"http://127.0.0.1:{candidate}",
                "--db", self.db(v), "--confdir", self.confdir, "--config", self.conf, "--quiet",
            ]  # fmt: skip
            if v.store == "none":
                beside = os.path.join(os.path.dirname(self.conf), "shadow-flags.json")
                if os.path.exists(beside):
                    raise RuntimeError(f"{beside} exists: the baseline must have no flags file")
            else:
                argv += ["--flags", self.set_mode(v)]
        self.ports[v.key] = self.start(v.key, argv)

    def db(self, v: Variant) -> str:
        return os.path.join(self.tmp, f"{v.key}.duckdb")

    def cpu(self, keys: list[str]) -> tuple[dict[str, float], float, float]:
        """CPU seconds so far: per proxy (with its children), all of the benchmark's
        processes (apps, redis, this load generator included), the whole machine."""
        per: dict[str, float] = {}
        ours = _self_cpu()
        for name, proc in self.procs.running.items():
            used = sum(cpu_seconds(p) for p in (proc.pid, *descendants(proc.pid)))
            ours += used
            if name in keys:
                per[name] = used
        return per, ours, busy_cpu_seconds()

    def slice(self, v: Variant, keys: list[str], measured: bool) -> dict[str, Any]:
        """One turn of `v`: closed-loop load on it alone, and everybody's CPU meanwhile."""
        runner = loadgen._Runner(  # the class behind loadgen.run: its latencies are kept
            f"http://127.0.0.1:{self.ports[v.key]}{self.a.path}",
            connections=self.a.connections,
            duration=self.a.slice if measured else 1.0,
            warmup=SLICE_WARMUP,
            max_requests=1_000_000,
            rate=None,
            max_connections=64,
            timeout=10.0,
        )
        c0, t0 = self.cpu(keys), time.monotonic()
        res = asyncio.run(runner.run())
        c1, wall = self.cpu(keys), time.monotonic() - t0
        self.answered[v.key] = self.answered.get(v.key, 0) + res.total_responses
        return {
            "key": v.key,
            "res": res,
            "lat": runner.lat,
            "wall": wall,
            "cpu": {k: c1[0].get(k, 0.0) - c0[0].get(k, 0.0) for k in keys},
            "others": max(0.0, (c1[2] - c0[2]) - (c1[1] - c0[1])),
        }

    def group(self, g: int, primary: int, candidate: int) -> list[dict[str, Any]]:
        members = [v for v in VARIANTS if v.group == g]
        keys = [v.key for v in members]
        for v in members:
            self.launch(v, primary, candidate)
        time.sleep(1.0)  # the workers spawn, the flags are read
        print(f"group {g}: {', '.join(v.label for v in members)} side by side", flush=True)
        for v in members:  # one unmeasured turn each (first connections, imports)
            self.slice(v, keys, measured=False)
        slices: list[list[dict[str, Any]]] = []
        shuffle = random.Random(g).shuffle  # a new order every cycle, the same every run
        for cycle in range(self.a.cycles):
            order = list(members)
            shuffle(order)  # nobody always follows the same config (or goes first)
            turn = [self.slice(v, keys, True) for v in order]
            slices.append(sorted(turn, key=lambda s: keys.index(s["key"])))
            if (cycle + 1) % max(1, self.a.cycles // 5) == 0 or cycle + 1 == self.a.cycles:
                now = "  ".join(f"{s['key']} {s['res'].rps:.0f}" for s in slices[-1])
                print(f"  cycle {cycle + 1}/{self.a.cycles}: req/s {now}", flush=True)
        rows = [self.row(i, v, keys, slices) for i, v in enumerate(members)]
        for v, row in zip(members, rows, strict=True):
            if v.store is None:
                self.procs.stop(v.key, signal.SIGINT)
                continue
            t0 = time.monotonic()
            row["exit_code"] = self.procs.stop(v.key, signal.SIGINT, timeout=self.a.drain_timeout)
            row["stop_s"] = round(time.monotonic() - t0, 2)
            row["answered"] = self.answered[v.key]
            row["store"] = report.read_store(self.db(v), row["answered"])
            row["modes"] = m = read_modes(self.db(v))
            st = row["store"]
            text = m.get("error") or st.get("error") or (
                f"stored {st['stored']} of {st['sent']} (dropped {st['dropped']}, verdicts "
                f"{st['verdicts']}), rows {m['rows_by_mode']}, rollbacks {m['rollbacks']}"
            )  # fmt: skip
            print(f"  {v.label}: {text}; stopped in {row['stop_s']}s", flush=True)
        return rows

    def row(
        self, i: int, v: Variant, keys: list[str], slices: list[list[dict[str, Any]]]
    ) -> dict[str, Any]:
        mine = [cycle[i] for cycle in slices]
        lat = sorted(x for s in mine for x in s["lat"])
        ok = sum(s["res"].rps * s["res"].duration_s for s in mine)
        window = sum(s["res"].duration_s for s in mine)
        answered = sum(s["res"].total_responses for s in mine)
        own_cpu = sum(s["cpu"][v.key] for s in mine)
        other = [s for cycle in slices for s in cycle if s["key"] != v.key]
        bg_time = sum(s["wall"] for s in other)

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")

        return {
            "config": v.label,
            **asdict(v),
            "rps": ok / window if window else 0.0,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "errors": sum(s["res"].errors for s in mine),
            "total_errors": sum(s["res"].total_errors for s in mine),
            "measured_s": round(window, 2),
            "total_responses": answered,
            "cpu_ms_per_req": own_cpu * 1000 / answered if answered else None,
            "background_cpu_pct": 100 * sum(s["cpu"][v.key] for s in other) / bg_time
            if bg_time
            else None,
            "others_cpu_pct": 100 * sum(s["others"] for s in mine) / sum(s["wall"] for s in mine),
            "slices": [
                {"ok": round(s["res"].rps * s["res"].duration_s), "s": s["res"].duration_s,
                 "p50_ms": round(s["res"].p50_ms, 2), "others_pct": round(
                     100 * s["others"] / s["wall"])}
                for s in mine
            ],
        }  # fmt: skip

    def run(self) -> dict[str, Any]:
        app = [sys.executable, "benchmarks/app.py"]
        primary = self.start("app_primary", app)
        candidate = self.start("app_candidate", app)
        print(f"apps on :{primary} (primary) and :{candidate} (candidate)", flush=True)
        self.start_redis()
        rows = []
        for g in (1, 2):
            if self.a.group in (None, g):
                rows += self.group(g, primary, candidate)
        self.procs.close()
        by_key = {r["key"]: r for r in rows}
        for r in rows:
            if r["ref"]:
                compare(r, by_key[r["ref"]])
        return {"rows": rows}


def _rate(slices: list[dict[str, Any]]) -> float:
    return sum(s["ok"] for s in slices) / max(1e-9, sum(s["s"] for s in slices))


def compare(row: dict[str, Any], ref: dict[str, Any]) -> None:
    """Throughput ratio to `ref` (same cycles), with a 95 % interval by resampling cycles."""
    pairs = list(zip(row["slices"], ref["slices"], strict=True))
    row["ratio"] = row["rps"] / ref["rps"] if ref["rps"] else None
    rng = random.Random(42)
    boot = []
    for _ in range(2000):
        pick = rng.choices(pairs, k=len(pairs))
        b = _rate([p[1] for p in pick])
        boot.append(_rate([p[0] for p in pick]) / b if b else math.nan)
    boot.sort()
    row["ratio_ci95"] = [boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]]
    row["ratio_median_of_cycles"] = statistics.median(
        a["ok"] / a["s"] / (b["ok"] / b["s"]) for a, b in pairs if b["ok"]
    )
    if row["cpu_ms_per_req"] and ref["cpu_ms_per_req"]:
        row["cpu_ratio"] = row["cpu_ms_per_req"] / ref["cpu_ms_per_req"]


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'config':<22} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} "
        f"{'(95 % CI)':<11} {'vs':<9} {'errors':>6} {'by candidate':>13} "
        f"{'cpu ms/req':>10} {'bg cpu':>6} {'others':>6}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        served = "-"
        if "modes" in r and "error" not in r["modes"]:
            served = f"{r['modes']['served_by_candidate']}/{r['answered']}"
        ci = r.get("ratio_ci95")
        ci_text = f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else ""
        out.append(
            f"{r['config']:<22} {r['rps']:>6.0f} {_f(r['p50_ms'], '.2f'):>7} "
            f"{_f(r['p99_ms'], '.2f'):>7} {_f(r.get('ratio'), '.3f'):>6} {ci_text:<11} "
            f"{r['ref'] or '':<9} {r['errors']:>6} {served:>13} "
            f"{_f(r['cpu_ms_per_req'], '.2f'):>10} {_f(r['background_cpu_pct'], '.1f'):>5}% "
            f"{r['others_cpu_pct']:>5.0f}%"
        )
    return "\n".join(out)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The 5 % goal of the flag stores, said only as far as the A/A pair allows."""
    out = []
    aa = next((r for r in rows if r["key"] == "baseline_aa"), None)
    for r in rows:
        if r["key"] not in ("flags_file", "flags_redis") or not r.get("ratio_ci95"):
            continue
        lo, hi = r["ratio_ci95"]
        if lo >= GOAL:
            verdict = "within 5 % of the baseline"
        elif hi < GOAL:
            verdict = "NOT within 5 % of the baseline"
        else:
            verdict = "not resolved: the interval spans the 5 % line"
        out.append(
            f"{r['config']}: req/s ratio {r['ratio']:.3f} (95 % CI {lo:.3f}-{hi:.3f}): "
            f"{verdict}; CPU per request x{_f(r.get('cpu_ratio'), '.3f')}"
        )
    if aa and out:
        lo, hi = aa["ratio_ci95"]
        out.append(
            f"(the A/A pair, two identical proxies: ratio {aa['ratio']:.3f}, CI {lo:.3f}-{hi:.3f}, "
            f"CPU per request x{_f(aa.get('cpu_ratio'), '.3f')}: the resolution of this run)"
        )
    return out


def base_meta(args: argparse.Namespace) -> dict[str, Any]:
    """What every side-by-side run records about itself."""
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "duration_s": args.duration,
        "slice_s": args.slice,
        "slice_warmup_s": SLICE_WARMUP,
        "cycles": args.cycles,
        "connections": args.connections,
        "path": args.path,
    }


def drive(
    name: str,
    make: Callable[[str], CutoverBench],
    args: argparse.Namespace,
    meta: dict[str, Any],
    what: str,
    legend: str,
    table_of: Callable[[list[dict[str, Any]]], str] | None = None,
    verdicts_of: Callable[[list[dict[str, Any]]], list[str]] | None = None,
) -> int:
    """Run a side-by-side bench in a temporary directory (stopping everything on SIGTERM,
    Ctrl-C or a failure), then print its table and verdicts and write its JSON."""
    load = meta["loadavg_at_start"]
    print(f"{name}: {args.cycles} turns of {args.slice:g}s per config (after "
          f"{SLICE_WARMUP:g}s warm-up each), {args.connections} connections, {what}"
          f"{os.cpu_count()} CPUs, load {load[0]:.2f}")  # fmt: skip
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print("  warning: the machine is already busy; numbers will be noisy")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = tempfile.mkdtemp(prefix=f"shadow-{name.replace(' ', '-')}-")
    bench = make(tmp)
    t0 = time.monotonic()
    try:
        out = bench.run()
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted; stopping everything")
        return 130
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"{name}: failed: {exc}")
        return 1
    finally:
        bench.procs.close()  # the apps, any proxy left, the services
        if args.keep_tmp:
            print(f"logs and DuckDB files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["loadavg_at_end"] = os.getloadavg()
    meta["total_s"] = round(time.monotonic() - t0, 1)
    if "ready_s" in out:
        meta["ready_s"] = out["ready_s"]
    rows = out["rows"]
    data: dict[str, Any] = {"meta": meta, **out, "verdicts": (verdicts_of or verdicts)(rows)}
    print(f"\nresults ({meta['total_s']}s; {legend})")
    print((table_of or table)(rows))
    for line in data["verdicts"]:
        print(line)
    report.write_json(args.json, data)
    print(f"written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = {**base_meta(args), "route": ROUTE, "group": args.group}
    return drive(
        "cutover bench",
        lambda tmp: CutoverBench(args, tmp),
        args,
        meta,
        "",
        "ratio = req/s over the 'vs' row's, both measured in turns; bg cpu = its CPU in the "
        "other configs' turns, % of a core; others = CPU of processes not the benchmark's "
        "during its turns",
    )


if __name__ == "__main__":
    sys.exit(main())
