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


def test_migrate_creates_latest_version_and_is_idempotent(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    try:
        assert schema.migrate(con) == schema.SCHEMA_VERSION == 2
        assert con.execute("SELECT key, value FROM shadow_meta").fetchall() == [
            ("schema_version", "2")
        ]
        assert schema.migrate(con) == 2
        assert con.execute("SELECT count(*) FROM shadow_meta").fetchone() == (1,)
        assert schema.schema_version(con) == 2
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


def test_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    """A database written by schema 1 keeps its rows and gains the version 2 columns."""
    from importlib import resources

    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute(schema.CREATE_META)
    con.execute(resources.files("shadow").joinpath("sql/001_initial.sql").read_text())
    con.execute(schema.SET_VERSION, ["1"])
    con.execute(
        "INSERT INTO differences (exchange_id, run_id, endpoint, path, kind) "
        "VALUES ('e', 'r', 'GET /a', '$.x[3]', 'value_changed')"
    )
    assert schema.migrate(con) == 2
    assert con.execute("SELECT path, status FROM differences").fetchall() == [("$.x[3]", "real")]
    cols = {r[0] for r in con.execute("DESCRIBE exchanges").fetchall()}
    assert {"secondary_status", "secondary_ms", "secondary_error"} <= cols
    con.close()
