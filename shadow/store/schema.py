"""The DuckDB schema: its version and migrations.

Migrations are the numbered `.sql` files in `shadow/store/sql/`; a database
records the highest one applied in `shadow_meta`. The columns of each table are
declared once, in `shadow.store.rows`; a test checks the migrated tables
against those declarations. Some migrations also need a step in Python (the
`_AFTER` hooks), e.g. to fill a new column with a Python definition.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import duckdb

from comparators import cluster_path
from shadow.store.rows import DifferenceRow, ExchangeRow, NoiseRow, columns

SCHEMA_VERSION = 8

# Kept for readers that list columns; the declarations in rows.py are the source.
EXCHANGE_COLUMNS = columns(ExchangeRow)
DIFFERENCE_COLUMNS = columns(DifferenceRow)
NOISE_COLUMNS = columns(NoiseRow)

CREATE_META = "CREATE TABLE IF NOT EXISTS shadow_meta (key VARCHAR PRIMARY KEY, value VARCHAR)"
GET_VERSION = "SELECT value FROM shadow_meta WHERE key = 'schema_version'"
SET_VERSION = "INSERT OR REPLACE INTO shadow_meta VALUES ('schema_version', ?)"


def _backfill_cluster_paths(con: duckdb.DuckDBPyConnection) -> None:
    # Rows of schema version 1 have no cluster path; fill it with the one definition
    # (comparators.cluster_path) rather than a SQL imitation of it.
    paths = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT path FROM differences WHERE cluster_path IS NULL"
        ).fetchall()
    ]
    if not paths:
        return
    import pyarrow as pa

    mapping = pa.table({"path": paths, "cluster": [cluster_path(p) for p in paths]})
    con.register("_clusters", mapping)
    try:
        con.execute(
            "UPDATE differences SET cluster_path = c.cluster FROM _clusters c "
            "WHERE differences.cluster_path IS NULL AND differences.path = c.path"
        )
    finally:
        con.unregister("_clusters")


# Version 3's facts for rows written before it (what the writer now stores directly).
_USABLE = """
    SELECT exchange_id, run_id FROM exchanges
    WHERE secondary_error IS NULL AND secondary_status IS NOT NULL
      AND secondary_status = primary_status AND verdict IN ('match', 'differ')
"""
_BACKFILL_V3 = (
    f"""
    UPDATE differences SET secondary_same = EXISTS (
        SELECT 1 FROM noise_differences n
        WHERE n.exchange_id = differences.exchange_id AND n.run_id = differences.run_id
          AND n.cluster_path = differences.cluster_path AND n.kind = differences.kind)
    WHERE (exchange_id, run_id) IN ({_USABLE})
    """,
    """
    UPDATE differences SET cluster_first = x.rn = 1
    FROM (SELECT rowid AS r, row_number() OVER (
              PARTITION BY exchange_id, run_id, cluster_path, kind ORDER BY path) AS rn
          FROM differences) x
    WHERE differences.rowid = x.r
    """,
    f"""
    UPDATE noise_differences SET cluster_first = x.rn = 1
    FROM (SELECT rowid AS r, row_number() OVER (
              PARTITION BY exchange_id, run_id, cluster_path, kind ORDER BY path) AS rn
          FROM noise_differences WHERE (exchange_id, run_id) IN ({_USABLE})) x
    WHERE noise_differences.rowid = x.r
    """,
    # Before version 3 an accepted difference was only a status written with it; keep
    # that judgement as the run's own entries (exact endpoint, path and kind).
    """
    INSERT INTO run_accepted
    SELECT run_id,
           CAST(row_number() OVER (PARTITION BY run_id ORDER BY endpoint, path, kind)
                AS INTEGER),
           endpoint, path, kind,
           coalesce(string_agg(DISTINCT reason, '; ' ORDER BY reason),
                    'accepted before schema version 3')
    FROM differences WHERE status = 'accepted'
    GROUP BY run_id, endpoint, path, kind
    """,
)


def _backfill_v3(con: duckdb.DuckDBPyConnection) -> None:
    _backfill_cluster_paths(con)
    for sql in _BACKFILL_V3:
        con.execute(sql)


_AFTER: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {3: _backfill_v3}


def _migrations() -> list[tuple[int, str]]:
    files = resources.files("shadow.store").joinpath("sql")
    out = []
    for entry in files.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            out.append((int(name[:3]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Version recorded in the database, 0 for an empty one."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "shadow_meta" not in tables:
        return 0
    row = con.execute(GET_VERSION).fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the database's version; return the new version."""
    current = schema_version(con)
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {current} is newer than this shadow ({SCHEMA_VERSION})"
        )
    con.execute(CREATE_META)
    for version, sql in _migrations():
        if version > current:
            con.execute("BEGIN TRANSACTION")
            con.execute(sql)
            after = _AFTER.get(version)
            if after is not None:
                after(con)
            con.execute(SET_VERSION, [str(version)])
            con.execute("COMMIT")
            current = version
    return current
