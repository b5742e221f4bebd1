"""Comparing the rows of one segment: pair them by key in DuckDB, diff the pairs.

Rows read from each side become (key, canonical text) Arrow tables; DuckDB's full
outer join on the key returns only the pairs whose text differs and the keys on
one side only. Each differing pair is compared as two JSON objects (column ->
converted value) by the comparators, with the table's rules, so masks,
normalizers and tolerances apply to rows as they do to API bodies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

from comparators import Payload, Rules, compare
from shadow.data.kinds import canonical_for, convert, row_text
from shadow.data.side import Column, Key

_JSON = (("content-type", "application/json"),)


@dataclass(frozen=True)
class RowDifference:
    """One difference of one row: `path` is `$row[id=42].column` or `$row[id=42]`."""

    key: Key
    path: str
    kind: str  # value_changed | type_changed | removed (only old) | added (only new) | duplicate
    column: str | None
    old: Any
    new: Any


def key_label(names: Sequence[str], key: Key) -> str:
    """`id=42`, `code="ab"`, `a=1,b="x"`: the key as shown in paths."""
    return ",".join(
        f"{n}={orjson.dumps(v).decode() if isinstance(v, str) or v is None else v}"
        for n, v in zip(names, key, strict=True)
    )


def row_doc(columns: Sequence[Column], values: Sequence[Any]) -> dict[str, Any]:
    """A row as the JSON object that is compared: new column names -> converted values."""
    return {c.name: convert(c.kind, v) for c, v in zip(columns, values, strict=True)}


def row_canonical(
    texts: Sequence[Callable[[Any], str | None]], key: Key, values: Sequence[Any]
) -> str:
    """The text a row is hashed by (keys, then columns), as in the checksums."""
    return row_text([f(v) for f, v in zip(texts, (*key, *values), strict=True)])


class SegmentComparer:
    """Pairs and compares the rows of segments; one DuckDB connection for all of them."""

    def __init__(self, keys: Sequence[Column], columns: Sequence[Column], rules: Rules) -> None:
        self.keys = tuple(keys)
        self.columns = tuple(columns)
        self.rules = rules
        self.key_names = [k.name for k in keys]
        self._con = duckdb.connect()
        self._con.execute("SET threads = 1")

    def close(self) -> None:
        self._con.close()

    def pairs(
        self,
        old: Sequence[tuple[Key, tuple[Any, ...]]],
        new: Sequence[tuple[Key, tuple[Any, ...]]],
    ) -> list[tuple[int | None, int | None]]:
        """Indexes of (old row, new row) pairs that differ; None: no row with that key."""
        import pyarrow as pa

        texts = [canonical_for(c.kind) for c in self.keys + self.columns]

        def table(rows: Sequence[tuple[Key, tuple[Any, ...]]]) -> pa.Table:
            return pa.table(
                {
                    "k": [orjson.dumps(list(k)).decode() for k, _ in rows],
                    "c": [row_canonical(texts, k, v) for k, v in rows],
                    "i": list(range(len(rows))),
                },
                schema=pa.schema([("k", pa.string()), ("c", pa.string()), ("i", pa.int64())]),
            )

        self._con.register("o", table(old))
        self._con.register("n", table(new))
        try:
            found = self._con.execute(
                "SELECT o.i, n.i FROM o FULL OUTER JOIN n ON o.k = n.k "
                "WHERE o.c IS DISTINCT FROM n.c"
            ).fetchall()
        finally:
            self._con.unregister("o")
            self._con.unregister("n")

        # in key order (the keys of one table are all integers or all text)
        def key_of(pair: tuple[int | None, int | None]) -> Key:
            i, j = pair
            return old[i][0] if i is not None else new[j][0]  # type: ignore[index]

        return sorted(((a, b) for a, b in found), key=key_of)

    def differences(
        self, key: Key, old: tuple[Any, ...] | None, new: tuple[Any, ...] | None
    ) -> list[RowDifference]:
        """What differs in one row (the whole row when one side has none)."""
        label = f"$row[{key_label(self.key_names, key)}]"
        if old is None and new is not None:
            return [RowDifference(key, label, "added", None, None, row_doc(self.columns, new))]
        if new is None and old is not None:
            return [RowDifference(key, label, "removed", None, row_doc(self.columns, old), None)]
        assert old is not None and new is not None
        a, b = row_doc(self.columns, old), row_doc(self.columns, new)
        result = compare(
            Payload(200, _JSON, orjson.dumps(a, option=orjson.OPT_NON_STR_KEYS)),
            Payload(200, _JSON, orjson.dumps(b, option=orjson.OPT_NON_STR_KEYS)),
            self.rules,
        )
        out = []
        for d in result.differences:
            rest = d.path[1:] if d.path.startswith("$") else d.path
            column = _column_of(rest)
            out.append(
                RowDifference(key, label + rest, str(d.kind), column, d.primary, d.candidate)
            )
        return out


def _column_of(rest: str) -> str | None:
    """The top-level key of `.name.more` / `["odd name"]...` (the column)."""
    if rest.startswith("."):
        name = rest[1:]
        for stop in (".", "["):
            name = name.split(stop, 1)[0]
        return name or None
    if rest.startswith('["'):
        end = rest.find('"]')
        return rest[2:end] if end > 0 else None
    return None


def duplicate_differences(
    names: Sequence[str], found: Iterable[tuple[Key, int | None, int | None]]
) -> list[RowDifference]:
    """A key held by more than one row on either side: one difference each.

    The values are the row counts on each side; None where that side has at most one.
    """
    return [
        RowDifference(key, f"$row[{key_label(names, key)}]", "duplicate", None, a, b)
        for key, a, b in found
    ]


def null_key_difference(names: Sequence[str], old: int, new: int) -> RowDifference:
    """Rows whose key is NULL (on either side): the counts, as one difference."""
    key = tuple(None for _ in names)
    return RowDifference(key, f"$row[{key_label(names, key)}]", "null_key", None, old, new)


__all__ = [
    "RowDifference",
    "SegmentComparer",
    "duplicate_differences",
    "key_label",
    "null_key_difference",
    "row_canonical",
    "row_doc",
]
