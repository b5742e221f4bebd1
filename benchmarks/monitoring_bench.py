"""Does serving /metrics cost the live path? `shadow proxy` with and without --metrics.

    python benchmarks/monitoring_bench.py [--quick] [--duration S] [--slice S]

Starts the ~1 KB JSON app twice (primary, candidate), declares the route
/api/items/{id} in a config, and runs three `shadow proxy` side by side (closed-loop
load, N keep-alive connections, 127.0.0.1 only):

    baseline      `shadow proxy` without --metrics
    baseline_aa   a second one alike (an A/A pair: the resolution of the comparison)
    metrics       `shadow proxy --metrics 127.0.0.1:P`, scraped every `--scrape-every`
                  (1) second during the whole run by a scraper process of its own
                  (harsher than Prometheus' usual 15 s); each scrape must answer 200
                  and parse as Prometheus text with the proxy's and the worker's figures

As in cutover_bench.py, the proxies take the load in turns: short slices (`--slice`
seconds after a 0.2 s warm-up each), in a new order every cycle, until each has had
`--duration` measured seconds, so a burst of other work on the shared machine falls
on every config alike. CPU per request of each proxy (with its worker and comparison
process) comes from /proc over its own turns; the throughput ratio's 95 % interval
from resampling the cycles. After the cycles the scraper stops and the parent scrapes
the idle proxy `--idle-scrapes` times back to back: the CPU one scrape costs (proxy
and worker), less what the idle baseline used meanwhile. Each proxy is then stopped
with SIGINT and its DuckDB file read. Writes benchmarks/results/monitoring.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks.cutover_bench import (  # noqa: E402
    SLICE_WARMUP,
    CutoverBench,
    base_meta,
    compare,
    drive,
)
from benchmarks.procs import cpu_seconds, descendants, free_port, tool  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "monitoring.json"
GOAL = 0.97  # with --metrics, scraped: at least 97 % of the baseline's throughput
# Samples every scrape must hold: the proxy's part and the worker's part of the answer.
REQUIRED = ("shadow_proxy_requests_total", "shadow_worker_up")
SCRAPER_MAX_S = 3600.0  # the scraper process stops by itself after this, whatever happens


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    metrics: bool = False
    ref: str | None = None  # the key of the row its ratio is taken against


VARIANTS = (
    Variant("baseline", "shadow, no --metrics"),
    Variant("baseline_aa", "same again (A/A)", ref="baseline"),
    Variant("metrics", "--metrics, scraped", metrics=True, ref="baseline"),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Monitoring cost benchmark (loopback only).")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per config, in slices (default 60; --quick 4)",
    )
    p.add_argument(
        "--slice",
        type=float,
        default=None,
        help="measured seconds of one turn (default 1; --quick 0.5)",
    )
    p.add_argument("--connections", type=int, default=10, help="closed-loop connections")
    p.add_argument("--scrape-every", type=float, default=1.0, help="seconds between scrapes")
    p.add_argument(
        "--idle-scrapes",
        type=int,
        default=None,
        help="back-to-back scrapes of the idle proxy for the CPU per scrape (default 30; "
        "--quick 10)",
    )
    p.add_argument("--quick", action="store_true", help="~1 min smoke run")
    p.add_argument("--path", default="/api/items/42", help="request path (in the route)")
    p.add_argument("--drain-timeout", type=float, default=150.0, help="wait for shadow to exit")
    p.add_argument("--keep-tmp", action="store_true", help="keep logs and DuckDB files")
    p.add_argument("--json", default=str(RESULTS), help="where to write the results")
    # the scraper: this file run as a process of its own (so that parsing the scrapes
    # takes no CPU from the load generator's event loop)
    p.add_argument("--scrape", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--scrape-log", help=argparse.SUPPRESS)
    a = p.parse_args(argv)  # fmt: skip
    a.duration = a.duration or (4.0 if a.quick else 60.0)
    a.slice = a.slice or (0.5 if a.quick else 1.0)
    a.idle_scrapes = a.idle_scrapes or (10 if a.quick else 30)
    a.cycles = max(2, math.ceil(a.duration / a.slice))
    return a


# -- the scraper ------------------------------------------------------------------


def scrape_once(client: Any, url: str) -> dict[str, Any]:
    """GET /metrics once: status, time (sent -> last byte), size, and whether it parses."""
    from prometheus_client.parser import text_string_to_metric_families

    t0 = time.monotonic()
    rec: dict[str, Any] = {"t": t0}
    try:
        resp = client.get(url)
    except Exception as exc:  # a failed scrape is a result, not the end of the run
        rec.update(ms=(time.monotonic() - t0) * 1000, status=None, ok=False, error=repr(exc))
        return rec
    rec.update(ms=(time.monotonic() - t0) * 1000, status=resp.status_code, bytes=len(resp.content))
    t1 = time.monotonic()
    values: dict[str, float] = {}
    try:
        families = 0
        for family in text_string_to_metric_families(resp.text):
            families += 1
            for sample in family.samples:
                if sample.name in REQUIRED:
                    values[sample.name] = sample.value
        rec["families"] = families
        missing = [n for n in REQUIRED if n not in values]
        rec["parsed"] = not missing
        if missing:
            rec["error"] = f"missing {', '.join(missing)}"
    except Exception as exc:  # the parser raises ValueError and friends on bad text
        rec["parsed"], rec["error"] = False, f"does not parse: {exc!r}"
    rec["parse_ms"] = (time.monotonic() - t1) * 1000
    rec["ok"] = rec["status"] == 200 and rec["parsed"]
    rec["worker_up"] = values.get("shadow_worker_up")
    rec["proxy_requests"] = values.get("shadow_proxy_requests_total")
    return rec


def run_scraper(url: str, every: float, log: str) -> int:
    """Scrape `url` every `every` seconds (on a fixed schedule; a late one is not
    made up) until SIGINT/SIGTERM or SCRAPER_MAX_S, one JSON line per scrape."""
    import httpx

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.monotonic()
    n = 0
    try:
        with open(log, "a") as out, httpx.Client(timeout=10.0) as client:
            while time.monotonic() - t0 < SCRAPER_MAX_S:
                rec = scrape_once(client, url)
                out.write(json.dumps(rec) + "\n")
                out.flush()
                n += 1
                n = max(n, math.floor((time.monotonic() - t0) / every))  # skip missed ones
                time.sleep(max(0.0, t0 + n * every - time.monotonic()))
    except KeyboardInterrupt:
        pass
    return 0


def read_scrapes(log: str) -> list[dict[str, Any]]:
    try:
        with open(log) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


# -- the benchmark --------------------------------------------------------------------


def _q(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))]


class MonitoringBench(CutoverBench):
    """cutover_bench's side-by-side turns, with three proxies and a scraper."""

    def __init__(self, args: argparse.Namespace, tmp: str) -> None:
        super().__init__(args, tmp)
        self.metrics_port = 0
        self.scrape_log = os.path.join(tmp, "scrapes.jsonl")
        self.turns: list[tuple[str, float, float, bool]] = []  # key, start, end, measured

    def launch(self, v: Variant, primary: int, candidate: int) -> None:  # type: ignore[override]
        argv = [
            tool("shadow"), "proxy",
            "--primary", f"http://127.0.0.1:{primary}",
            "--candidate", f"http://127.0.0.1:{candidate}",
            "--db", self.db(v), "--confdir", self.confdir, "--config", self.conf, "--quiet",
        ]  # fmt: skip
        if v.metrics:
            self.metrics_port = free_port()
            argv += ["--metrics", f"127.0.0.1:{self.metrics_port}"]
        self.ports[v.key] = self.start(v.key, argv)

    def db(self, v: Any) -> str:
        return os.path.join(self.tmp, f"{v.key}.duckdb")

    def wait_ready(self, timeout: float = 90.0) -> float:
        """Until the --metrics proxy's /readyz answers 200 (its worker and store are up)."""
        import httpx

        t0 = time.monotonic()
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        while time.monotonic() - t0 < timeout:
            proc = self.procs.running["metrics"]
            if proc.poll() is not None:
                raise RuntimeError(f"metrics proxy exited with {proc.returncode}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{url} did not answer 200 within {timeout}s")

    def slice(self, v: Any, keys: list[str], measured: bool) -> dict[str, Any]:
        t0 = time.monotonic()
        s = super().slice(v, keys, measured)
        # the measured part of the turn: after its warm-up
        self.turns.append((v.key, t0 + SLICE_WARMUP, time.monotonic(), measured))
        return s

    def proc_cpu(self, key: str) -> dict[str, float]:
        """CPU seconds so far of a proxy ('proxy') and of its children ('children')."""
        proc = self.procs.running[key]
        return {
            "proxy": cpu_seconds(proc.pid),
            "children": sum(cpu_seconds(p) for p in descendants(proc.pid)),
        }

    def idle_scrapes(self) -> dict[str, Any]:
        """CPU per scrape of the idle metrics proxy (less the idle baseline's meanwhile)."""
        import httpx

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        time.sleep(1.0)  # the last turn's copies are compared and stored
        with httpx.Client(timeout=10.0) as client:
            scrape_once(client, url)  # a first one: connection, anything lazy
            m0, b0, t0 = self.proc_cpu("metrics"), self.proc_cpu("baseline"), time.monotonic()
            recs = [scrape_once(client, url) for _ in range(self.a.idle_scrapes)]
            wall = time.monotonic() - t0
            m1, b1 = self.proc_cpu("metrics"), self.proc_cpu("baseline")
        n = len(recs)
        part = {k: (m1[k] - m0[k]) - (b1[k] - b0[k]) for k in m0}
        return {
            "scrapes": n,
            "ok": sum(r["ok"] for r in recs),
            "wall_s": round(wall, 3),
            "ms_p50": _q([r["ms"] for r in recs], 0.5),
            "cpu_ms_per_scrape": sum(part.values()) * 1000 / n,
            "proxy_cpu_ms_per_scrape": part["proxy"] * 1000 / n,
            "worker_cpu_ms_per_scrape": part["children"] * 1000 / n,
            "baseline_idle_cpu_pct": 100 * sum(b1[k] - b0[k] for k in b0) / wall,
            "proxy_requests_total": recs[-1].get("proxy_requests") if recs else None,
        }

    def scrape_summary(self, recs: list[dict[str, Any]]) -> dict[str, Any]:
        """The scraper's record: count, failures, time per scrape, when they happened."""
        own = [(a, b) for k, a, b, m in self.turns if k == "metrics" and m]
        others = [(a, b) for k, a, b, m in self.turns if k != "metrics" and m]

        def during(r: dict[str, Any], spans: list[tuple[float, float]]) -> bool:
            return any(a <= r["t"] < b for a, b in spans)

        mine = [r for r in recs if during(r, own)]
        theirs = [r for r in recs if during(r, others)]
        span = (recs[-1]["t"] - recs[0]["t"]) if len(recs) > 1 else 0.0
        return {
            "every_s": self.a.scrape_every,
            "scrapes": len(recs),
            "ok": sum(bool(r.get("ok")) for r in recs),
            "not_200": sum(r.get("status") != 200 for r in recs),
            "not_parsed": sum(r.get("status") == 200 and not r.get("parsed") for r in recs),
            "worker_down": sum(bool(r.get("ok")) and r.get("worker_up") != 1.0 for r in recs),
            "errors": sorted({r["error"] for r in recs if r.get("error")})[:5],
            "span_s": round(span, 1),
            "ms_p50": _q([r["ms"] for r in recs], 0.5),
            "ms_p95": _q([r["ms"] for r in recs], 0.95),
            "ms_max": max((r["ms"] for r in recs), default=None),
            "parse_ms_p50": _q([r["parse_ms"] for r in recs if "parse_ms" in r], 0.5),
            "bytes_last": next((r["bytes"] for r in reversed(recs) if "bytes" in r), None),
            "families_last": next((r["families"] for r in reversed(recs) if "families" in r),
                                  None),
            "during_own_turns": len(mine),
            "during_own_turns_ms_p50": _q([r["ms"] for r in mine], 0.5),
            "during_others_turns": len(theirs),
        }  # fmt: skip

    def run(self) -> dict[str, Any]:
        app = [sys.executable, "benchmarks/app.py"]
        primary = self.start("app_primary", app)
        candidate = self.start("app_candidate", app)
        print(f"apps on :{primary} (primary) and :{candidate} (candidate)", flush=True)
        members = list(VARIANTS)
        keys = [v.key for v in members]
        for v in members:
            self.launch(v, primary, candidate)
        ready_s = self.wait_ready()
        time.sleep(1.0)  # the other two started with it; give their workers the same time
        print(f"3 proxies side by side (the --metrics one ready in {ready_s:.1f}s)", flush=True)
        scraper = [
            sys.executable, str(Path(__file__).resolve()),
            "--scrape", f"http://127.0.0.1:{self.metrics_port}/metrics",
            "--scrape-every", str(self.a.scrape_every), "--scrape-log", self.scrape_log,
        ]  # fmt: skip
        self.procs.start("scraper", scraper, cwd=str(ROOT))  # its CPU counts as the bench's
        for v in members:  # one unmeasured turn each (first connections, imports)
            self.slice(v, keys, measured=False)
        slices: list[list[dict[str, Any]]] = []
        shuffle = random.Random(3).shuffle  # a new order every cycle, the same every run
        for cycle in range(self.a.cycles):
            order = list(members)
            shuffle(order)
            turn = [self.slice(v, keys, True) for v in order]
            slices.append(sorted(turn, key=lambda s: keys.index(s["key"])))
            if (cycle + 1) % max(1, self.a.cycles // 5) == 0 or cycle + 1 == self.a.cycles:
                now = "  ".join(f"{s['key']} {s['res'].rps:.0f}" for s in slices[-1])
                print(f"  cycle {cycle + 1}/{self.a.cycles}: req/s {now}", flush=True)
        self.procs.stop("scraper", signal.SIGINT)
        scrapes = self.scrape_summary(read_scrapes(self.scrape_log))
        idle = self.idle_scrapes()
        idle["answered"] = self.answered["metrics"]
        rows = [self.row(i, v, keys, slices) for i, v in enumerate(members)]  # type: ignore[arg-type]
        for v, row in zip(members, rows, strict=True):
            t0 = time.monotonic()
            row["exit_code"] = self.procs.stop(v.key, signal.SIGINT, timeout=self.a.drain_timeout)
            row["stop_s"] = round(time.monotonic() - t0, 2)
            row["answered"] = self.answered[v.key]
            row["store"] = st = report.read_store(self.db(v), row["answered"])
            text = st.get("error") or (
                f"stored {st['stored']} of {st['sent']} (dropped {st['dropped']}, verdicts "
                f"{st['verdicts']})"
            )
            print(f"  {v.label}: {text}; exit {row['exit_code']}, stopped in {row['stop_s']}s")
        self.procs.close()
        by_key = {r["key"]: r for r in rows}
        for r in rows:
            if r["ref"]:
                compare(r, by_key[r["ref"]])
        by_key["metrics"]["scrape"] = scrapes
        by_key["metrics"]["idle_scrape"] = idle
        return {"rows": rows, "ready_s": round(ready_s, 1)}


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'config':<22} {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'ratio':>6} "
        f"{'(95 % CI)':<11} {'errors':>6} {'cpu ms/req':>10} {'(ratio)':>7} {'bg cpu':>6} "
        f"{'others':>6}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        ci = r.get("ratio_ci95")
        ci_text = f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else ""
        out.append(
            f"{r['config']:<22} {r['rps']:>6.0f} {_f(r['p50_ms'], '.2f'):>7} "
            f"{_f(r['p99_ms'], '.2f'):>7} {_f(r.get('ratio'), '.3f'):>6} {ci_text:<11} "
            f"{r['errors']:>6} {_f(r['cpu_ms_per_req'], '.2f'):>10} "
            f"{_f(r.get('cpu_ratio'), '.3f'):>7} {_f(r['background_cpu_pct'], '.1f'):>5}% "
            f"{r['others_cpu_pct']:>5.0f}%"
        )
    return "\n".join(out)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The 0.97 goal, said only as far as the interval allows; the scrapes' record."""
    by = {r["key"]: r for r in rows}
    m, aa = by["metrics"], by["baseline_aa"]
    out = []
    if m.get("ratio_ci95"):
        lo, hi = m["ratio_ci95"]
        if lo >= GOAL:
            verdict = f"at least {GOAL} of the baseline: scraping costs nothing measurable"
        elif hi < GOAL:
            verdict = f"BELOW {GOAL} of the baseline"
        else:
            verdict = f"not resolved: the interval spans {GOAL} (run longer: --duration 180)"
        out.append(
            f"--metrics, scraped every {m['scrape']['every_s']:g}s: req/s ratio {m['ratio']:.3f} "
            f"(95 % CI {lo:.3f}-{hi:.3f}): {verdict}; CPU per request "
            f"x{_f(m.get('cpu_ratio'), '.3f')}"
        )
    if aa.get("ratio_ci95"):
        lo, hi = aa["ratio_ci95"]
        out.append(
            f"(the A/A pair, two identical proxies: ratio {aa['ratio']:.3f}, CI {lo:.3f}-{hi:.3f}, "
            f"CPU per request x{_f(aa.get('cpu_ratio'), '.3f')}: the resolution of this run)"
        )
        if not lo <= 1.0 <= hi:
            out.append(
                "  warning: the A/A interval excludes 1, so two identical proxies differed "
                "in this run: it was disturbed (see `others`); do not trust the verdict above, "
                "run it again or longer"
            )
    s, idle = m["scrape"], m["idle_scrape"]
    out.append(
        f"scrapes: {s['scrapes']} in {s['span_s']}s, {s['ok']} answered 200 and parsed "
        f"({s['not_200']} not 200, {s['not_parsed']} did not parse, {s['worker_down']} with "
        f"shadow_worker_up != 1); {_f(s['ms_p50'], '.1f')} ms per scrape (p50; p95 "
        f"{_f(s['ms_p95'], '.1f')}, max {_f(s['ms_max'], '.1f')}), {s['bytes_last']} bytes, "
        f"{s['families_last']} families; {s['during_own_turns']} fell in its own measured "
        f"turns (p50 {_f(s['during_own_turns_ms_p50'], '.1f')} ms)"
    )
    if s["errors"]:
        out.append(f"  scrape errors: {'; '.join(s['errors'])}")
    total = idle["proxy_requests_total"]
    counted = "" if total is None else (
        f"; shadow_proxy_requests_total {total:.0f} for {idle['answered']} answered"
        + ("" if total == idle["answered"] else " (DIFFERS)")
    )  # fmt: skip
    out.append(
        f"idle proxy: {_f(idle['cpu_ms_per_scrape'], '.2f')} ms CPU per scrape (proxy "
        f"{_f(idle['proxy_cpu_ms_per_scrape'], '.2f')} + worker "
        f"{_f(idle['worker_cpu_ms_per_scrape'], '.2f')}; {idle['ok']}/{idle['scrapes']} ok, "
        f"{_f(idle['ms_p50'], '.1f')} ms each){counted}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scrape:
        return run_scraper(args.scrape, args.scrape_every, args.scrape_log)
    meta = {
        **base_meta(args),
        "scrape_every_s": args.scrape_every,
        "idle_scrapes": args.idle_scrapes,
    }
    return drive(
        "monitoring bench",
        lambda tmp: MonitoringBench(args, tmp),
        args,
        meta,
        f"scrape every {args.scrape_every:g}s, ",
        "ratio = req/s over the baseline's, measured in turns; cpu ms/req = proxy + worker + "
        "comparison process in its own turns; bg cpu = its CPU in the other configs' turns, "
        "% of a core; others = CPU of processes not the benchmark's during its turns",
        table,
        verdicts,
    )


if __name__ == "__main__":
    sys.exit(main())
