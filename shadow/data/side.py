"""One database of a table diff, and the SQL both engines share.

A `Side` answers the few questions the bisection asks, always inside the
database: how many rows and what checksum per key segment, where to split a
range, which keys repeat, and (only for segments that differ) the rows
themselves. `shadow.data.postgres` and `shadow.data.sqlite` implement it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


__all__ = [
    "Column",
    "Key",
    "Placeholders",
    "Range",
    "Shape",
    "Side",
    "Sums",
    "bucket_sql",
    "excluded_sql",
    "key_sql",
    "plain_names",
    "quote_ident",
    "range_sql",
]
