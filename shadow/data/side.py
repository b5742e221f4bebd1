"""One database of a table diff, and the SQL both engines share.

A `Side` answers the few questions the bisection asks, always inside the
database: how many rows and what checksum per key segment, where to split a
range, which keys repeat, and (only for segments that differ) the rows
themselves. `shadow.data.postgres` and `shadow.data.sqlite` implement it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from shadow.data.kinds import Kind

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Column:
    """A compared column on one side: its SQL (a column name or an expression)."""

    name: str  # the name differences use (the new side's)
    sql: str  # quoted column or the config's expression
    kind: Kind  # what it is compared as
    actual: Kind  # what the database holds


@dataclass(frozen=True)
class Shape:
    """What one side reads of its table: key columns first, then compared columns."""

    table: str  # as given (schema.table allowed)
    keys: tuple[Column, ...]
    columns: tuple[Column, ...]
    since: Column | None = None  # the timestamp column of --since
    cutoff: datetime | None = None  # rows whose `since` is later are in flight
    excluded: tuple[Key, ...] = ()  # keys held by several rows: reported, never read

    @property
    def all(self) -> tuple[Column, ...]:
        return self.keys + self.columns


@dataclass(frozen=True)
class Range:
    """Keys in [lo, hi): None is unbounded; `lo`/`hi` are key tuples."""

    lo: Key | None = None
    hi: Key | None = None


@dataclass
class Sums:
    """One segment's figures on one side."""

    count: int = 0
    checksum: int = 0


class Side(Protocol):
    """One database of a table diff (see the module docstring)."""

    label: str  # "old" | "new"
    shown: str  # the URL without secrets
    rows_read: int  # rows fetched so far (what travelled)

    def names(self, table: str) -> list[str]: ...

    def describe(self, table: str, exprs: Sequence[str]) -> list[Kind]: ...

    def prepare(self, shape: Shape) -> None: ...

    def bounds(self) -> tuple[Any, Any, int]: ...

    def segments(self, rng: Range, cuts: Sequence[Key], checksum: bool) -> list[Sums]: ...

    def quantiles(self, rng: Range, count: int, parts: int) -> list[Key]: ...

    def duplicates(self, limit: int) -> tuple[list[tuple[Key, int]], int]: ...

    def unique_key(self) -> bool: ...

    def null_keys(self) -> int: ...

    def in_flight(self) -> int: ...

    def count_keys(self, keys: Sequence[Key]) -> int: ...

    def fetch(self, rng: Range) -> Iterator[tuple[Key, tuple[Any, ...], bool]]: ...

    def close(self) -> None: ...


def plain_names(keys: Sequence[Column]) -> list[str] | None:
    """The key's column names when every key is a plain (quoted) column, else None."""
    out = []
    for k in keys:
        if not (k.sql.startswith('"') and k.sql.endswith('"') and "." not in k.sql):
            return None
        out.append(k.sql[1:-1].replace('""', '"'))
    return out


def quote_ident(name: str) -> str:
    """`name` as a quoted SQL identifier (`schema.table` quoted part by part)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


class Placeholders:
    """Collects parameters and writes their placeholders ($1 ... or ?)."""

    def __init__(self, numbered: bool) -> None:
        self.numbered = numbered
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}" if self.numbered else "?"


def key_sql(keys: Sequence[Column], collate: str) -> str:
    """The key as one comparable SQL value (a row value for a composite key)."""
    parts = [f"{k.sql}{collate if k.kind == 'text' else ''}" for k in keys]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def key_value(key: Key, p: Placeholders) -> str:
    marks = [p(v) for v in key]
    return marks[0] if len(marks) == 1 else "(" + ", ".join(marks) + ")"


def range_sql(rng: Range, keys: Sequence[Column], collate: str, p: Placeholders) -> str:
    """The WHERE condition of a range ('true' when unbounded)."""
    k = key_sql(keys, collate)
    out = []
    if rng.lo is not None:
        out.append(f"{k} >= {key_value(rng.lo, p)}")
    if rng.hi is not None:
        out.append(f"{k} < {key_value(rng.hi, p)}")
    return " AND ".join(out) or "true"


def excluded_sql(
    keys: Sequence[Column], excluded: Sequence[Key], p: Placeholders, negate: bool = True
) -> str:
    """` AND key NOT IN (...)` for the keys left out of every query ('' for none);
    with `negate=False`, ` AND key IN (...)`."""
    if not excluded:
        return ""
    k = key_sql(keys, "")
    op = "NOT IN" if negate else "IN"
    if len(keys) == 1:
        return f" AND {k} {op} ({', '.join(p(key[0]) for key in excluded)})"
    rows = ", ".join("(" + ", ".join(p(v) for v in key) + ")" for key in excluded)
    return f" AND {k} {op} (VALUES {rows})"


def bucket_sql(cuts: Sequence[Key], keys: Sequence[Column], collate: str, p: Placeholders) -> str:
    """Which of len(cuts)+1 sub-segments a row's key falls in (0-based)."""
    if not cuts:
        return "0"
    k = key_sql(keys, collate)
    whens = " ".join(f"WHEN {k} < {key_value(c, p)} THEN {i}" for i, c in enumerate(cuts))
    return f"CASE {whens} ELSE {len(cuts)} END"


class SqlSide:
    """What both engines' sides share: the queries that differ only in their placeholders,
    their text collation and their false. Subclasses give `_run`, `_later` and the rest
    of `Side`."""

    numbered = False  # $1 placeholders (PostgreSQL) or ? (SQLite)
    collate = ""  # the byte-order collation of text keys
    false = "0"
    label = ""
    shown = ""
    rows_read = 0
    _shape: Shape | None = None

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _later(self) -> str:
        """SQL: the row's `since` column is after the cutoff."""
        raise NotImplementedError

    @property
    def shape(self) -> Shape:
        assert self._shape is not None, "prepare() first"
        return self._shape

    def _marks(self) -> Placeholders:
        return Placeholders(numbered=self.numbered)

    def _keyed(self) -> str:
        return " AND ".join(f"{k.sql} IS NOT NULL" for k in self.shape.keys)

    def _settled(self, p: Placeholders) -> str:
        """Rows compared: a key (NULL keys are counted apart), not repeated, not in flight."""
        s = self.shape
        keyed = self._keyed() + excluded_sql(s.keys, s.excluded, p)
        if s.since is None or s.cutoff is None:
            return keyed
        return f"{keyed} AND NOT coalesce({self._later()}, {self.false})"

    def count_keys(self, keys: Sequence[Key]) -> int:
        """Rows (not in flight) held by these keys (the repeated ones left out of the walk)."""
        s = replace(self.shape, excluded=())
        saved, self._shape = self._shape, s
        try:
            p = self._marks()
            where = self._settled(p) + excluded_sql(s.keys, keys, p, negate=False)
            return int(self._run(f"SELECT count(*) FROM {s.table} WHERE {where}", p.values)[0][0])
        finally:
            self._shape = saved

    def in_flight(self) -> int:
        """Rows with a key changed after the cutoff (0 without --since)."""
        s = self.shape
        if s.since is None or s.cutoff is None:
            return 0
        sql = f"SELECT count(*) FROM {s.table} WHERE {self._keyed()} AND {self._later()}"
        return int(self._run(sql)[0][0])

    def null_keys(self) -> int:
        """Rows whose key is (partly) NULL: no key identifies them."""
        s = self.shape
        nulls = " OR ".join(f"{k.sql} IS NULL" for k in s.keys)
        return int(self._run(f"SELECT count(*) FROM {s.table} WHERE {nulls}")[0][0])

    def bounds(self) -> tuple[Any, Any, int]:
        """min, max and count of the (single) key, over settled rows."""
        k = self.shape.keys[0].sql
        p = self._marks()
        settled = self._settled(p)
        row = self._run(
            f"SELECT min({k}), max({k}), count(*) FROM {self.shape.table} WHERE {settled}",
            p.values,
        )[0]
        return row[0], row[1], int(row[2])

    def quantiles(self, rng: Range, count: int, parts: int) -> list[Key]:
        """Keys that cut the settled rows of `rng` into about `parts` equal parts."""
        s = self.shape
        step = max(1, -(-count // parts))
        p = self._marks()
        names = ", ".join(f"k{i}" for i in range(len(s.keys)))
        inner = ", ".join(f"{k.sql} AS k{i}" for i, k in enumerate(s.keys))
        order = ", ".join(f"{k.sql}{self.collate if k.kind == 'text' else ''}" for k in s.keys)
        where = range_sql(rng, s.keys, self.collate, p)
        sql = (
            f"SELECT {names} FROM (SELECT {inner}, row_number() OVER (ORDER BY {order}) AS rn "
            f"FROM {s.table} WHERE {where} AND {self._settled(p)}) x "
            f"WHERE rn > 1 AND (rn - 1) % {step} = 0 ORDER BY rn"
        )
        return [tuple(r) for r in self._run(sql, p.values)]

    def duplicates(self, limit: int) -> tuple[list[tuple[Key, int]], int]:
        """Up to `limit` keys held by more than one settled row, and how many there are."""
        s = self.shape
        keys = ", ".join(k.sql for k in s.keys)
        p = self._marks()
        sql = (
            f"SELECT {keys}, shadow_n, count(*) OVER () FROM (SELECT {keys}, count(*) AS shadow_n "
            f"FROM {s.table} WHERE {self._settled(p)} GROUP BY {keys} HAVING count(*) > 1) x "
            f"ORDER BY {keys} LIMIT {int(limit)}"
        )
        found = self._run(sql, p.values)
        width = len(s.keys)
        total = int(found[0][-1]) if found else 0
        return [(tuple(r[:width]), int(r[width])) for r in found], total


__all__ = [
    "Column",
    "Key",
    "Placeholders",
    "Range",
    "Shape",
    "Side",
    "SqlSide",
    "Sums",
    "bucket_sql",
    "excluded_sql",
    "key_sql",
    "plain_names",
    "quote_ident",
    "range_sql",
]
