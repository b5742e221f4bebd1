"""Several stores read as one: the shards of `shadow sink`s and `shadow proxy --processes`.

A reader's `--db` may name one DuckDB file, a directory (every `*.duckdb` in it)
or a glob (`shards/*.duckdb`). Several files are merged into one database in a
temporary directory, which the reader then reads like any store: every figure is
computed by the same SQL over the same rows one merged store would hold.

Merging: rows of every table are appended; a run found in several shards (sinks
or proxy processes given one run id) becomes one run whose counts are summed,
starting at the earliest start and ended when every shard ended; identical
`run_accepted` entries (each shard stores its run's) are kept once. Every shard
must have this shadow's schema version: stores of different versions are refused
rather than mixed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import duckdb

from shadow.errors import StoreError
from shadow.store import outcomes
from shadow.store.schema import GET_VERSION, SCHEMA_VERSION, migrate
from shadow.store.writer import asking_writer, describe_error, is_lock_error

if TYPE_CHECKING:
    from shadow.config.loader import Accepted

STORE_SUFFIX = ".duckdb"
_GLOB_CHARS = frozenset("*?[")
MAX_SHARDS = 1024  # more is a wrong glob (a home directory), not a fleet of sinks

# runs: how each column of one run is settled across shards (the rest: the earliest
# shard's value). `requests` and `ended_at` stay NULL while any shard is still running.
_RUN_COLUMNS = {
    "started_at": "min(started_at)",
    "ended_at": "CASE WHEN count(ended_at) = count(*) THEN max(ended_at) END",
    "copies_dropped": "sum(copies_dropped)",
    "exchanges": "sum(exchanges)",
    "rows_spilled": "sum(rows_spilled)",
    "requests": "CASE WHEN count(requests) = count(*) THEN sum(requests) END",
    "requests_shed": "sum(requests_shed)",
    "requests_lost": "sum(requests_lost)",
    "worker_restarts": "sum(worker_restarts)",
}


def is_many(spec: str) -> bool:
    """Whether `--db` names several stores (a directory or a glob) rather than one file.

    A file that exists is one store, even when its name holds `[` or `*`.
    """
    if os.path.isfile(spec):
        return False
    return os.path.isdir(spec) or bool(_GLOB_CHARS & set(spec))


def expand(spec: str) -> list[str]:
    """The store files `spec` names: itself, the `*.duckdb` files of a directory, a glob's.

    StoreError when a directory or glob names no file.
    """
    if not is_many(spec):
        return [spec]
    if os.path.isdir(spec):
        found = glob.glob(os.path.join(glob.escape(spec), "*" + STORE_SUFFIX))
        where = f"directory {spec} holds no *{STORE_SUFFIX} file"
    else:
        found = glob.glob(spec)
        where = f"{spec!r} matches no file"
    files = sorted({os.path.realpath(f) for f in found if os.path.isfile(f)})
    if not files:
        raise StoreError(f"--db {where}")
    if len(files) > MAX_SHARDS:
        raise StoreError(f"--db {spec!r} matches {len(files)} files (at most {MAX_SHARDS})")
    return files


def _version(con: duckdb.DuckDBPyConnection, alias: str, path: str) -> int:
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [alias]
    ).fetchall()
    if ("shadow_meta",) not in tables:
        raise StoreError(f"{path} holds no shadow data")
    row = con.execute(GET_VERSION.replace("shadow_meta", f'"{alias}".shadow_meta')).fetchone()
    return int(row[0]) if row else 0


def _attach(con: duckdb.DuckDBPyConnection, path: str, alias: str, wait: float) -> None:
    """ATTACH `path` read-only, retrying while a writer holds it (it lets go on request)."""
    deadline = time.monotonic() + wait
    delay = 0.005
    quoted = path.replace("'", "''")
    while True:
        try:
            con.execute(f"ATTACH '{quoted}' AS \"{alias}\" (READ_ONLY)")
            return
        except duckdb.Error as exc:
            if not is_lock_error(exc) or time.monotonic() >= deadline:
                raise StoreError(describe_error(exc, path)) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name <> 'shadow_meta' ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def merge_into(con: duckdb.DuckDBPyConnection, paths: Sequence[str], wait: float = 30.0) -> None:
    """Append the stores `paths` to `con` (a migrated, writable store), runs settled as one.

    Every file is attached read-only, with a read request beside it (a live writer
    lets go within a second), only while the rows are copied, in one transaction:
    `con` gets all of them or nothing. StoreError for a file that is locked for good,
    is not a shadow store or has another schema version, and for an exchange id
    found in two stores of one run (copies of one store, or replays of one run id).
    """
    runs = _columns(con, "runs")
    tables = [t for t in _tables(con) if t != "runs"]
    _enough_files(len(paths))
    aliases: list[str] = []
    with contextlib.ExitStack() as stack:
        try:
            # ATTACH outside any transaction: a failed one would abort it.
            for i, path in enumerate(paths):
                stack.enter_context(asking_writer(path))
                alias = f"shard_{i}"
                _attach(con, path, alias, wait)
                aliases.append(alias)
                version = _version(con, alias, path)
                if version != SCHEMA_VERSION:
                    raise StoreError(_version_problem(path, version))
            con.execute("BEGIN TRANSACTION")
            try:
                _copy(con, aliases, tables, runs)
                clash = con.execute(
                    "SELECT run_id, exchange_id FROM exchanges GROUP BY ALL HAVING count(*) > 1 "
                    "LIMIT 1"
                ).fetchone()
                if clash:
                    raise StoreError(
                        f"exchange {clash[1]!r} of run {clash[0]!r} is in more than one store: "
                        "copies of one store, or runs given one --run-id that number their "
                        "exchanges alike (replays); read them apart"
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise StoreError(f"cannot merge {len(paths)} stores: {first}") from None
        finally:
            for alias in aliases:
                with contextlib.suppress(duckdb.Error):
                    con.execute(f'DETACH "{alias}"')


def _enough_files(shards: int) -> None:
    """Raise this process's open-file limit to what attaching every shard at once takes."""
    try:
        import resource
    except ImportError:  # not on this platform: the attach names the problem if any
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * shards + 256  # a database file, its WAL, and room for the rest
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _copy(
    con: duckdb.DuckDBPyConnection, aliases: list[str], tables: list[str], runs: list[str]
) -> None:
    """Every table's rows from the attached shards; runs settled; accepted entries once."""
    cols_of = {t: ", ".join(f'"{c}"' for c in _columns(con, t)) for t in tables}
    run_cols = ", ".join(f'"{c}"' for c in runs)
    # A run already in `con` (shards folded into an existing store) is one of them.
    con.execute("CREATE TEMP TABLE _shard_runs AS SELECT * FROM runs")
    try:
        for alias in aliases:
            for table, cols in cols_of.items():
                con.execute(
                    f'INSERT INTO main."{table}" ({cols}) '
                    f'SELECT {cols} FROM "{alias}".main."{table}"'
                )
            con.execute(
                f'INSERT INTO _shard_runs ({run_cols}) SELECT {run_cols} FROM "{alias}".main.runs'
            )
        settled = ", ".join(
            _RUN_COLUMNS.get(c, f'arg_min("{c}", started_at)') + f' AS "{c}"'
            for c in runs
            if c != "run_id"
        )
        con.execute("DELETE FROM runs")
        con.execute(f"INSERT INTO runs SELECT run_id, {settled} FROM _shard_runs GROUP BY run_id")
        con.execute("CREATE TEMP TABLE _accepted AS SELECT DISTINCT * FROM run_accepted")
        con.execute("DELETE FROM run_accepted")
        con.execute("INSERT INTO run_accepted SELECT * FROM _accepted")
    finally:
        con.execute("DROP TABLE IF EXISTS _shard_runs")
        con.execute("DROP TABLE IF EXISTS _accepted")


def _version_problem(path: str, version: int) -> str:
    if version < SCHEMA_VERSION:
        return (
            f"stores of different schema versions: {path} has {version}, this shadow reads "
            f"{SCHEMA_VERSION}; run `shadow migrate --db {path}` first"
        )
    return (
        f"stores of different schema versions: {path} has {version}, newer than this shadow "
        f"({SCHEMA_VERSION}); upgrade shadow to read it"
    )


@contextmanager
def merged(
    paths: Sequence[str], wait: float = 30.0, accepted: Sequence[Accepted] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the stores `paths` merged into one (a temporary file), macros installed."""
    folder = tempfile.mkdtemp(prefix="shadow-merged-")
    con = None
    try:
        try:
            con = duckdb.connect(os.path.join(folder, "merged" + STORE_SUFFIX))
            migrate(con)
            merge_into(con, paths, wait)
            outcomes.install(con, accepted)
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise StoreError(f"cannot merge {len(paths)} stores: {first}") from None
        yield con
    finally:
        if con is not None:
            con.close()
        shutil.rmtree(folder, ignore_errors=True)
