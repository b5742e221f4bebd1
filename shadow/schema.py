"""The DuckDB schema: its version, migrations and the column lists writers use.

Migrations are the numbered `.sql` files in `shadow/sql/`; a database records
the highest one applied in `shadow_meta`. Reports read these tables directly.
"""

from __future__ import annotations

from importlib import resources

import duckdb

SCHEMA_VERSION = 2

EXCHANGE_COLUMNS = (
    "exchange_id", "run_id", "ts", "source", "method", "endpoint", "path", "query",
    "verdict", "skip_reason", "primary_status", "candidate_status", "primary_ms",
    "candidate_ms", "primary_error", "candidate_error", "diff_count", "diffs_truncated",
    "body_kind", "notes", "request_headers", "request_body", "request_body_truncated",
    "primary_headers", "primary_body", "primary_body_truncated", "candidate_headers",
    "candidate_body", "candidate_body_truncated", "secondary_status", "secondary_ms",
    "secondary_error",
)  # fmt: skip

DIFFERENCE_COLUMNS = (
    "exchange_id", "run_id", "endpoint", "path", "kind", "primary_value", "candidate_value",
    "status", "cluster_path", "reason",
)  # fmt: skip

NOISE_COLUMNS = ("exchange_id", "run_id", "endpoint", "path", "cluster_path", "kind")

CREATE_META = "CREATE TABLE IF NOT EXISTS shadow_meta (key VARCHAR PRIMARY KEY, value VARCHAR)"
GET_VERSION = "SELECT value FROM shadow_meta WHERE key = 'schema_version'"
SET_VERSION = "INSERT OR REPLACE INTO shadow_meta VALUES ('schema_version', ?)"


def _migrations() -> list[tuple[int, str]]:
    files = resources.files("shadow").joinpath("sql")
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
            con.execute(SET_VERSION, [str(version)])
            con.execute("COMMIT")
            current = version
    return current
