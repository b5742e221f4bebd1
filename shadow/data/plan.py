"""From a `[data.tables.NAME]` section and the two databases to what each side reads.

Finds the columns both tables hold (after renames, ignores and computed columns),
the kind each is compared as, and refuses, in one line and before anything is
read, what cannot be compared: a missing key column, key types that differ,
column types that cannot be converted into each other, a `since` column that is
not a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from shadow.config.data import DataTable
from shadow.data.kinds import Kind, compatible
from shadow.data.side import Column, Shape, Side, quote_ident
from shadow.errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """Both sides' shapes, and the columns found on one side only (not compared)."""

    table: DataTable
    old: Shape
    new: Shape
    only_old: tuple[str, ...]
    only_new: tuple[str, ...]

    @property
    def integer_key(self) -> bool:
        return len(self.old.keys) == 1 and self.old.keys[0].kind == "integer"


def _pick(new: Kind, old: Kind) -> Kind:
    # the migrated schema says what a value is, unless it only says "text"
    return new if new != "text" else old


def build_plan(table: DataTable, old: Side, new: Side, *, cutoff: datetime | None = None) -> Plan:
    """The plan for one table (ConfigError / DatabaseError: it cannot be compared)."""
    old_table, new_table = quote_ident(table.old), quote_ident(table.new)
    old_names, new_names = old.names(old_table), new.names(new_table)
    old_set, new_set = set(old_names), set(new_names)
    if not table.key:
        raise ConfigError(f"table {table.name}: no key column (--key COLUMN[,COLUMN])")
    pairs: list[tuple[str, str, str]] = []  # (name, old sql, new sql)
    for k in table.key:
        name = table.new_name(k)
        if k not in old_set and k not in table.old_sql:
            raise ConfigError(f"table {table.name}: key column {k!r} is not in old {table.old} "
                              f"(columns: {', '.join(old_names[:20])})")  # fmt: skip
        if name not in new_set and name not in table.new_sql:
            raise ConfigError(f"table {table.name}: key column {name!r} is not in new {table.new} "
                              f"(columns: {', '.join(new_names[:20])})")  # fmt: skip
        pairs.append((name, _sql(k, table.old_sql), _sql(name, table.new_sql)))
    keyset = {table.new_name(k) for k in table.key}
    ignored = table.ignore
    only_old: list[str] = []
    wanted = table.columns or tuple(old_names)
    for c in table.columns:
        if c not in old_set and table.new_name(c) not in table.old_sql:
            raise ConfigError(f"table {table.name}: column {c!r} is not in old {table.old}")
    matched_new: set[str] = set(keyset)
    for c in wanted:
        name = table.new_name(c)
        if c in table.key or name in keyset or c in ignored or name in ignored:
            continue
        if name in table.old_sql:
            continue  # the computed column of that name stands for it
        if name in new_set or name in table.new_sql:
            pairs.append((name, quote_ident(c), _sql(name, table.new_sql)))
            matched_new.add(name)
        else:
            only_old.append(c)
    for name, expr in table.old_sql.items():
        if name in keyset or name in ignored:
            continue
        if name not in new_set and name not in table.new_sql:
            raise ConfigError(f"table {table.name}: old_sql {name!r} names no column of new "
                              f"{table.new}")  # fmt: skip
        pairs.append((name, f"({expr})", _sql(name, table.new_sql)))
        matched_new.add(name)
    for name, expr in table.new_sql.items():
        if name in matched_new or name in ignored:
            continue
        old_name = next((o for o, n in table.rename.items() if n == name), name)
        if old_name not in old_set:
            raise ConfigError(f"table {table.name}: new_sql {name!r} names no column of old "
                              f"{table.old}")  # fmt: skip
        pairs.append((name, quote_ident(old_name), f"({expr})"))
        matched_new.add(name)
    # a new column with an old counterpart left out by `columns` is not "only in new"
    counterparts = {table.new_name(c) for c in old_names}
    only_new = [
        n for n in new_names if n not in matched_new and n not in ignored and n not in counterparts
    ]
    since_pair: tuple[str, str, str] | None = None
    if table.since:
        s_new = table.new_name(table.since)
        if table.since not in old_set or s_new not in new_set:
            raise ConfigError(
                f"table {table.name}: --since column {table.since!r} must be in both tables"
            )
        since_pair = (s_new, quote_ident(table.since), quote_ident(s_new))
    exprs = pairs + ([since_pair] if since_pair else [])
    old_kinds = old.describe(old_table, [o for _, o, _ in exprs])
    new_kinds = new.describe(new_table, [n for _, _, n in exprs])
    old_cols: list[Column] = []
    new_cols: list[Column] = []
    for i, (name, o_sql, n_sql) in enumerate(pairs):
        ok, nk = old_kinds[i], new_kinds[i]
        cast = table.cast.get(name)
        kind: Kind = cast if cast else _pick(nk, ok)  # type: ignore[assignment]
        is_key = i < len(table.key)
        if is_key:
            kind = ok
            # keys are compared and ranged as they are stored: the same type on both sides
            if ok != nk or ok not in ("integer", "text") or cast:
                raise ConfigError(
                    f"table {table.name}: key {name!r} is {ok} in old and {nk} in new: "
                    "incompatible types (keys must be integers or text on both sides)"
                )
        for side_kind, which in ((ok, "old"), (nk, "new")):
            if not compatible(side_kind, kind):
                raise ConfigError(
                    f"table {table.name}: column {name!r} is {ok} in old and {nk} in new: "
                    f"incompatible types ({which} cannot be read as {kind}; "
                    f"set cast.{name} in [data.tables.{table.name}])"
                )
        old_cols.append(Column(name, o_sql, kind, ok))
        new_cols.append(Column(name, n_sql, kind, nk))
    since_old = since_new = None
    if since_pair:
        ok, nk = old_kinds[-1], new_kinds[-1]
        for k, which, side in ((ok, "old", old), (nk, "new", new)):
            # SQLite reads a time held as text itself (julianday); PostgreSQL needs a type
            if k not in ("timestamp", "date", "integer", "number") and not (
                k == "text" and isinstance(side, _sqlite_type())
            ):
                raise ConfigError(f"table {table.name}: --since column {table.since!r} is {k} "
                                  f"in {which}: it must be a timestamp")  # fmt: skip
        since_old = Column(since_pair[0], since_pair[1], "timestamp", ok)
        since_new = Column(since_pair[0], since_pair[2], "timestamp", nk)
    width = len(table.key)
    old_shape = Shape(old_table, tuple(old_cols[:width]), tuple(old_cols[width:]))
    new_shape = Shape(new_table, tuple(new_cols[:width]), tuple(new_cols[width:]))
    if since_old and since_new and cutoff is not None:
        old_shape = replace(old_shape, since=since_old, cutoff=cutoff)
        new_shape = replace(new_shape, since=since_new, cutoff=cutoff)
    return Plan(table, old_shape, new_shape, tuple(only_old), tuple(only_new))


def _sql(name: str, computed: Mapping[str, str]) -> str:
    return f"({computed[name]})" if name in computed else quote_ident(name)


def _sqlite_type() -> type:
    from shadow.data.sqlite import SqliteSide

    return SqliteSide


__all__ = ["Plan", "build_plan"]
