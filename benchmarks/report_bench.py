"""How long do `shadow report`, `shadow check` and `shadow export` take on a large store?

    python benchmarks/report_bench.py [--exchanges 1000000] [--repeat 1] [--force]

Generates (or reuses) benchmarks/results/big-<N>.duckdb with make_store.py, then
runs each command as a real subprocess, the way a user or CI would, and prints
wall seconds, peak RSS and what it wrote. Results also go to
benchmarks/results/report_bench.json. `shadow check` exits 1 on this synthetic
store (about half the endpoints are below 80 % parity); that is expected and not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.make_store import DEFAULT_EXCHANGES, RESULTS, ensure_store  # noqa: E402


def timed(cmd: list[str], ok_codes: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Run `cmd`, returning wall seconds, peak RSS (MB) and its output's last line."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        pid = os.posix_spawn(cmd[0], cmd, os.environ, file_actions=_redirect(out.fileno()))
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    code = os.waitstatus_to_exitcode(status)
    if code not in ok_codes:
        raise SystemExit(f"{' '.join(cmd)} exited {code}:\n{text}")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("junit:")]
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": code,
        "last_line": lines[-1] if lines else "",
    }


def _redirect(fd: int) -> list[tuple[Any, ...]]:
    return [(os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]


def shadow(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadow.cli.main", *args]


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = min(runs, key=lambda r: r["seconds"])
    return {**out, "all_seconds": [r["seconds"] for r in runs]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Time report/check/export on a large store.")
    p.add_argument("--exchanges", type=int, default=DEFAULT_EXCHANGES)
    p.add_argument("--repeat", type=int, default=1, help="runs per command; the best is shown")
    p.add_argument("--force", action="store_true", help="regenerate the store")
    p.add_argument("--keep", action="store_true", help="keep the HTML and Parquet files")
    a = p.parse_args(argv)

    t0 = time.perf_counter()
    db = ensure_store(a.exchanges, force=a.force)
    prepare_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="report-bench-"))
    html = work / "big.html"
    try:
        report = best([timed(shadow("report", "--db", str(db), "-o", str(html)))
                       for _ in range(a.repeat)])  # fmt: skip
        html_kb = html.stat().st_size / 1024
        check_cmd = shadow(
            "check", "--db", str(db), "--min-parity", "80", "--max-candidate-errors", "2",
            "--max-latency-ratio", "1.5", "--junit", str(work / "parity.xml"),
        )  # fmt: skip
        check = best([timed(check_cmd, ok_codes=(0, 1)) for _ in range(a.repeat)])
        export = best(
            [
                timed(shadow("export", "--db", str(db), "-o", str(work / "parquet")))
                for _ in range(a.repeat)
            ]
        )
        parquet_mb = sum(f.stat().st_size for f in (work / "parquet").iterdir()) / 1e6
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    results = {
        "exchanges": a.exchanges,
        "db": str(db),
        "db_mb": round(db.stat().st_size / 1e6, 1),
        "store_ready_seconds": round(prepare_s, 2),
        "report": {**report, "html_kb": round(html_kb, 1)},
        "check": check,
        "export": {**export, "parquet_mb": round(parquet_mb, 1)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "report_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"store: {a.exchanges:,} exchanges, {results['db_mb']} MB ({db})")
    print(f"{'command':<14}{'seconds':>9}{'peak MB':>9}  output")
    print(f"{'shadow report':<14}{report['seconds']:>9.2f}{report['peak_rss_mb']:>9.0f}  "
          f"{html_kb:,.0f} KB HTML")  # fmt: skip
    print(f"{'shadow check':<14}{check['seconds']:>9.2f}{check['peak_rss_mb']:>9.0f}  "
          f"exit {check['exit_code']}: {check['last_line']}")  # fmt: skip
    print(f"{'shadow export':<14}{export['seconds']:>9.2f}{export['peak_rss_mb']:>9.0f}  "
          f"{parquet_mb:.1f} MB Parquet")  # fmt: skip
    print(f"results: {RESULTS / 'report_bench.json'}")


if __name__ == "__main__":
    main()
