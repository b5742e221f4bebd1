"""The Data section: tables compared by `shadow data diff`, one card each.

Shown only when the report's scope holds a table diff (schema version 8). Every
figure comes from the one definition of the data figures in
`shadow/store/sql/outcomes.sql`: `shadow_data_tables(run)` (per table its latest diff
in scope, or the given run's), `shadow_data_columns(run)` and
`shadow_data_differences(run)`; nothing here adds or compares a number.

Sizes are bounded whatever the store holds: at most MAX_TABLES tables (those that
differ first), each with at most DIFFERENCES_PER_TABLE stored differences (by row key,
then path) whose values are cut to VALUE_CHARS characters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from reports._sql import rows
from reports.queries import RUN

MAX_TABLES = 200
DIFFERENCES_PER_TABLE = 20
VALUE_CHARS = 200

# The tables in scope, those that differ first; how many there are in all.
TABLES = f"""
SELECT *, count(*) OVER () AS tables_total,
       count(*) FILTER (WHERE differing_rows > 0) OVER () AS tables_differing
FROM shadow_data_tables({RUN})
ORDER BY differing_rows = 0, table_name
LIMIT $n
"""

_IN_TABLES = "table_name IN (SELECT unnest(CAST($tables AS VARCHAR[])))"

COLUMNS = f"""
SELECT table_name, column_name, changed_rows
FROM shadow_data_columns({RUN})
WHERE {_IN_TABLES}
ORDER BY table_name, changed_rows DESC, column_name
"""

# Up to $n stored differences per table, by row key then path; values cut to $cap.
DIFFERENCES = f"""
SELECT table_name, row_key, path, kind, column_name,
       left(old_value, $cap) AS old_value, length(old_value) > $cap AS old_cut,
       left(new_value, $cap) AS new_value, length(new_value) > $cap AS new_cut,
       count(*) OVER (PARTITION BY table_name) AS stored
FROM shadow_data_differences({RUN})
WHERE {_IN_TABLES}
QUALIFY row_number() OVER (PARTITION BY table_name ORDER BY row_key, path) <= $n
ORDER BY table_name, row_key, path
"""

# Which side holds no value for a kind: a row only in old has no new value, and so on.
_ABSENT = {"removed": "new", "added": "old"}
# A duplicated key's values are its row counts, NULL on a side holding it at most once.
_AT_MOST_ONCE = "duplicate"


@dataclass(frozen=True)
class DataValue:
    """One side of a stored difference, as text for display (never parsed as markup)."""

    text: str  # the JSON text as stored (cut), "null", or a note such as "(absent)"
    cut: bool = False  # longer than shown
    note: bool = False  # `text` says why there is no value: the row is not on this side, ...


@dataclass(frozen=True)
class DataDifference:
    row_key: str
    path: str
    kind: str
    column: str | None
    old: DataValue
    new: DataValue


@dataclass(frozen=True)
class DataColumn:
    name: str
    changed_rows: int


@dataclass(frozen=True)
class DataTable:
    """One card: a table's figures as `shadow_data_tables` gives them."""

    anchor: str
    run_id: str
    name: str
    old_table: str
    new_table: str
    keys: list[str]
    old_url: str | None
    new_url: str | None
    started_at: datetime | None
    old_rows: int
    new_rows: int
    missing_rows: int  # only in old
    extra_rows: int  # only in new
    changed_rows: int
    duplicate_keys: int
    in_flight: int
    differing_rows: int
    rows_dropped: int  # differing rows whose differences were not stored
    rows_read: int
    rows_read_old: int
    rows_read_new: int
    segments_checked: int
    segments_read: int
    bisect: bool
    only_old: list[str]  # columns not compared
    only_new: list[str]
    elapsed_s: float | None
    columns: list[DataColumn]
    differences: list[DataDifference]  # the first DIFFERENCES_PER_TABLE stored
    stored_differences: int  # stored differences in all

    @property
    def renamed(self) -> bool:
        return self.old_table != self.new_table

    @property
    def hidden_differences(self) -> int:
        """Stored differences beyond those shown."""
        return self.stored_differences - len(self.differences)


@dataclass(frozen=True)
class DataSection:
    tables: list[DataTable]  # those that differ first, then by name
    tables_total: int  # in scope (more than shown past MAX_TABLES)
    tables_differing: int

    @property
    def not_shown(self) -> int:
        return self.tables_total - len(self.tables)


def _names(text: str | None) -> list[str]:
    """A JSON list of column names as stored (None: none)."""
    if not text:
        return []
    value = json.loads(text)
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _value(r: dict[str, Any], side: str) -> DataValue:
    text = r[f"{side}_value"]
    if _ABSENT.get(r["kind"]) == side:
        return DataValue("(absent)", note=True)
    if text is None and r["kind"] == _AT_MOST_ONCE:
        return DataValue("at most 1", note=True)
    if text is None:  # a NULL in the database is stored as no value
        return DataValue("null")
    return DataValue(str(text), cut=bool(r[f"{side}_cut"]))


def load_data(con: duckdb.DuckDBPyConnection, run_id: str | None) -> DataSection | None:
    """The Data section of the scope (None: no table diff in it)."""
    found = rows(con, TABLES, {"run": run_id, "n": MAX_TABLES})
    if not found:
        return None
    params = {"run": run_id, "tables": [t["table_name"] for t in found]}
    columns: dict[str, list[DataColumn]] = {}
    for c in rows(con, COLUMNS, params):
        columns.setdefault(c["table_name"], []).append(
            DataColumn(c["column_name"], int(c["changed_rows"] or 0))
        )
    differences: dict[str, list[DataDifference]] = {}
    stored: dict[str, int] = {}
    sample = {**params, "n": DIFFERENCES_PER_TABLE, "cap": VALUE_CHARS}
    for d in rows(con, DIFFERENCES, sample):
        name = d["table_name"]
        stored[name] = int(d["stored"])
        differences.setdefault(name, []).append(
            DataDifference(
                row_key=d["row_key"], path=d["path"], kind=d["kind"], column=d["column_name"],
                old=_value(d, "old"), new=_value(d, "new"),
            )
        )  # fmt: skip
    tables = []
    for i, t in enumerate(found):
        name = t["table_name"]
        tables.append(
            DataTable(
                anchor=f"data-{i}", run_id=t["run_id"], name=name,
                old_table=t["old_table"] or name, new_table=t["new_table"] or name,
                keys=_names(t["key_columns"]), old_url=t["old_url"], new_url=t["new_url"],
                started_at=t["started_at"],
                old_rows=_int(t, "old_rows"), new_rows=_int(t, "new_rows"),
                missing_rows=_int(t, "missing_rows"), extra_rows=_int(t, "extra_rows"),
                changed_rows=_int(t, "changed_rows"), duplicate_keys=_int(t, "duplicate_keys"),
                in_flight=_int(t, "in_flight"), differing_rows=_int(t, "differing_rows"),
                rows_dropped=_int(t, "rows_dropped"), rows_read=_int(t, "rows_read"),
                rows_read_old=_int(t, "rows_read_old"), rows_read_new=_int(t, "rows_read_new"),
                segments_checked=_int(t, "segments_checked"),
                segments_read=_int(t, "segments_read"), bisect=bool(t["bisect"]),
                only_old=_names(t["only_old"]), only_new=_names(t["only_new"]),
                elapsed_s=t["elapsed_s"], columns=columns.get(name, []),
                differences=differences.get(name, []), stored_differences=stored.get(name, 0),
            )
        )  # fmt: skip
    first = found[0]
    return DataSection(tables, int(first["tables_total"]), int(first["tables_differing"]))


def _int(row: dict[str, Any], name: str) -> int:
    return int(row[name] or 0)


__all__ = [
    "DIFFERENCES_PER_TABLE",
    "MAX_TABLES",
    "VALUE_CHARS",
    "DataColumn",
    "DataDifference",
    "DataSection",
    "DataTable",
    "DataValue",
    "load_data",
]
