"""`[data.tables.NAME]`: how a table of the legacy database maps to the migrated one.

    [data.tables.analyses]
    old = "analyses"                  # table in the old database (default: NAME)
    new = "analysis"                  # table in the new database (default: old)
    key = ["id"]                      # key column(s), old names
    rename = { dataset_id = "dataset" }   # old column -> new column
    ignore = ["updated_at"]           # columns not compared (either name)
    cast = { created_at = "timestamp", metrics = "json" }   # compared as (new names)
    old_sql = { full_name = "first_name || ' ' || last_name" }  # computed, old side
    new_sql = {}                      # computed, new side (each database's own SQL)
    compare = { masks = [...], normalize = {...}, tolerance = 0.01 }  # comparator rules
    since = "updated_at"              # with min_age: rows changed since are in flight
    min_age = 60                      # seconds

Column names in `compare` paths are the new names: `$.created_at`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from comparators import Rules
from comparators.errors import RuleError
from shadow.errors import ConfigError

KINDS = (
    "text", "integer", "number", "decimal", "boolean", "timestamp", "date", "json", "bytes",
)  # fmt: skip
MAX_AGE = 100 * 365 * 86400.0  # seconds: a --min-age past a century is a typo
_KEYS = {
    "old", "new", "key", "rename", "ignore", "cast", "old_sql", "new_sql", "compare",
    "since", "min_age", "columns",
}  # fmt: skip


@dataclass(frozen=True)
class DataTable:
    """One `[data.tables.NAME]` section (or the defaults for a table named on the command line)."""

    name: str
    old: str
    new: str
    key: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    ignore: frozenset[str] = frozenset()
    cast: Mapping[str, str] = field(default_factory=dict)
    old_sql: Mapping[str, str] = field(default_factory=dict)
    new_sql: Mapping[str, str] = field(default_factory=dict)
    compare: Mapping[str, Any] = field(default_factory=dict)
    columns: tuple[str, ...] = ()  # only these (old names); empty: every shared column
    since: str | None = None
    min_age: float | None = None

    def rules(self, base: Rules) -> Rules:
        """The comparator rules for this table's rows (the config's [compare] below)."""
        return base.merged(self.compare) if self.compare else base

    def new_name(self, old: str) -> str:
        return self.rename.get(old, old)


def _strings(value: Any, where: str, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: '{what}' must be a list of column names")
    return tuple(value)


def _mapping(value: Any, where: str, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(f"{where}: '{what}' must be a table of strings")
    return dict(value)


def parse_data_table(name: str, raw: Mapping[str, Any], where: str, base: Rules) -> DataTable:
    """One section, checked; ConfigError names the bad key."""
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    for k in ("old", "new", "since"):
        if k in raw and (not isinstance(raw[k], str) or not raw[k]):
            raise ConfigError(f"{where}: '{k}' must be a non-empty string")
    cast = _mapping(raw.get("cast", {}), where, "cast")
    for column, kind in cast.items():
        if kind not in KINDS:
            raise ConfigError(
                f"{where}: cast {column} = {kind!r}: not a kind (one of {', '.join(KINDS)})"
            )
    min_age = raw.get("min_age")
    if min_age is not None and (
        isinstance(min_age, bool)
        or not isinstance(min_age, int | float)
        or not 0 <= min_age <= MAX_AGE
    ):
        raise ConfigError(f"{where}: 'min_age' must be a number of seconds, 0 to {MAX_AGE:.0f}")
    compare = raw.get("compare", {})
    if not isinstance(compare, dict):
        raise ConfigError(f"{where}: 'compare' must be a table")
    try:
        base.merged(compare)
    except RuleError as exc:
        raise ConfigError(f"{where}: compare: {exc}") from None
    old = str(raw.get("old", name))
    return DataTable(
        name=name,
        old=old,
        new=str(raw.get("new", old)),
        key=_strings(raw.get("key", []), where, "key"),
        rename=_mapping(raw.get("rename", {}), where, "rename"),
        ignore=frozenset(_strings(raw.get("ignore", []), where, "ignore")),
        cast=cast,
        old_sql=_mapping(raw.get("old_sql", {}), where, "old_sql"),
        new_sql=_mapping(raw.get("new_sql", {}), where, "new_sql"),
        compare=compare,
        columns=_strings(raw.get("columns", []), where, "columns"),
        since=raw.get("since"),
        min_age=float(min_age) if min_age is not None else None,
    )


def parse_data(raw: Any, source: str, base: Rules) -> dict[str, DataTable]:
    """The `[data]` section: `[data.tables.NAME]` tables."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"tables"}:
        raise ConfigError(f"{source}: [data] holds only [data.tables.NAME] sections")
    tables = raw.get("tables", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: [data.tables] must hold [data.tables.NAME] sections")
    out = {}
    for name, section in tables.items():
        where = f"{source}: [data.tables.{name}]"
        if not isinstance(section, dict):
            raise ConfigError(f"{where} must be a table")
        out[name] = parse_data_table(name, section, where, base)
    return out


__all__ = ["KINDS", "MAX_AGE", "DataTable", "parse_data", "parse_data_table"]
