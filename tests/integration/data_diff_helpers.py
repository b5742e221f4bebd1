"""Helpers of the `shadow data diff` tests: filling SQLite and PostgreSQL, running the
command (in-process or as a subprocess), reading the run it stored."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from tests.conftest import ROOT, shadow_cmd

Found = set[tuple[str, str | None, str]]  # (row key as stored, column, kind)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def shadow_data(*args: str, timeout: float = 120) -> Result:
    """`shadow data diff ARGS` as a subprocess (what a user runs), output captured."""
    proc = subprocess.run(
        shadow_cmd("data", "diff", *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def shadow_data_inline(*args: str) -> Result:
    """`shadow data diff ARGS` in this process (click's runner): the same command, faster."""
    from click.testing import CliRunner

    from shadow.cli.main import cli

    result = CliRunner().invoke(cli, ["data", "diff", *args], catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a traceback a user would see: fail with it
    return Result(result.exit_code, result.stdout, result.stderr)


# --- filling the databases -------------------------------------------------------------------


def pg_exec(url: str, *statements: str) -> None:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(url, autocommit=True) as con:
        cur = con.cursor()
        try:
            for statement in statements:
                cur.execute(statement)
        finally:
            cur.close()


def pg_insert(url: str, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    import adbc_driver_postgresql.dbapi as pg

    if not rows:
        return
    with pg.connect(url, autocommit=True) as con:
        cur = con.cursor()
        try:
            cur.executemany(sql, [tuple(r) for r in rows])
        finally:
            cur.close()


def sqlite_exec(path: Path, *statements: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()


def sqlite_insert(path: Path, sql: str, rows: Iterable[Sequence[Any]]) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executemany(sql, rows)
        db.commit()


def series(n: int) -> str:
    """SQLite's `g(v)`: 1..n, for `INSERT ... SELECT ... FROM g` (prefix the statement)."""
    return f"WITH RECURSIVE g(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM g WHERE v < {n}) "


# --- reading the store -------------------------------------------------------------------------


def store_rows(db: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on a closed store (read-only, with the outcome macros installed)."""
    from shadow.store.outcomes import install

    con = duckdb.connect(str(db), read_only=True)
    try:
        install(con)
        return con.execute(sql, list(params)).fetchall()
    finally:
        con.close()


def differences(db: Path, run_id: str | None = None) -> dict[str, Found]:
    """Per table: (row key, column, kind) of every stored difference (latest runs)."""
    found: dict[str, Found] = {}
    for table, key, column, kind in store_rows(
        db,
        "SELECT table_name, row_key, column_name, kind FROM shadow_data_differences(?)",
        [run_id],
    ):
        found.setdefault(table, set()).add((key, column, kind))
    return found


def figures(db: Path, table: str) -> dict[str, Any]:
    """shadow_data_tables(NULL) of one table: its latest comparison's figures by name."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        from shadow.store.outcomes import install

        install(con)
        cur = con.execute("SELECT * FROM shadow_data_tables(NULL) WHERE table_name = ?", [table])
        names = [d[0] for d in cur.description]
        found = cur.fetchall()
    finally:
        con.close()
    assert len(found) == 1, found
    return dict(zip(names, found[0], strict=True))


def run_count(db: Path) -> int:
    if not db.exists():
        return 0
    return int(store_rows(db, "SELECT count(*) FROM runs")[0][0])


def dump_store(db: Path) -> str:
    """Every value of every table of the store, as text (to look for a secret in it)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute("SHOW TABLES").fetchall()]
        parts = []
        for name in names:
            parts.append(repr(con.execute(f'SELECT * FROM "{name}"').fetchall()))
        return "\n".join(parts)
    finally:
        con.close()


__all__ = [
    "Found",
    "Result",
    "differences",
    "dump_store",
    "figures",
    "pg_exec",
    "pg_insert",
    "run_count",
    "series",
    "shadow_data",
    "shadow_data_inline",
    "sqlite_exec",
    "sqlite_insert",
    "store_rows",
]
