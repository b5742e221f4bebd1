"""Is the report's candidate/primary latency ratio the apps' own? Direct vs through shadow.

    python benchmarks/latency_fairness.py [--quick] [--requests N] [--rounds R]

Starts the example apps, examples/legacy/app.py (primary) and
examples/candidate/app.py (candidate), on free 127.0.0.1 ports, and sends both the
demo's traffic (`examples.traffic.demo_requests(N, seed)`) at the demo's pace
(`--rate` 50 a second, at most `--concurrency` 8 in flight) two ways:

  direct          request i goes to both apps, one after the other in a random order
                  (so both see the same machine load and neither always goes first),
                  each timed with httpx from sending to the last byte;
  through shadow  `shadow proxy --primary ... --candidate ... --config examples/shadow.toml
                  --metrics ...` (plain shadow mode: no secondary, no flags), ready when its
                  /readyz answers 200; the same requests through it with the demo's own
                  `send_traffic`; the proxy is stopped with SIGINT and its store read with
                  the report's definition: `shadow_endpoint_outcomes(NULL)` (primary_q,
                  candidate_q = [p50, p95, p99] over the fair pairs; latency_pairs) and, for
                  all endpoints together, the same quantiles over every fair pair
                  (`shadow_latency_pair`).

Per endpoint (named by shadow's own matcher for examples/shadow.toml) it prints the
candidate/primary ratio of the p50s and of the p95s both ways and their quotient
(through shadow / direct); an endpoint with at least `--min-pairs` (30) fair pairs is
"within 1.5x" when both quotients are in [1/1.5, 1.5], and so is the pooled traffic.
`--rounds` repeats both phases (alternating which goes first). Exit 0 whatever the
verdict (1 only when something could not be started). Writes
benchmarks/results/latency_fairness.json.
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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.procs import Procs, free_port, tool  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "latency_fairness.json"
CONFIG = ROOT / "examples" / "shadow.toml"
APPS = {"primary": "examples/legacy/app.py", "candidate": "examples/candidate/app.py"}
BOUND = 1.5  # the report's ratio within this factor of the direct one, either way
POOLED = "(all endpoints)"
WARMUP = 40  # requests to each app at start, not measured (imports, first connections)

ENDPOINTS_SQL = """
SELECT endpoint, requests, compared, primary_q, candidate_q, latency_pairs, latency_excluded
FROM shadow_endpoint_outcomes(NULL) ORDER BY endpoint
"""
POOLED_SQL = """
WITH x AS (
    SELECT primary_ms, candidate_ms, verdict,
           shadow_latency_pair(verdict, primary_ms, candidate_ms, primary_error,
                               candidate_error, lag_ms, primary_lag_ms) AS fair,
           shadow_latency_usable(lag_ms) AND shadow_latency_usable(primary_lag_ms) AS usable
    FROM shadow_exchange_outcomes(NULL)
)
SELECT count(*) AS requests,
       count(*) FILTER (WHERE verdict IN ('match', 'differ')) AS compared,
       quantile_cont(primary_ms, [0.5, 0.95, 0.99]) FILTER (WHERE fair) AS primary_q,
       quantile_cont(candidate_ms, [0.5, 0.95, 0.99]) FILTER (WHERE fair) AS candidate_q,
       count(*) FILTER (WHERE fair) AS latency_pairs,
       count(*) FILTER (WHERE verdict IN ('match', 'differ') AND NOT usable) AS latency_excluded
FROM x
"""
# Diagnostic, not the report's: every compared pair both backends answered, our own
# delay (lag_ms) included; per endpoint and (endpoint NULL) pooled.
UNFILTERED_SQL = """
SELECT endpoint, count(*), quantile_cont(primary_ms, [0.5, 0.95]),
       quantile_cont(candidate_ms, [0.5, 0.95]), quantile_cont(lag_ms, [0.5, 0.9])
FROM shadow_exchange_outcomes(NULL)
WHERE verdict IN ('match', 'differ') AND primary_error IS NULL AND candidate_error IS NULL
  AND primary_ms IS NOT NULL AND candidate_ms IS NOT NULL
GROUP BY ROLLUP (endpoint)
"""
RUN_SQL = """
SELECT requests, exchanges, rows_spilled, requests_shed, requests_lost, worker_restarts
FROM runs
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Latency ratio: direct vs the report (loopback).")
    p.add_argument("--requests", type=int, default=None, help="demo requests a phase (600)")
    p.add_argument("--rate", type=float, default=50.0, help="requests a second (the demo's)")
    p.add_argument("--concurrency", type=int, default=8, help="at most in flight (the demo's)")
    p.add_argument("--seed", type=int, default=7, help="demo_requests seed (the demo's)")
    p.add_argument("--rounds", type=int, default=1, help="repeat both phases (max 10)")
    p.add_argument("--min-pairs", type=int, default=30, help="pairs an endpoint needs to judge")
    p.add_argument("--quick", action="store_true", help="~1 min smoke run (300 requests)")
    p.add_argument("--drain-timeout", type=float, default=120.0, help="wait for shadow to exit")
    p.add_argument("--keep-tmp", action="store_true", help="keep logs and DuckDB files")
    p.add_argument("--json", default=str(RESULTS), help="where to write the results")
    a = p.parse_args(argv)
    a.requests = max(1, min(a.requests or (300 if a.quick else 600), 20_000))
    a.rounds = max(1, min(a.rounds, 10))
    a.rate = max(1.0, min(a.rate, 1000.0))
    a.concurrency = max(1, min(a.concurrency, 64))
    return a


def quantile(values: list[float], q: float) -> float | None:
    """Linear interpolation between order statistics: DuckDB's quantile_cont."""
    if not values:
        return None
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def _ratio(c: float | None, p: float | None) -> float | None:
    return c / p if c is not None and p else None


def figures(primary: list[float], candidate: list[float]) -> dict[str, Any]:
    """p50 and p95 of both sides (ms) and the candidate/primary ratios."""
    p50, p95 = quantile(primary, 0.5), quantile(primary, 0.95)
    c50, c95 = quantile(candidate, 0.5), quantile(candidate, 0.95)
    return {
        "pairs": len(primary),
        "primary_p50": p50,
        "primary_p95": p95,
        "candidate_p50": c50,
        "candidate_p95": c95,
        "p50_ratio": _ratio(c50, p50),
        "p95_ratio": _ratio(c95, p95),
    }


# -- phase A: the two apps directly -----------------------------------------------------


async def direct(
    ports: dict[str, int], a: argparse.Namespace, order_seed: int
) -> list[dict[str, Any]]:
    """Each demo request to both apps, in a random order, at the demo's pace; one sample
    per request: the endpoint, each side's status and milliseconds (sent -> last byte)."""
    import httpx

    from examples.traffic import demo_requests
    from shadow.config.loader import load_config

    matcher = load_config(str(CONFIG)).matcher
    reqs = demo_requests(a.requests, a.seed)
    rng = random.Random(order_seed)
    firsts = ["primary" if rng.random() < 0.5 else "candidate" for _ in reqs]
    sem = asyncio.Semaphore(a.concurrency)
    samples: list[dict[str, Any]] = []
    clients = {
        side: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        for side, port in ports.items()
    }
    try:
        t0 = time.monotonic()

        async def one(i: int, r: Any) -> None:
            await asyncio.sleep(max(0.0, t0 + i / a.rate - time.monotonic()))
            first = firsts[i]
            sample: dict[str, Any] = {
                "endpoint": matcher.endpoint(r.method, r.path),
                "first": first,
            }
            async with sem:  # the pair holds one slot: at most `concurrency` in flight
                for side in (first, "candidate" if first == "primary" else "primary"):
                    t = time.perf_counter()
                    try:
                        resp = await clients[side].request(
                            r.method, r.path, headers=r.headers, content=r.body
                        )
                    except httpx.HTTPError as exc:
                        sample[f"{side}_error"] = repr(exc)
                        continue
                    sample[f"{side}_ms"] = (time.perf_counter() - t) * 1000
                    sample[f"{side}_status"] = resp.status_code
            samples.append(sample)

        await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs)))
    finally:
        for c in clients.values():
            await c.aclose()
    return samples


def direct_figures(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per endpoint and pooled: the figures over the requests both apps answered."""
    both = [s for s in samples if "primary_ms" in s and "candidate_ms" in s]
    out: dict[str, dict[str, Any]] = {}
    for ep in sorted({s["endpoint"] for s in both}):
        mine = [s for s in both if s["endpoint"] == ep]
        out[ep] = figures([s["primary_ms"] for s in mine], [s["candidate_ms"] for s in mine])
    out[POOLED] = figures([s["primary_ms"] for s in both], [s["candidate_ms"] for s in both])
    out[POOLED]["failed"] = len(samples) - len(both)
    return out


async def warm_up(ports: dict[str, int], seed: int) -> None:
    """A few demo requests to each app, not measured: imports and first answers."""
    import httpx

    from examples.traffic import demo_requests

    for port in ports.values():
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            for r in demo_requests(WARMUP, seed + 1000):
                await c.request(r.method, r.path, headers=r.headers, content=r.body)


# -- phase B: through shadow, read as the report reads it ------------------------------


def wait_ready(procs: Procs, name: str, port: int, timeout: float = 90.0) -> float:
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        proc = procs.running[name]
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log(name)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name}: /readyz did not answer 200 within {timeout}s")


def store_figures(db: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The report's latency figures per endpoint (and pooled over all fair pairs), and
    the run's accounting, from a stopped proxy's store."""
    from shadow.store.writer import reading

    def fig(row: tuple[Any, ...]) -> dict[str, Any]:
        requests, compared, pq, cq, pairs, excluded = row
        pq, cq = pq or [None] * 3, cq or [None] * 3
        return {
            "requests": requests,
            "compared": compared,
            "pairs": pairs,
            "excluded": excluded,
            "primary_p50": pq[0],
            "primary_p95": pq[1],
            "candidate_p50": cq[0],
            "candidate_p95": cq[1],
            "p50_ratio": _ratio(cq[0], pq[0]),
            "p95_ratio": _ratio(cq[1], pq[1]),
        }

    with reading(db) as con:
        out = {row[0]: fig(row[1:]) for row in con.execute(ENDPOINTS_SQL).fetchall()}
        pooled = con.execute(POOLED_SQL).fetchall()
        run = con.execute(RUN_SQL).fetchall()
        unfiltered = con.execute(UNFILTERED_SQL).fetchall()
    out[POOLED] = fig(pooled[0])
    for ep, n, pq, cq, lag in unfiltered:
        if not n:  # ROLLUP's total row of an empty store
            continue
        out.setdefault(ep or POOLED, {})["unfiltered"] = {
            "pairs": n,
            "p50_ratio": _ratio(cq[0], pq[0]),
            "p95_ratio": _ratio(cq[1], pq[1]),
            "lag_ms_p50": lag[0] if lag else None,
            "lag_ms_p90": lag[1] if lag else None,
        }
    keys = ("requests", "exchanges", "rows_spilled", "requests_shed", "requests_lost",
            "worker_restarts")  # fmt: skip
    return out, dict(zip(keys, run[0], strict=True)) if run else {}


def through_shadow(
    procs: Procs, tmp: str, ports: dict[str, int], a: argparse.Namespace, rnd: int
) -> dict[str, Any]:
    from examples.demo import send_traffic

    name = f"shadow_{rnd}"
    db = os.path.join(tmp, f"{name}.duckdb")
    listen, metrics = free_port(), free_port()
    argv = [
        tool("shadow"), "proxy",
        "--primary", f"http://127.0.0.1:{ports['primary']}",
        "--candidate", f"http://127.0.0.1:{ports['candidate']}",
        "--listen", f"127.0.0.1:{listen}", "--db", db, "--config", str(CONFIG),
        "--confdir", os.path.join(tmp, "mitmproxy"), "--quiet",
        "--metrics", f"127.0.0.1:{metrics}",
    ]  # fmt: skip
    procs.start(name, argv, cwd=str(ROOT))
    procs.wait_port(name, listen, timeout=60.0)
    ready_s = wait_ready(procs, name, metrics)
    t0 = time.monotonic()
    statuses = asyncio.run(
        send_traffic(
            f"http://127.0.0.1:{listen}", a.requests, a.concurrency, seed=a.seed, rate=a.rate
        )
    )
    sent_s = time.monotonic() - t0
    t1 = time.monotonic()
    code = procs.stop(name, signal.SIGINT, timeout=a.drain_timeout)
    stop_s = time.monotonic() - t1
    if not os.path.exists(db):
        raise RuntimeError(f"{name} wrote no store (exit {code}):\n{procs.log(name)}")
    by_endpoint, run = store_figures(db)
    return {
        "ready_s": round(ready_s, 1),
        "sent_s": round(sent_s, 1),
        "stop_s": round(stop_s, 1),
        "exit_code": code,
        "statuses": statuses,
        "run": run,
        "figures": by_endpoint,
    }


# -- comparing ------------------------------------------------------------------------


def _within(q: float | None) -> bool | None:
    return None if q is None else 1 / BOUND <= q <= BOUND


def judge(
    direct_by: dict[str, dict[str, Any]], shadow_by: dict[str, dict[str, Any]], min_pairs: int
) -> list[dict[str, Any]]:
    """One row per endpoint (and the pooled one last): both ratios, quotients, verdict."""
    rows = []
    names = [*sorted((set(direct_by) | set(shadow_by)) - {POOLED}), POOLED]
    for ep in names:
        d, s = direct_by.get(ep, {}), shadow_by.get(ep, {})
        q50 = _ratio(s.get("p50_ratio"), d.get("p50_ratio"))
        q95 = _ratio(s.get("p95_ratio"), d.get("p95_ratio"))
        pairs = s.get("pairs") or 0
        if pairs < min_pairs or (d.get("pairs") or 0) < min_pairs:
            verdict = f"too few pairs (< {min_pairs})"
        elif q50 is None or q95 is None:
            verdict = "no ratio"
        elif _within(q50) and _within(q95):
            verdict = f"within {BOUND}x"
        else:
            off = [f"{n} x{q:.2f}" for n, q in (("p50", q50), ("p95", q95)) if not _within(q)]
            verdict = f"NOT within {BOUND}x ({', '.join(off)})"
        rows.append({
            "endpoint": ep, "direct": d, "shadow": s, "quotient_p50": q50, "quotient_p95": q95,
            "judged": verdict.startswith(("within", "NOT")), "within": verdict.startswith("within"),
            "verdict": verdict,
        })  # fmt: skip
    return rows


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def tables(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'endpoint':<28} {'direct':>6} {'p50 r':>6} {'p95 r':>6} | {'pairs':>5} {'excl':>4} "
        f"{'p50 r':>6} {'p95 r':>6} | {'q p50':>5} {'q p95':>5}  verdict"
    )
    out = [
        f"{'':<28} {'--- direct ---':>20} | {'--- report (through shadow) ---':>24} | "
        f"{'report / direct':>11}",
        head,
        "-" * len(head),
    ]
    for r in rows:
        d, s = r["direct"], r["shadow"]
        out.append(
            f"{r['endpoint'][:28]:<28} {d.get('pairs', 0):>6} {_f(d.get('p50_ratio'), '.2f'):>6} "
            f"{_f(d.get('p95_ratio'), '.2f'):>6} | {s.get('pairs', 0):>5} "
            f"{s.get('excluded', 0):>4} {_f(s.get('p50_ratio'), '.2f'):>6} "
            f"{_f(s.get('p95_ratio'), '.2f'):>6} | {_f(r['quotient_p50'], '.2f'):>5} "
            f"{_f(r['quotient_p95'], '.2f'):>5}  {r['verdict']}"
        )
    ms = f"{'endpoint':<28} {'direct p50 ms P / C':>20} {'p95 ms P / C':>16} | " + (
        f"{'report p50 ms P / C':>20} {'p95 ms P / C':>16}"
    )
    out += ["", "milliseconds (P primary, C candidate)", ms, "-" * len(ms)]
    for r in rows:
        d, s = r["direct"], r["shadow"]

        def pc(x: dict[str, Any], q: str) -> str:
            return f"{_f(x.get(f'primary_{q}'), '.2f')} / {_f(x.get(f'candidate_{q}'), '.2f')}"

        out.append(
            f"{r['endpoint'][:28]:<28} {pc(d, 'p50'):>20} {pc(d, 'p95'):>16} | "
            f"{pc(s, 'p50'):>20} {pc(s, 'p95'):>16}"
        )
    lag = (
        f"{'endpoint':<28} {'compared':>8} {'p50 r':>6} {'p95 r':>6} {'lag ms p50':>10} {'p90':>6}"
    )
    out += ["", "diagnostic, not the report's: every compared pair, our own delay included", lag]
    out.append("-" * len(lag))
    for r in rows:
        u = r["shadow"].get("unfiltered", {})
        out.append(
            f"{r['endpoint'][:28]:<28} {u.get('pairs', 0):>8} {_f(u.get('p50_ratio'), '.2f'):>6} "
            f"{_f(u.get('p95_ratio'), '.2f'):>6} {_f(u.get('lag_ms_p50'), '.2f'):>10} "
            f"{_f(u.get('lag_ms_p90'), '.2f'):>6}"
        )
    return "\n".join(out)


def summary(rounds: list[dict[str, Any]]) -> list[str]:
    out = []
    for i, rnd in enumerate(rounds, 1):
        rows = rnd["rows"]
        endpoints = [r for r in rows if r["endpoint"] != POOLED]
        judged = [r for r in endpoints if r["judged"]]
        ok = [r for r in judged if r["within"]]
        pooled = rows[-1]
        out.append(
            f"round {i}: {len(judged)} of {len(endpoints)} endpoints had >= {rnd['min_pairs']} "
            f"fair pairs, {len(ok)} of them within {BOUND}x; all endpoints together "
            f"({pooled['shadow'].get('pairs', 0)} fair pairs): {pooled['verdict']}; "
            f"report/direct p50 x{_f(pooled['quotient_p50'], '.2f')}, "
            f"p95 x{_f(pooled['quotient_p95'], '.2f')}"
        )
        for r in judged:
            if not r["within"]:
                out.append(f"  {r['endpoint']}: {r['verdict']}")
    if len(rounds) > 1:
        for name in ("quotient_p50", "quotient_p95"):
            qs = [r[name] for rnd in rounds for r in rnd["rows"] if r["judged"]]
            qs = [q for q in qs if q is not None]
            if qs:
                out.append(
                    f"all rounds, {name.replace('quotient_', '')} report/direct of the judged "
                    f"rows: {min(qs):.2f}-{max(qs):.2f}"
                )
    return out


def one_round(
    procs: Procs, tmp: str, ports: dict[str, int], a: argparse.Namespace, i: int
) -> dict[str, Any]:
    """Both phases; odd rounds start through shadow, so drift falls on both alike."""
    result: dict[str, Any] = {"round": i + 1, "min_pairs": a.min_pairs}
    for phase in ("direct", "shadow") if i % 2 == 0 else ("shadow", "direct"):
        t0 = time.monotonic()
        if phase == "direct":
            samples = asyncio.run(direct(ports, a, order_seed=100 + i))
            result["direct"] = direct_figures(samples)
            result["direct_first"] = {
                side: sum(s["first"] == side for s in samples) for side in ("primary", "candidate")
            }
            failed = result["direct"][POOLED]["failed"]
            print(f"  direct: {len(samples)} requests to each app in {time.monotonic() - t0:.1f}s"
                  f" ({failed} without both answers)", flush=True)  # fmt: skip
        else:
            result["shadow"] = sh = through_shadow(procs, tmp, ports, a, i)
            print(f"  through shadow: ready in {sh['ready_s']}s, sent in {sh['sent_s']}s, "
                  f"statuses {sh['statuses']}, stopped in {sh['stop_s']}s (exit "
                  f"{sh['exit_code']}), run {sh['run']}", flush=True)  # fmt: skip
    result["rows"] = judge(result["direct"], result["shadow"]["figures"], a.min_pairs)
    return result


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    load = os.getloadavg()
    meta = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "requests": a.requests,
        "rate": a.rate,
        "concurrency": a.concurrency,
        "seed": a.seed,
        "rounds": a.rounds,
        "min_pairs": a.min_pairs,
        "bound": BOUND,
    }
    print(f"latency fairness: {a.requests} demo requests a phase at {a.rate:g}/s (at most "
          f"{a.concurrency} in flight), {a.rounds} round(s), {os.cpu_count()} CPUs, load "
          f"{load[0]:.2f}")  # fmt: skip
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print("  warning: the machine is already busy; numbers will be noisy")
    flags = CONFIG.parent / "shadow-flags.json"
    if flags.exists():
        print(f"  warning: {flags} exists; the proxy may not run in plain shadow mode")

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = tempfile.mkdtemp(prefix="shadow-latency-fairness-")
    procs = Procs(tmp)
    t0 = time.monotonic()
    rounds = []
    try:
        ports = {}
        for side, script in APPS.items():
            ports[side] = port = free_port()
            procs.start(side, [sys.executable, script, "--port", str(port)], cwd=str(ROOT))
        for side, port in ports.items():
            procs.wait_port(side, port)
        print(f"apps on :{ports['primary']} (legacy, primary) and :{ports['candidate']} "
              f"(candidate)", flush=True)  # fmt: skip
        asyncio.run(warm_up(ports, a.seed))
        for i in range(a.rounds):
            print(f"round {i + 1}/{a.rounds}", flush=True)
            rounds.append(one_round(procs, tmp, ports, a, i))
    except KeyboardInterrupt:
        print("\nlatency fairness: interrupted; stopping everything")
        return 130
    except (RuntimeError, OSError) as exc:
        print(f"latency fairness: failed: {exc}")
        return 1
    finally:
        procs.close()
        if a.keep_tmp:
            print(f"logs and DuckDB files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    meta["loadavg_at_end"] = os.getloadavg()
    meta["total_s"] = round(time.monotonic() - t0, 1)
    lines = summary(rounds)
    print(f"\nresults ({meta['total_s']}s): candidate/primary latency ratios, p50 and p95 (r); "
          f"direct = the apps called directly, report = shadow_endpoint_outcomes of the "
          f"proxy's store over its fair pairs (excl = left out for our own delay); "
          f"q = report ratio / direct ratio, within {BOUND}x when in "
          f"[{1 / BOUND:.2f}, {BOUND:.2f}]")  # fmt: skip
    for rnd in rounds:
        print(f"\nround {rnd['round']}")
        print(tables(rnd["rows"]))
    print()
    for line in lines:
        print(line)
    report.write_json(a.json, {"meta": meta, "rounds": rounds, "verdicts": lines})
    print(f"written to {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
