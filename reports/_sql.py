"""Running the report's SQL: rows as dicts, and the one percentage helper."""

from __future__ import annotations

import re
from typing import Any

import duckdb


def pct(part: int | float, whole: int | float) -> float | None:
    return 100.0 * part / whole if whole else None


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The result as dicts; pass only the parameters the query names."""
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
    cur = con.execute(sql, used)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
