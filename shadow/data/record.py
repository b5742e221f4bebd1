"""A table diff as a run of the store (source `data:<table>`), written in one transaction."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from shadow.data.diff import TableResult
from shadow.data.rows import RowDifference, key_label
from shadow.pipeline.redact import REDACTED, Redactor
from shadow.store.rows import BigInt, DataColumnRow, DataDifferenceRow, DataTableRow
from shadow.store.writer import Run, StoreWriter

VALUE_CAP = 4096  # characters of one stored value (JSON text)


def value_json(value: Any) -> str | None:
    if value is None:
        return None
    text = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()
    if len(text) > VALUE_CAP:
        return orjson.dumps(text[:VALUE_CAP] + f"... ({len(text)} characters)").decode()
    return text


def stored_value(kind: str, absent: str, value: Any) -> str | None:
    """A value as stored: JSON text (a database NULL is `null`); SQL NULL for the side a
    whole row is absent from, and for the side of a duplicated key that holds it at most
    once."""
    if kind == absent or (kind == "duplicate" and value is None):
        return None
    return "null" if value is None else value_json(value)


def redacted(d: RowDifference, keys: Sequence[str], redactor: Redactor) -> RowDifference:
    """A difference with secret columns' values (and secrets inside JSON values) hidden."""
    label = f"$row[{key_label(keys, d.key)}]"
    inside = "$" + d.path[len(label) :] if d.path.startswith(label) else "$"
    # a secret column, or a secret key inside a JSON column ($row[id=1].settings.token)
    if (d.column is not None and redactor.is_secret_key(d.column)) or (
        inside != "$" and redactor.is_secret_path(inside)
    ):
        hidden = None if d.kind in ("added", "removed") else REDACTED
        return RowDifference(
            d.key, d.path, d.kind, d.column, hidden or redactor.value(d.old),
            hidden or redactor.value(d.new),
        )  # fmt: skip
    secret_key = any(redactor.is_secret_key(k) for k in keys)
    path = d.path
    if secret_key:  # a key named like a secret is not shown in the path either
        path = path.replace(f"$row[{key_label(keys, d.key)}]", "$row[REDACTED]", 1)
    return RowDifference(
        d.key, path, d.kind, d.column, redactor.value(d.old), redactor.value(d.new)
    )


def table_rows(
    run_id: str, r: TableResult, redactor: Redactor
) -> tuple[DataTableRow, list[DataDifferenceRow], list[DataColumnRow]]:
    """The store's rows for one table diff."""
    keys = list(r.keys)
    secret_key = any(redactor.is_secret_key(k) for k in keys)
    table = DataTableRow(
        run_id=run_id, table_name=r.name, old_table=r.old_table, new_table=r.new_table,
        key_columns=orjson.dumps(keys).decode(), old_url=r.old_url, new_url=r.new_url,
        old_rows=BigInt(r.old_rows), new_rows=BigInt(r.new_rows),
        missing_rows=BigInt(r.missing_rows), extra_rows=BigInt(r.extra_rows),
        changed_rows=BigInt(r.changed_rows), duplicate_keys=BigInt(r.duplicate_keys),
        in_flight=BigInt(r.in_flight), rows_dropped=BigInt(r.rows_dropped),
        rows_read_old=BigInt(r.rows_read_old), rows_read_new=BigInt(r.rows_read_new),
        segments_checked=BigInt(r.segments_checked), segments_read=BigInt(r.segments_read),
        bisect=r.bisect, segments=r.segments, threshold=r.threshold,
        since_column=r.since,
        cutoff=r.cutoff.replace(tzinfo=None) if r.cutoff else None,
        only_old=orjson.dumps(list(r.only_old)).decode() if r.only_old else None,
        only_new=orjson.dumps(list(r.only_new)).decode() if r.only_new else None,
        elapsed_s=round(r.elapsed_s, 3),
    )  # fmt: skip
    differences = []
    for d in r.differences:
        shown = redacted(d, keys, redactor)
        differences.append(
            DataDifferenceRow(
                run_id=run_id,
                table_name=r.name,
                row_key="REDACTED" if secret_key else key_label(keys, d.key),
                path=shown.path,
                kind=d.kind,
                column_name=d.column,
                old_value=stored_value(d.kind, "added", shown.old),
                new_value=stored_value(d.kind, "removed", shown.new),
            )
        )
    columns = [
        DataColumnRow(run_id, r.name, name, BigInt(n)) for name, n in sorted(r.column_rows.items())
    ]
    return table, differences, columns


def new_run_id(name: str) -> str:
    return f"data-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def store_results(
    db: str,
    results: Sequence[tuple[str, TableResult, float, dict[str, Any]]],
    redactor: Redactor,
) -> None:
    """Write each (run id, result, started, options) as a run with its facts, all at once.

    One transaction: an interrupted or failed write leaves none of them.
    """
    writer = StoreWriter(db)
    for run_id, r, started, options in results:
        run = Run(
            run_id=run_id,
            source=f"data:{r.name}",
            started_at=started,
            primary_url=r.old_url,
            candidate_url=r.new_url,
            options=options,
            ended_at=started + r.elapsed_s,
        )
        writer.run_changed(run)
        writer.add_data(*table_rows(run_id, r, redactor))
    writer.flush()


__all__ = [
    "VALUE_CAP",
    "new_run_id",
    "redacted",
    "store_results",
    "stored_value",
    "table_rows",
    "value_json",
]
