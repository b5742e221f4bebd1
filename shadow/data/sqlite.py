"""A SQLite side of a table diff (the standard library's sqlite3, opened read-only).

SQLite has no hash function in SQL, so the checksum is an aggregate function
registered on the connection: SQLite calls it row by row inside its own scan, it
builds the same canonical text as `shadow.data.kinds.canonical` (the text
PostgreSQL builds in SQL) and sums the first 60 bits of its md5. Rows are only
returned to us for segments that differ.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC
from hashlib import md5
from typing import Any
from urllib.request import pathname2url

from shadow.data.dburl import DatabaseUrl
from shadow.data.kinds import Kind, canonical_for, row_text, sqlite_kind
from shadow.data.side import (
    Column,
    Key,
    Placeholders,
    Range,
    Shape,
    SqlSide,
    Sums,
    bucket_sql,
    excluded_sql,
    plain_names,
    range_sql,
)
from shadow.errors import DatabaseError

BATCH_ROWS = 8192
# text keys in byte order whatever the column's collation (NOCASE...), as PostgreSQL's "C"
BINARY = " COLLATE BINARY"


def _text(raw: bytes) -> str | bytes:
    """SQLite TEXT as read: UTF-8, or the bytes themselves (legacy files hold anything)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _decoded(text_of: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """A canonical function for a column whose TEXT values arrive as bytes (see `prepare`)."""

    def canonical(v: Any) -> str | None:
        if type(v) is bytes:
            v = _text(v)
        return text_of(v)

    return canonical


class _Checksum:
    texts: tuple[Callable[[Any], str | None], ...] = ()

    def __init__(self) -> None:
        self.total = 0

    def step(self, *values: Any) -> None:
        text = row_text([f(v) for f, v in zip(self.texts, values, strict=True)])
        # the first 60 bits of md5, as PostgreSQL's ('x' || substr(md5(r), 1, 15))::bit(60)
        self.total += int(md5(text.encode(), usedforsecurity=False).hexdigest()[:15], 16)

    def finalize(self) -> str:
        return str(self.total)  # text: the sum outgrows SQLite's 64-bit integers


class SqliteSide(SqlSide):
    """One SQLite file (see `shadow.data.side.Side`)."""

    numbered = False
    collate = BINARY
    false = "0"

    def __init__(self, url: DatabaseUrl, label: str, timeout: float = 30.0) -> None:
        self.label = label
        self.shown = url.shown
        self.rows_read = 0
        self._shape: Shape | None = None
        self._declared: dict[str, str] = {}
        path = url.path or ""
        if not os.path.isfile(path):
            raise DatabaseError(f"{label} database {self.shown}: no such file")
        try:
            # read-only: a diff never writes to the databases it compares
            uri = "file:" + pathname2url(os.path.abspath(path)) + "?mode=ro"
            self._con = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
            self._con.text_factory = _text
            self._con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise DatabaseError(f"{label} database {self.shown}: {exc}") from None

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._con.execute(sql, tuple(params)).fetchall())
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.label} database {self.shown}: {exc}") from None

    def _text_affinity(self, key: Column) -> bool:
        if not (key.sql.startswith('"') and key.sql.endswith('"')):
            return False  # an expression: its result may be anything
        name = key.sql[1:-1].replace('""', '"')
        declared = self._declared.get(name, "").upper()
        return any(t in declared for t in ("CHAR", "CLOB", "TEXT")) and "INT" not in declared

    def names(self, table: str) -> list[str]:
        """The column names of `table` (DatabaseError: no such table)."""
        try:
            cur = self._con.execute(f"SELECT * FROM {table} LIMIT 0")
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.label} database {self.shown}: {exc}") from None
        return [str(d[0]) for d in cur.description]

    def describe(self, table: str, exprs: Sequence[str]) -> list[Kind]:
        """Kinds of `exprs` over `table` from the declared types (text when undeclared)."""
        try:
            cur = self._con.execute(f"SELECT {', '.join(exprs)} FROM {table} LIMIT 0")
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.label} database {self.shown}: {exc}") from None
        names = [d[0] for d in cur.description]
        bare = table.split(".")[-1].strip('"').replace('""', '"')
        declared = {
            str(r[1]): str(r[2] or "")
            for r in self._run("SELECT * FROM pragma_table_info(?)", (bare,))
        }
        self._declared = declared
        kinds: list[Kind] = []
        for expr, name in zip(exprs, names, strict=True):
            quoted = expr.startswith('"') and expr.endswith('"')
            kinds.append(sqlite_kind(declared.get(name, "")) if quoted else "text")
        return kinds

    def prepare(self, shape: Shape) -> None:
        # A text key in a column without TEXT affinity may hold numbers: read it as text
        # (PostgreSQL's text key holds '1' where SQLite holds 1).
        keys = tuple(
            replace(k, sql=f"CAST({k.sql} AS TEXT)")
            if k.kind == "text" and not self._text_affinity(k) else k
            for k in shape.keys
        )  # fmt: skip
        shape = replace(shape, keys=keys)
        self._shape = shape
        # TEXT reaches a Python function decoded, and invalid UTF-8 would fail the whole
        # query: hand it over as bytes, decoded (or not) as `_text` does for reads
        texts = tuple(
            canonical_for(c.kind) if c.kind == "bytes" else _decoded(canonical_for(c.kind))
            for c in shape.all
        )
        self._args = ", ".join(
            c.sql
            if c.kind == "bytes"
            else f"CASE WHEN typeof({c.sql}) = 'text' THEN CAST({c.sql} AS BLOB) ELSE {c.sql} END"
            for c in shape.all
        )
        aggregate = type("ShadowChecksum", (_Checksum,), {"texts": texts})
        self._con.create_aggregate("shadow_checksum", len(texts), aggregate)

    def _later(self) -> str:
        s = self.shape
        assert s.since is not None and s.cutoff is not None
        c = f"({s.since.sql})"
        epoch = repr(s.cutoff.timestamp())
        utc = s.cutoff.astimezone(UTC)
        stamp = f"{utc:%Y-%m-%d %H:%M:%S}.{utc.microsecond // 1000:03d}"  # julianday's form
        return (
            f"(CASE WHEN typeof({c}) IN ('integer', 'real') THEN {c} > {epoch} "
            f"ELSE julianday({c}) > julianday('{stamp}') END)"
        )

    def segments(self, rng: Range, cuts: Sequence[Key], checksum: bool) -> list[Sums]:
        s = self.shape
        p = Placeholders(numbered=False)
        bucket = bucket_sql(cuts, s.keys, BINARY, p)
        where = range_sql(rng, s.keys, BINARY, p)
        total = f"shadow_checksum({self._args})" if checksum else "'0'"
        sql = (
            # grouped by position: a column of the table may be called like any alias
            f"SELECT {bucket}, count(*), {total} FROM {s.table} "
            f"WHERE {where} AND {self._settled(p)} GROUP BY 1"
        )
        out = [Sums() for _ in range(len(cuts) + 1)]
        for b, n, total_text in self._run(sql, p.values):
            out[int(b)] = Sums(int(n), int(total_text or 0))
        return out

    def unique_key(self) -> bool:
        """Whether the key is the rowid alias, the primary key or has a unique index."""
        names = plain_names(self.shape.keys)
        if names is None:
            return False
        bare = self.shape.table.split(".")[-1][1:-1].replace('""', '"')
        info = self._run("SELECT name, type, pk FROM pragma_table_info(?)", (bare,))
        pk = sorted(str(r[0]) for r in info if r[2])
        if pk == sorted(names):
            return True  # a primary key (the rowid alias for INTEGER PRIMARY KEY) is unique
        for index in self._run('SELECT name, "unique", partial FROM pragma_index_list(?)', (bare,)):
            if index[1] and not index[2]:
                cols = self._run("SELECT name FROM pragma_index_info(?)", (index[0],))
                if sorted(str(c[0]) for c in cols) == sorted(names):
                    return True
        return False

    def fetch(self, rng: Range) -> Iterator[tuple[Key, tuple[Any, ...], bool]]:
        s = self.shape
        p = Placeholders(numbered=False)
        flight = f"coalesce({self._later()}, 0)" if s.since and s.cutoff else "0"
        cols = ", ".join(c.sql for c in s.all)
        where = range_sql(rng, s.keys, BINARY, p) + excluded_sql(s.keys, s.excluded, p)
        sql = f"SELECT {cols}, {flight} FROM {s.table} WHERE {where}"
        width = len(s.keys)
        try:
            cur = self._con.execute(sql, tuple(p.values))
            while batch := cur.fetchmany(BATCH_ROWS):
                self.rows_read += len(batch)
                for row in batch:
                    yield tuple(row[:width]), tuple(row[width:-1]), bool(row[-1])
        except sqlite3.Error as exc:
            raise DatabaseError(f"{self.label} database {self.shown}: {exc}") from None

    def close(self) -> None:
        self._con.close()


__all__ = ["SqliteSide"]
