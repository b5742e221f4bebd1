"""Helpers shared by the integration tests: running `shadow` and reading its store."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import duckdb

from tests.conftest import ROOT, shadow_cmd


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    """`shadow replay ARGS --no-progress` as a subprocess, output captured."""
    return subprocess.run(
        shadow_cmd("replay", *args, "--no-progress"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )


def rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a query on a closed store, opened read-only."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def verdicts(db: Path, run_id: str) -> dict[tuple[str, str], int]:
    """Exchanges per (endpoint, verdict) of one run."""
    found = rows(
        db,
        "SELECT endpoint, verdict, count(*) FROM exchanges WHERE run_id = ? GROUP BY ALL",
        [run_id],
    )
    return {(str(e), str(v)): int(n) for e, v, n in found}
