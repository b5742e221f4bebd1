"""`shadow data diff` on two 1,000,000-row tables with 10 differing rows.

Starts a throwaway PostgreSQL on 127.0.0.1 (examples/data/postgres.py), builds the
old and the new table in it (and the old one again as a SQLite file), plants 10
differences (4 changed values, 3 rows deleted, 3 rows added, spread over the key
range), and runs the real command as a child process for each pair:

- PostgreSQL -> PostgreSQL, bisecting (the default);
- SQLite -> PostgreSQL, bisecting (the SQLite side hashes in its own scan);
- PostgreSQL -> PostgreSQL on a 100,000-row slice without bisection (every row
  read), for the rows-per-second of plain reading.

Each row: wall time, the child's peak memory (max RSS), rows read from both
sides (what travelled) against the rows held, and whether exactly the 10 planted
rows were found. Goals (issue 15): <= 15 s, <= 500 MB, rows read << rows held.

    python benchmarks/data_bench.py [--rows 1000000] [--keep-tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.data.postgres import TempPostgres, find_binaries  # noqa: E402

SHADOW = [sys.executable, "-m", "shadow.cli"]
COLUMNS = (
    "id BIGINT PRIMARY KEY, name TEXT, amount DOUBLE PRECISION, created_at TIMESTAMPTZ, "
    "payload JSONB, active BOOLEAN"
)
FILL = (
    "INSERT INTO {t} SELECT i, 'customer ' || i, round((i * 0.37)::numeric, 2)::float8, "
    "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute', "
    "jsonb_build_object('tier', i % 5, 'tags', jsonb_build_array('a', i % 7)), i % 3 = 0 "
    "FROM generate_series(1, {n}) i"
)


def plant(n: int, seed: int = 15) -> dict[str, list[int]]:
    """Which keys differ: spread over the range, never two in one key."""
    rnd = random.Random(seed)
    keys = rnd.sample(range(1, n + 1), 7)
    return {"changed": keys[:4], "deleted": keys[4:], "added": [n + 10, n + 5000, n + 90000]}


def build_postgres(pg: TempPostgres, n: int, planted: dict[str, list[int]]) -> str:
    url = pg.create_database("bench")
    for t in ("old_t", "new_t"):
        pg.sql(f"CREATE TABLE {t} ({COLUMNS})", "bench")
        pg.sql(FILL.format(t=t, n=n), "bench")
    for i, k in enumerate(planted["changed"]):
        column = ("name = name || 'x'", "amount = amount + 0.01", "active = NOT active",
                  "created_at = created_at + interval '2 hours'")[i % 4]  # fmt: skip
        pg.sql(f"UPDATE new_t SET {column} WHERE id = {k}", "bench")
    for k in planted["deleted"]:
        pg.sql(f"DELETE FROM new_t WHERE id = {k}", "bench")
    for k in planted["added"]:
        pg.sql(f"INSERT INTO new_t VALUES ({k}, 'new', 1.5, now(), '{{}}', true)", "bench")
    pg.sql("ANALYZE", "bench")
    return url


def build_sqlite(path: Path, n: int) -> None:
    """The old table as the legacy app kept it: text timestamps, JSON text, 0/1."""
    con = sqlite3.connect(path)
    con.execute(
        "CREATE TABLE old_t (id INTEGER PRIMARY KEY, name TEXT, amount REAL, created_at TEXT, "
        "payload TEXT, active INTEGER)"
    )
    base = 1704067200  # 2024-01-01 00:00:00 UTC

    def rows() -> Any:
        for i in range(1, n + 1):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(base + 60 * i))
            payload = json.dumps({"tags": ["a", i % 7], "tier": i % 5})
            yield (i, f"customer {i}", round(i * 0.37, 2), stamp, payload, int(i % 3 == 0))

    con.executemany("INSERT INTO old_t VALUES (?, ?, ?, ?, ?, ?)", rows())
    con.commit()
    con.close()


def run_diff(
    old: str, new: str, db: Path, extra: list[str], table: str = "old_t:new_t"
) -> dict[str, Any]:
    """One `shadow data diff` child: wall time, peak RSS, and its stored figures."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cmd = [*SHADOW, "data", "diff", "--old", old, "--new", new, "--table", table,
           "--key", "id", "--db", str(db), *extra]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    wall = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 1):
        raise SystemExit(f"data_bench: {' '.join(cmd)} failed:\n{proc.stderr}")
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT old_rows, new_rows, rows_read_old + rows_read_new, segments_read, "
            "segments_checked, missing_rows + extra_rows + changed_rows, elapsed_s "
            "FROM data_tables ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
        keys = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT row_key FROM data_differences WHERE run_id = "
                "(SELECT run_id FROM data_tables ORDER BY rowid DESC LIMIT 1)"
            ).fetchall()
        }
    finally:
        con.close()
    assert row is not None
    return {
        "wall_s": wall,
        # RUSAGE_CHILDREN's max RSS is the largest child so far: each run is the
        # largest yet or reported as "<= " the earlier peak
        "peak_mb": peak / 1024,
        "peak_is_own": peak > before,
        "held": int(row[0]) + int(row[1]),
        "read": int(row[2]),
        "segments": f"{row[3]}/{row[4]}",
        "differing": int(row[5]),
        "keys": keys,
        "elapsed_s": float(row[6]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args()
    if find_binaries() is None:
        print("data_bench: PostgreSQL is not installed (scripts/ensure-services); skipped")
        return
    n = args.rows
    tmp = Path(tempfile.mkdtemp(prefix="shadow-data-bench-"))
    planted = plant(n)
    expected = {f"id={k}" for ks in planted.values() for k in ks}
    results: list[tuple[str, dict[str, Any]]] = []
    try:
        with TempPostgres(tmp / "pg") as pg:
            t0 = time.monotonic()
            url = build_postgres(pg, n, planted)
            build_sqlite(tmp / "old.sqlite", n)
            print(f"built 2 x {n:,} rows (PostgreSQL) + {n:,} (SQLite) in "
                  f"{time.monotonic() - t0:.1f} s")  # fmt: skip
            results.append(
                (f"PostgreSQL -> PostgreSQL, {n:,} rows",
                 run_diff(url, url, tmp / "a.duckdb", []))
            )  # fmt: skip
            results.append(
                (f"SQLite -> PostgreSQL, {n:,} rows",
                 run_diff(f"sqlite:{tmp / 'old.sqlite'}", url, tmp / "b.duckdb", []))
            )  # fmt: skip
            slice_n = min(n, 100_000)
            pg.sql(f"CREATE TABLE s_old AS SELECT * FROM old_t WHERE id <= {slice_n}", "bench")
            pg.sql(f"CREATE TABLE s_new AS SELECT * FROM new_t WHERE id <= {slice_n}", "bench")
            plain = run_diff(url, url, tmp / "c.duckdb", ["--no-bisect"], "s_old:s_new")
            results.append((f"PostgreSQL -> PostgreSQL, {slice_n:,} rows, --no-bisect", plain))
    finally:
        if args.keep_tmp:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{'pair':48} {'time':>8} {'peak RSS':>10} {'rows read / held':>22} "
          f"{'segments':>9} {'found':>6}  goal")  # fmt: skip
    for label, r in results:
        want = (
            {k for k in expected if int(k[3:]) <= r["held"] // 2}
            if "no-bisect" in label
            else expected
        )
        found = f"{len(r['keys'] & want)}/{len(want)}" + ("" if r["keys"] == want else "?")
        peak = f"{r['peak_mb']:.0f} MB" if r["peak_is_own"] else f"<={r['peak_mb']:.0f} MB"
        print(
            f"{label:48} {r['wall_s']:7.1f}s {peak:>10} "
            f"{r['read']:>10,} / {r['held']:<10,} {r['segments']:>9} {found:>6}  "
            "<= 15 s, <= 500 MB, read << held"
        )
    for label, r in results:
        if r["keys"] != expected and "no-bisect" not in label:
            print(f"  {label}: found {sorted(r['keys'] - expected)} extra, "
                  f"{sorted(expected - r['keys'])} missing")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
