"""`shadow data diff` without its command line: tables in, results (and a stored run) out."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shadow.config.data import DataTable
from shadow.config.loader import Config
from shadow.data.dburl import DatabaseUrl
from shadow.data.diff import MAX_DUPLICATES, MAX_ROWS, SEGMENTS, THRESHOLD, TableDiff, TableResult
from shadow.data.plan import build_plan
from shadow.data.side import Side
from shadow.errors import ConfigError, StoreError


@dataclass(frozen=True)
class DiffOptions:
    """The command's knobs (defaults: reladiff's segments and threshold)."""

    segments: int = SEGMENTS
    threshold: int = THRESHOLD
    bisect: bool = True
    max_rows: int = MAX_ROWS
    max_duplicates: int = MAX_DUPLICATES
    timeout: float = 30.0


def open_side(url: DatabaseUrl, label: str, timeout: float) -> Side:
    """Connect to one database (DatabaseError, exit 9: unreachable, refused, missing)."""
    if url.dialect == "sqlite":
        from shadow.data.sqlite import SqliteSide

        return SqliteSide(url, label, timeout)
    from shadow.data.postgres import PostgresSide

    return PostgresSide(url, label, timeout)


def select_tables(
    config: Config,
    specs: Sequence[str],
    key: Sequence[str],
    since: str | None,
    min_age: float | None,
) -> list[DataTable]:
    """The tables to compare: `--table OLD[:NEW]` (a [data.tables] section by name or old
    name, else defaults), or every section of the config; `--key`, `--since` and
    `--min-age` override what the sections say."""
    chosen: list[DataTable] = []
    if not specs:
        chosen = list(config.data.values())
        if not chosen:
            raise ConfigError(
                "no table to compare: give --table OLD[:NEW] (and --key) or "
                "[data.tables.NAME] sections in --config"
            )
    for spec in specs:
        old, _, new = spec.partition(":")
        old, new = old.strip(), new.strip()
        if not old or (":" in spec and not new):
            raise ConfigError(f"--table {spec!r}: expected OLD or OLD:NEW")
        section = config.data.get(old) or next(
            (t for t in config.data.values() if t.old == old), None
        )
        table = section or DataTable(name=old, old=old, new=new or old)
        if new:
            table = replace(table, new=new)
        chosen.append(table)
    out = []
    for table in chosen:
        if key:
            table = replace(table, key=tuple(key))
        if since is not None:
            table = replace(table, since=since)
        if min_age is not None:
            table = replace(table, min_age=min_age)
        if (table.since is None) != (table.min_age is None):
            raise ConfigError(
                f"table {table.name}: --since COLUMN and --min-age SECONDS go together "
                "(rows whose COLUMN is younger than SECONDS are in flight)"
            )
        if not table.key:
            raise ConfigError(f"table {table.name}: no key: give --key COLUMN[,COLUMN]")
        out.append(table)
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"table {sorted(n for n in names if names.count(n) > 1)[0]} given twice")
    return out


def check_store_path(db: str) -> None:
    """Fail before any work when the store cannot be written (nothing is created yet)."""
    parent = os.path.dirname(os.path.abspath(db)) or "."
    if not os.path.isdir(parent):
        raise StoreError(f"directory {parent} does not exist")
    if os.path.exists(db):
        from shadow.store.writer import ensure_writable

        ensure_writable(db)  # the right kind of file, migrated, not locked
    elif not os.access(parent, os.W_OK):
        raise StoreError(f"cannot write {db}: directory {parent} is not writable")


def diff_tables(
    old_url: DatabaseUrl,
    new_url: DatabaseUrl,
    tables: Sequence[DataTable],
    config: Config,
    options: DiffOptions,
    *,
    now: datetime | None = None,
) -> list[tuple[TableResult, float]]:
    """Compare each table; (result, start time) each. Nothing is stored here."""
    old = open_side(old_url, "old", options.timeout)
    try:
        new = open_side(new_url, "new", options.timeout)
    except BaseException:
        old.close()
        raise
    results = []
    try:
        for table in tables:
            started = time.time()
            cutoff = None
            if table.min_age is not None:
                cutoff = (now or datetime.now(UTC)) - timedelta(seconds=table.min_age)
            plan = build_plan(table, old, new, cutoff=cutoff)
            old.rows_read = new.rows_read = 0
            walk = TableDiff(
                plan, old, new, table.rules(config.rules),
                segments=options.segments, threshold=options.threshold, bisect=options.bisect,
                max_rows=options.max_rows, max_duplicates=options.max_duplicates,
            )  # fmt: skip
            results.append((walk.run(), started))
    finally:
        old.close()
        new.close()
    return results


def run_options(table: DataTable, options: DiffOptions) -> dict[str, Any]:
    """What a stored run records of how it was made."""
    return {
        "table": table.name,
        "old_table": table.old,
        "new_table": table.new,
        "key": list(table.key),
        "segments": options.segments,
        "threshold": options.threshold,
        "bisect": options.bisect,
        "max_rows": options.max_rows,
        "since": table.since,
        "min_age": table.min_age,
    }


__all__ = [
    "DiffOptions",
    "check_store_path",
    "diff_tables",
    "open_side",
    "run_options",
    "select_tables",
]
