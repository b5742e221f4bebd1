"""A PostgreSQL side of a table diff, through the ADBC driver (rows arrive as Arrow).

Checksums are computed by PostgreSQL: each row's canonical text (`canonical_sql`,
the same text `shadow.data.kinds.canonical` builds in Python) is hashed with md5,
and a segment's checksum is the sum of the first 60 bits of its rows' hashes, so
only counts and sums travel until a segment is small enough to read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from shadow.data.dburl import DatabaseUrl
from shadow.data.kinds import Kind, pg_kind
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

COLLATE = ' COLLATE "C"'  # byte order, as SQLite compares text: both sides agree on ranges
_TS = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
_TEXT_TYPES = ("text", "varchar", "bpchar", "name", "character varying", "character")


def canonical_sql(column: Column, pg_type: str) -> str:
    """PostgreSQL text of a column's value, equal to `kinds.canonical` where it can be.

    Only when the column's type is of the kind it is compared as; otherwise its own
    text (different values, different text: a checksum never hides a difference).
    """
    c = f"({column.sql})"
    t = pg_type.lower()
    if column.kind == column.actual:
        if column.kind == "number":
            return f"{c}::float8::text"
        if column.kind == "decimal":
            return f"trim_scale({c})::text"
        if column.kind == "boolean":  # NULL stays NULL
            return f"CASE WHEN {c} THEN 'true' WHEN NOT {c} THEN 'false' END"
        # to_char gives NULL for infinity and drops the era: those keep their own text
        # (as they are read: `fetch_sql` reads times as text)
        if column.kind == "timestamp":
            zone = " AT TIME ZONE 'UTC'" if t == "timestamptz" else ""
            return (
                f"CASE WHEN isfinite({c}) AND {c} >= '0001-01-01' AND {c} < '10000-01-01' "
                f"THEN to_char({c}{zone}, '{_TS}') ELSE {c}::text END"
            )
        if column.kind == "date":
            return (
                f"CASE WHEN isfinite({c}) AND {c} >= DATE '0001-01-01' "
                f"AND {c} < DATE '10000-01-01' THEN to_char({c}, 'YYYY-MM-DD') ELSE {c}::text END"
            )
        if column.kind == "json" and t == "jsonb":  # json may hold what jsonb refuses (\\u0000)
            return f"{c}::jsonb::text"
        if column.kind == "bytes":
            return f"{c}::text"  # \\x0102 (bytea_output hex), as kinds.canonical writes bytes
    return f"{c}::text"


def fetch_sql(column: Column) -> str:
    """What a read selects of a column: text where Python would not read it as
    PostgreSQL prints it (arrays, char(n), intervals... compared as text; times, whose
    infinity and BC values ADBC cannot read)."""
    if column.kind == "text" or (
        column.kind in ("timestamp", "date") and column.actual in ("timestamp", "date")
    ):
        return f"({column.sql})::text"
    return column.sql


def _failed(label: str, shown: str, exc: BaseException) -> BaseException:
    """The error to raise for a driver error: Ctrl-C cancels the query, and stays Ctrl-C."""
    text = _one_line(exc)
    if "canceling statement due to user request" in text:
        return KeyboardInterrupt()
    return DatabaseError(f"{label} database {shown}: {text}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    # ADBC prefixes its own status: keep PostgreSQL's message
    for marker in ("ERROR: ", "FATAL: "):
        if marker in first:
            first = first.split(marker, 1)[1]
    return " ".join(first.split())[:300]


class PostgresSide(SqlSide):
    """One PostgreSQL database (see `shadow.data.side.Side`)."""

    numbered = True
    collate = COLLATE
    false = "false"

    def __init__(self, url: DatabaseUrl, label: str, timeout: float = 30.0) -> None:
        self.label = label
        self.shown = url.shown
        self.rows_read = 0
        self._types: list[str] = []
        self._shape: Shape | None = None
        try:
            import adbc_driver_postgresql.dbapi as pg
        except ImportError:  # pragma: no cover - a dependency of the package
            raise DatabaseError("adbc-driver-postgresql is not installed") from None
        raw = url.raw
        if "connect_timeout=" not in raw:  # libpq waits forever for a host that never answers
            raw += ("&" if "?" in raw else "?") + f"connect_timeout={max(1, int(timeout))}"
        try:
            self._con = pg.connect(raw, autocommit=True)
            cur = self._con.cursor()
            # UTC and shortest exact floats: the canonical texts depend on both
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute("SET extra_float_digits = 1")
            cur.execute("SET bytea_output = 'hex'")
            cur.execute("SET DateStyle = 'ISO, YMD'")
            cur.execute("SET IntervalStyle = 'postgres'")
            cur.execute(f"SET statement_timeout = {int(timeout * 1000) * 20}")
            cur.execute("SET default_transaction_read_only = on")
            cur.close()
        except Exception as exc:  # the driver's errors have no common base worth naming
            raise DatabaseError(f"{label} database {self.shown}: {_one_line(exc)}") from None

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._con.cursor()
        try:
            cur.execute(sql, parameters=tuple(params) if params else None)
            return list(cur.fetchall())
        except Exception as exc:
            raise _failed(self.label, self.shown, exc) from None
        finally:
            cur.close()

    def names(self, table: str) -> list[str]:
        """The column names of `table` (DatabaseError: no such table)."""
        cur = self._con.cursor()
        try:
            cur.execute(f"SELECT * FROM {table} LIMIT 0")
            return list(cur.fetch_arrow_table().schema.names)
        except Exception as exc:
            raise _failed(self.label, self.shown, exc) from None
        finally:
            cur.close()

    def describe(self, table: str, exprs: Sequence[str]) -> list[Kind]:
        """The kinds of `exprs` over `table` (DatabaseError: no such table or column)."""
        cur = self._con.cursor()
        try:
            cur.execute(f"SELECT {', '.join(exprs)} FROM {table} LIMIT 0")
            schema = cur.fetch_arrow_table().schema
        except Exception as exc:
            raise _failed(self.label, self.shown, exc) from None
        finally:
            cur.close()
        types = []
        for f in schema:
            meta = f.metadata or {}
            types.append(meta.get(b"POSTGRESQL:type", b"text").decode())
        self._types = types
        return [pg_kind(t) for t in types]

    def prepare(self, shape: Shape) -> None:
        """Remember what to read; `describe` must have been given the same columns."""
        types = self._types or ["text"] * len(shape.all)
        # a text key of another type (uuid, citext, ...) is ranged as its text, in bytes
        keys = tuple(
            replace(k, sql=f"({k.sql})::text")
            if k.kind == "text" and t.lower() not in _TEXT_TYPES else k
            for k, t in zip(shape.keys, types, strict=False)
        )  # fmt: skip
        shape = replace(shape, keys=keys)
        self._shape = shape
        parts = [canonical_sql(c, t) for c, t in zip(shape.all, types, strict=False)]
        # PostgreSQL's own record text: quoted and escaped in C (kinds.row_text mirrors it)
        self._row = f"ROW({', '.join(parts)})::text"

    def _later(self) -> str:
        since, cutoff = self.shape.since, self.shape.cutoff
        assert since is not None and cutoff is not None
        if since.actual == "integer" or since.actual == "number":
            return f"({since.sql}) > {cutoff.timestamp()!r}"
        return f"({since.sql}) > TIMESTAMPTZ '{cutoff.isoformat()}'"

    def segments(self, rng: Range, cuts: Sequence[Key], checksum: bool) -> list[Sums]:
        """Count (and checksum) of each of len(cuts)+1 sub-segments of `rng`."""
        s = self.shape
        p = Placeholders(numbered=True)
        bucket = bucket_sql(cuts, s.keys, COLLATE, p)
        where = range_sql(rng, s.keys, COLLATE, p)
        total = "sum(('x' || substr(md5(r), 1, 15))::bit(60)::bigint)::text" if checksum else "'0'"
        sql = (
            f"SELECT b, count(*), {total} FROM (SELECT {bucket} AS b, "
            f"{self._row if checksum else 'NULL'} AS r FROM {s.table} "
            f"WHERE {where} AND {self._settled(p)}) x GROUP BY b"
        )
        out = [Sums() for _ in range(len(cuts) + 1)]
        for b, n, total_text in self._run(sql, p.values):
            out[int(b)] = Sums(int(n), int(total_text or 0))
        return out

    def unique_key(self) -> bool:
        """Whether a unique index (or primary key) on exactly the key columns exists."""
        names = plain_names(self.shape.keys)
        if names is None:
            return False
        p = Placeholders(numbered=True)
        table, joined, sep = p(self.shape.table), p("\x1f".join(names)), p("\x1f")
        sql = (
            f"SELECT count(*) FROM pg_index i WHERE i.indrelid = to_regclass({table}) "
            "AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
            "AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a "
            "WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) "
            f"= (SELECT array_agg(x ORDER BY x) FROM unnest(string_to_array({joined}, {sep})) x)"
        )
        found = self._run(sql, p.values)
        return bool(found and found[0][0])

    def fetch(self, rng: Range) -> Iterator[tuple[Key, tuple[Any, ...], bool]]:
        """The rows of `rng` (settled or not: the caller drops keys in flight)."""
        s = self.shape
        p = Placeholders(numbered=True)
        flight = (
            f"coalesce({self._later()}, false)"
            if s.since is not None and s.cutoff is not None
            else "false"
        )
        cols = ", ".join(fetch_sql(c) for c in s.all)
        where = range_sql(rng, s.keys, COLLATE, p) + excluded_sql(s.keys, s.excluded, p)
        sql = f"SELECT {cols}, {flight} FROM {s.table} WHERE {where}"
        width = len(s.keys)
        cur = self._con.cursor()
        try:
            cur.execute(sql, parameters=tuple(p.values) if p.values else None)
            for batch in cur.fetch_record_batch():
                columns = [col.to_pylist() for col in batch.columns]
                self.rows_read += batch.num_rows
                for row in zip(*columns, strict=True):
                    yield tuple(row[:width]), tuple(row[width:-1]), bool(row[-1])
        except Exception as exc:
            raise _failed(self.label, self.shown, exc) from None
        finally:
            cur.close()

    def close(self) -> None:
        try:
            self._con.close()
        except Exception:  # closing a broken connection must not mask the first error
            pass


__all__ = ["COLLATE", "PostgresSide", "canonical_sql", "fetch_sql"]
