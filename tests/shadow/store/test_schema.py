"""shadow.store.schema: version table, migrations, column lists matching the tables."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from shadow.store import rows, schema


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
        assert schema.migrate(con) == schema.SCHEMA_VERSION == 8
        assert con.execute("SELECT key, value FROM shadow_meta").fetchall() == [
            ("schema_version", "8")
        ]
        assert schema.migrate(con) == 8
        assert con.execute("SELECT count(*) FROM shadow_meta").fetchone() == (1,)
        assert schema.schema_version(con) == 8
    finally:
        con.close()


@pytest.mark.parametrize("table", sorted(rows.TABLES))
def test_row_declarations_are_the_migrated_tables(tmp_path: Path, table: str) -> None:
    """One declaration: the migrated table has exactly the declared columns, order and types."""
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    try:
        schema.migrate(con)
        described = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]
        declared = list(rows.sql_types(rows.TABLES[table]).items())
        assert described == declared
        assert rows.arrow_schema(rows.TABLES[table]).names == [name for name, _ in declared]
    finally:
        con.close()


def test_runs_table_exists_after_migration(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "c.duckdb"))
    try:
        schema.migrate(con)
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
    """A database written by schema 1 keeps its rows and gains the later columns.

    Its differences get their cluster path from comparators.cluster_path (the one
    definition), not from SQL.
    """
    from importlib import resources

    path = str(tmp_path / "old.duckdb")
    con = duckdb.connect(path)
    con.execute(schema.CREATE_META)
    con.execute(resources.files("shadow.store").joinpath("sql/001_initial.sql").read_text())
    con.execute(schema.SET_VERSION, ["1"])
    con.execute(
        "INSERT INTO differences (exchange_id, run_id, endpoint, path, kind) "
        "VALUES ('e', 'r', 'GET /a', '$.x[3]', 'value_changed'), "
        "('e', 'r', 'GET /a', '$.items[id=7].name', 'value_changed')"
    )
    assert schema.migrate(con) == schema.SCHEMA_VERSION
    assert con.execute(
        "SELECT path, status, cluster_path FROM differences ORDER BY path"
    ).fetchall() == [
        ("$.items[id=7].name", "real", "$.items[*].name"),
        ("$.x[3]", "real", "$.x[*]"),
    ]
    assert con.execute("SELECT count(*) FROM run_accepted").fetchone() == (0,)
    cols = {r[0] for r in con.execute("DESCRIBE exchanges").fetchall()}
    assert {"secondary_status", "secondary_ms", "secondary_error"} <= cols
    con.close()
