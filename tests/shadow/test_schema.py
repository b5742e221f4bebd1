"""shadow.schema: version table, migrations, column lists matching the tables."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from shadow import schema


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> tuple[str, ...]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    return tuple(r[0] for r in rows)


def test_empty_database_has_version_zero(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "e.duckdb"))
    try:
        assert schema.schema_version(con) == 0
    finally:
        con.close()


def test_migrate_creates_version_1_and_is_idempotent(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    try:
        assert schema.migrate(con) == schema.SCHEMA_VERSION == 1
        assert con.execute("SELECT key, value FROM shadow_meta").fetchall() == [
            ("schema_version", "1")
        ]
        assert schema.migrate(con) == 1
        assert con.execute("SELECT count(*) FROM shadow_meta").fetchone() == (1,)
        assert schema.schema_version(con) == 1
    finally:
        con.close()


def test_column_lists_match_tables(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    try:
        schema.migrate(con)
        assert table_columns(con, "exchanges") == schema.EXCHANGE_COLUMNS
        assert table_columns(con, "differences") == schema.DIFFERENCE_COLUMNS
        assert "run_id" in table_columns(con, "runs")
    finally:
        con.close()


def test_newer_database_is_refused(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "n.duckdb"))
    try:
        schema.migrate(con)
        con.execute(schema.SET_VERSION, ["99"])
        with pytest.raises(RuntimeError, match="newer"):
            schema.migrate(con)
    finally:
        con.close()
