"""Stores holding table diffs, written by the real `shadow data diff` on SQLite files.

Nothing here types a figure into a store: two SQLite databases are written with the
stdlib, and `shadow data diff` (through click's CliRunner, in this process) compares
them and stores the run, as a user would. The readers' tests then compare what they
show with `shadow_data_tables` on the same store.

    old, new = sqlite_pair(tmp_path)                      # OLD_ROWS, NEW_ROWS
    result = data_diff(tmp_path / "s.duckdb", old, new)   # exit 1: rows differ
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from shadow.cli.main import cli
from shadow.store.writer import reading

MARKUP = "<script>alert(1)</script>"
Row = tuple[int, str | None, float | None]

# t(id, name, v): id 2 changes in both columns, 4 in name (from markup), 3 is only in
# old, 5 only in new; 1 is the same. 4 differing rows: 2 changed, 1 + 1 on one side.
OLD_ROWS: list[Row] = [(1, "a", 1.0), (2, "b", 2.0), (3, "c", 3.0), (4, MARKUP, 4.0)]
NEW_ROWS: list[Row] = [(1, "a", 1.0), (2, "B", 2.5), (4, "d", 4.0), (5, "e", 5.0)]


def sqlite_table(path: Path, rows: Sequence[Row], table: str = "t", unique: bool = True) -> Path:
    """A SQLite file holding `table`(id INTEGER PRIMARY KEY, name TEXT, v REAL).

    `unique=False`: `id` is a plain INTEGER column, so a key may repeat.
    """
    quoted = '"' + table.replace('"', '""') + '"'
    key = "INTEGER PRIMARY KEY" if unique else "INTEGER"
    con = sqlite3.connect(path)
    try:
        con.execute(f"CREATE TABLE {quoted} (id {key}, name TEXT, v REAL)")
        con.executemany(f"INSERT INTO {quoted} VALUES (?, ?, ?)", rows)
        con.commit()
    finally:
        con.close()
    return path


def sqlite_pair(
    tmp: Path,
    old_rows: Sequence[Row] = OLD_ROWS,
    new_rows: Sequence[Row] = NEW_ROWS,
    table: str = "t",
    prefix: str = "",
    unique: bool = True,
) -> tuple[Path, Path]:
    """The legacy and the migrated database, `table` in each."""
    return (
        sqlite_table(tmp / f"{prefix}old.sqlite", old_rows, table, unique),
        sqlite_table(tmp / f"{prefix}new.sqlite", new_rows, table, unique),
    )


def data_diff(db: Path | str, old: Path, new: Path, *extra: str, table: str = "t") -> Result:
    """`shadow data diff --old sqlite:OLD --new sqlite:NEW --table T --key id --db DB`."""
    args = ["data", "diff", "--old", f"sqlite:{old}", "--new", f"sqlite:{new}"]
    args += ["--table", table, "--key", "id", "--db", str(db), *extra]
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def shadow(*args: str) -> Result:
    """Any `shadow` command, in this process."""
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def data_tables(db: Path | str, run: str | None = None) -> dict[str, dict[str, Any]]:
    """`shadow_data_tables(run)` of `db`, read as every reader reads it: by table name."""
    with reading(str(db)) as con:
        cur = con.execute("SELECT * FROM shadow_data_tables(CAST(? AS VARCHAR))", [run])
        names = [d[0] for d in cur.description]
        found = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return {str(r["table_name"]): r for r in found}


__all__ = [
    "MARKUP",
    "NEW_ROWS",
    "OLD_ROWS",
    "data_diff",
    "data_tables",
    "shadow",
    "sqlite_pair",
    "sqlite_table",
]
