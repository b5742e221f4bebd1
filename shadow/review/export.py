"""`shadow export`: copy the store's tables to Parquet files with DuckDB's COPY.

Each table becomes `<dir>/<table>.parquet` (zstd-compressed), written to a
temporary name first and renamed, so a reader never sees half a file. The
judged outcomes (`exchange_outcomes`, `difference_outcomes`, `endpoint_outcomes`)
are exported beside them from the one outcome definition, which the caller
gets from `shadow.store.writer.reading` (it installs the definition).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import duckdb

from shadow.errors import ConfigError

TABLES = (
    "runs",
    "exchanges",
    "differences",
    "noise_differences",
    "run_accepted",
    "conversations",
)
# Exported name -> the outcome macro it is read from (with the run id).
OUTCOMES = {
    "exchange_outcomes": "shadow_exchange_outcomes",
    "difference_outcomes": "shadow_difference_outcomes",
    "endpoint_outcomes": "shadow_endpoint_outcomes",
}
FORMATS = ("parquet",)

# {table} and {target} are ours (a fixed table name, a quoted literal); the run id is a parameter.
COPY_TABLE = """
COPY (SELECT * FROM {table} WHERE (CAST(? AS VARCHAR) IS NULL OR run_id = ?))
TO {target} (FORMAT PARQUET, COMPRESSION ZSTD)
"""
COPY_OUTCOME = """
COPY (SELECT * FROM {macro}(CAST(? AS VARCHAR)))
TO {target} (FORMAT PARQUET, COMPRESSION ZSTD)
"""
PRESENT_TABLES = "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
RUN_EXISTS = "SELECT count(*) FROM runs WHERE run_id = ?"


@dataclass(frozen=True)
class Exported:
    table: str
    path: str
    rows: int


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def prepare_dir(directory: str) -> None:
    """Create the output directory (and its parents); ConfigError if that is impossible."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ConfigError(f"-o {directory}: exists and is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"-o {directory}: cannot create it ({exc.strerror})") from None


def export_tables(
    con: duckdb.DuckDBPyConnection, directory: str, run_id: str | None = None, fmt: str = "parquet"
) -> list[Exported]:
    """Write every shadow table (only `run_id`'s rows, if given) to `directory`."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    present = {r[0] for r in con.execute(PRESENT_TABLES).fetchall()}
    if run_id is not None:
        found = con.execute(RUN_EXISTS, [run_id]).fetchone()
        if not found or not found[0]:
            raise ConfigError(f"--run {run_id!r}: no such run in the database")
    prepare_dir(directory)
    out = []
    jobs = [(t, COPY_TABLE.format(table=t, target="{target}"), [run_id, run_id])
            for t in TABLES if t in present]  # fmt: skip
    jobs += [(name, COPY_OUTCOME.format(macro=m, target="{target}"), [run_id])
             for name, m in OUTCOMES.items()]  # fmt: skip
    for name, sql, params in jobs:
        path = os.path.join(directory, f"{name}.{fmt}")
        tmp = path + ".tmp"
        try:
            row = con.execute(sql.replace("{target}", _literal(tmp)), params).fetchone()
            os.replace(tmp, path)
        except (duckdb.Error, OSError) as exc:
            if os.path.exists(tmp):
                os.remove(tmp)
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"cannot write {path}: {text}") from None
        out.append(Exported(name, path, int(row[0]) if row else 0))
    return out


__all__ = ["FORMATS", "OUTCOMES", "TABLES", "Exported", "export_tables"]
