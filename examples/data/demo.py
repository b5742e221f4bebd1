"""`make demo-data`: verify the example migration (legacy SQLite -> PostgreSQL).

Builds the legacy SQLite database from the examples' seeded rows, starts a
throwaway PostgreSQL on 127.0.0.1 (its own temporary directory and free port),
migrates the rows into it with the three deliberate slips of examples/data/README.md,
runs `shadow data diff` with examples/shadow.toml's `[data.tables.*]` sections and
renders the report. Output goes to ./demo-output/ (data.duckdb, data-report.html).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from examples.data.build import SLIP_DESCRIPTIONS, build_legacy, migrate  # noqa: E402
from examples.data.postgres import TempPostgres, find_binaries  # noqa: E402


def main() -> int:
    out = ROOT / "demo-output"
    out.mkdir(exist_ok=True)
    if find_binaries() is None:
        print(
            "demo-data: PostgreSQL is not installed (Debian: apt-get install postgresql; "
            "`bash scripts/ensure-services` does it as root)",
            file=sys.stderr,
        )
        return 2
    started = time.monotonic()
    legacy = out / "legacy.sqlite"
    db = out / "data.duckdb"
    for stale in (db, Path(f"{db}.wal")):
        stale.unlink(missing_ok=True)
    rows = build_legacy(legacy)
    print(f"legacy database: {legacy} ({rows} rows)")
    tmp = Path(tempfile.mkdtemp(prefix="shadow-demo-pg-"))
    try:
        with TempPostgres(tmp) as pg:
            url = pg.create_database("migrated")
            migrate(legacy, url)
            print(f"migrated into PostgreSQL on 127.0.0.1:{pg.port}, with these slips:")
            for slip in SLIP_DESCRIPTIONS:
                print(f"  - {slip}")
            shadow = [sys.executable, "-m", "shadow.cli"]
            diff = subprocess.run(
                [*shadow, "data", "diff", "--old", f"sqlite:{legacy}", "--new", url,
                 "--config", str(ROOT / "examples" / "shadow.toml"), "--db", str(db)],
                cwd=ROOT, timeout=120,
            )  # fmt: skip
            if diff.returncode not in (0, 1):
                return diff.returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = out / "data-report.html"
    subprocess.run(
        [sys.executable, "-m", "shadow.cli", "report", "--db", str(db), "-o", str(report)],
        cwd=ROOT, check=True, timeout=120,
    )  # fmt: skip
    print(f"report: {report}  ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
