"""`shadow migrate`, and what a reader says about a store of an older schema version."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

import duckdb

from shadow.store import schema
from tests.conftest import ROOT, shadow_cmd


def _version_2_store(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute(schema.CREATE_META)
    for name in ("001_initial.sql", "002_secondary_and_status.sql"):
        con.execute(resources.files("shadow.store").joinpath("sql", name).read_text())
    con.execute(schema.SET_VERSION, ["2"])
    con.execute(
        "INSERT INTO exchanges (exchange_id, run_id, ts, source, method, endpoint, path, verdict)"
        " VALUES ('e1', 'r1', now(), 'proxy', 'GET', 'GET /a', '/a', 'match')"
    )
    con.execute("INSERT INTO runs (run_id, source, started_at) VALUES ('r1', 'proxy', now())")
    con.close()


def _shadow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shadow_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_reader_asks_for_migrate_then_reads(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    _version_2_store(db)
    refused = _shadow("check", "--db", str(db), "--min-samples", "1")
    assert refused.returncode == 3
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr
    assert f"shadow migrate --db {db}" in lines[0]

    migrated = _shadow("migrate", "--db", str(db))
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema version 2 -> {schema.SCHEMA_VERSION}" in migrated.stdout
    again = _shadow("migrate", "--db", str(db))
    assert "nothing to do" in again.stdout

    ok = _shadow("check", "--db", str(db), "--min-samples", "1")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "GET /a" in ok.stdout and "100.00%" in ok.stdout


def test_migrate_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = _shadow("migrate", "--db", str(tmp_path / "none.duckdb"))
    assert result.returncode == 3
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
