"""Reading the shadow proxy's DuckDB file and printing/writing the results."""

from __future__ import annotations

import json
import math
import os
from typing import Any


def read_store(db: str, requests: int) -> dict[str, Any]:
    """What the shadow proxy stored for `requests` requests that reached it."""
    import duckdb

    if not os.path.exists(db):
        return {"error": f"{db} does not exist", "sent": requests}
    con = duckdb.connect(db, read_only=True)
    try:
        rows = con.execute("SELECT count(*) FROM exchanges").fetchone()[0]  # type: ignore[index]
        verdicts = dict(
            con.execute("SELECT verdict, count(*) FROM exchanges GROUP BY verdict").fetchall()
        )
        runs_dropped = con.execute("SELECT sum(copies_dropped) FROM runs").fetchone()[0]  # type: ignore[index]
        dropped_rows = con.execute(
            "SELECT count(*) FROM exchanges WHERE skip_reason LIKE 'dropped%'"
        ).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()
    copies_dropped = int(runs_dropped or 0)
    no_row = max(0, requests - rows)
    # copies_dropped counts both copies dropped at the proxy's queue (no row) and
    # copies dropped at the worker's backlog (a 'skipped' row); count each drop once.
    unexplained = max(0, no_row - max(0, copies_dropped - dropped_rows))
    return {
        "sent": requests,  # requests answered by the proxy (incl. warm-up)
        "stored": rows,
        "compared": verdicts.get("match", 0) + verdicts.get("differ", 0),
        "verdicts": verdicts,
        "copies_dropped": copies_dropped,
        "no_row": no_row,
        "dropped": copies_dropped + unexplained,
    }


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def compare_to(row: dict[str, Any], ref: dict[str, Any]) -> None:
    """Add throughput ratio and added p50 of `row` relative to `ref` (a mitmdump row)."""
    row["vs"] = ref["config"]
    row["ratio_vs_mitmdump"] = row["rps"] / ref["rps"] if ref["rps"] else None
    row["added_p50_ms_vs_mitmdump"] = row["p50_ms"] - ref["p50_ms"]


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'config':<26} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'x mitm':>6} "
        f"{'+p50 ms':>7} {'errors':>6}  {'cpu ms/req: proxy (+worker)':<27}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        cpu = _f(r.get("proxy_cpu_ms_per_req"), ".2f")
        if r.get("worker_cpu_ms_per_req") is not None:
            cpu += f" (+{r['worker_cpu_ms_per_req']:.2f})"
        out.append(
            f"{r['config']:<26} {r['rps']:>7.0f} {_f(r['p50_ms'], '.2f'):>7} "
            f"{_f(r['p99_ms'], '.2f'):>7} {_f(r.get('ratio_vs_mitmdump'), '.2f'):>6} "
            f"{_f(r.get('added_p50_ms_vs_mitmdump'), '+.2f'):>7} {r['errors']:>6}  {cpu}"
        )
    return "\n".join(out)


def _cpu(row: dict[str, Any]) -> float:
    proxy, worker = row.get("proxy_cpu_ms_per_req"), row.get("worker_cpu_ms_per_req")
    return float(proxy or 0) + float(worker or 0)


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live path's goals (issue 16) from a run.py run: measured and met or not.

    Rows are found by position: direct, mitmdump, mitmdump @R, mitmdump @R/2, then the
    three shadow rows in the same order.
    """
    if len(rows) < 7:
        return []
    mitm, mitm_half = rows[1], rows[3]
    shadow, shadow_rate, shadow_half = rows[4], rows[5], rows[6]
    out = []
    ratio = shadow["rps"] / mitm["rps"] if mitm["rps"] else 0.0
    out.append(
        {"goal": "throughput >= 0.95x mitmdump (closed loop)", "measured": f"{ratio:.2f}x "
         f"({shadow['rps']:.0f} vs {mitm['rps']:.0f} req/s)", "met": ratio >= 0.95}
    )  # fmt: skip
    cpu, base = _cpu(shadow), _cpu(mitm)
    ratio = cpu / base if base else 0.0
    out.append(
        {"goal": "CPU/request (proxy+worker+pool) <= 1.25x", "measured": f"{ratio:.2f}x "
         f"({cpu:.2f} vs {base:.2f} ms)", "met": ratio <= 1.25}
    )  # fmt: skip
    p99, base99 = shadow_half["p99_ms"], mitm_half["p99_ms"]
    ratio = p99 / base99 if base99 else float("inf")
    out.append(
        {"goal": "p99 at R/2 <= 1.5x mitmdump's", "measured": f"{ratio:.2f}x "
         f"({p99:.1f} vs {base99:.1f} ms)", "met": ratio <= 1.5}
    )  # fmt: skip
    s = shadow_rate.get("store", {})
    kept = (
        "error" not in s
        and s.get("compared") == s.get("stored") == s.get("sent")
        and s.get("dropped") == 0
    )
    out.append(
        {"goal": "no copy dropped at R (compared=stored=sent)", "measured": f"sent "
         f"{s.get('sent')} compared {s.get('compared')} stored {s.get('stored')} dropped "
         f"{s.get('dropped')}", "met": bool(kept)}
    )  # fmt: skip
    return out


def copies(name: str, s: dict[str, Any]) -> str:
    if "error" in s:
        return f"{name}: {s['error']}"
    pct = 100.0 * s["compared"] / s["sent"] if s["sent"] else 0.0
    return (
        f"{name}: sent {s['sent']}  compared {s['compared']} ({pct:.1f}%)  "
        f"stored {s['stored']}  dropped {s['dropped']}  "
        f"(copies_dropped {s['copies_dropped']}, no row {s['no_row']}, verdicts {s['verdicts']})"
    )


def write_json(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
