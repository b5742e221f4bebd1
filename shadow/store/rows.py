"""The rows the pipeline hands to the store, declared once.

Each table's row is a `NamedTuple`: its fields name the columns in the order of
the table, its annotations give their types. The Arrow schema the writer uses
and the column lists of its INSERTs come from these declarations; a test checks
that the migrated tables have exactly these columns and types. Build rows by
keyword (`ExchangeRow(exchange_id=..., ...)`), never by position.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, get_type_hints

if TYPE_CHECKING:
    import pyarrow as pa


class ExchangeRow(NamedTuple):
    """One row of `exchanges`: one request seen and what each backend answered."""

    exchange_id: str
    run_id: str
    ts: datetime
    source: str
    method: str
    endpoint: str
    path: str
    query: str | None
    verdict: str  # provisional (write-time); readers use shadow_exchange_outcomes
    skip_reason: str | None
    primary_status: int | None
    candidate_status: int | None
    primary_ms: float | None
    candidate_ms: float | None
    primary_error: str | None
    candidate_error: str | None
    diff_count: int
    diffs_truncated: bool
    body_kind: str | None
    notes: str | None
    request_headers: str | None
    request_body: str | None
    request_body_truncated: bool | None
    primary_headers: str | None
    primary_body: str | None
    primary_body_truncated: bool | None
    candidate_headers: str | None
    candidate_body: str | None
    candidate_body_truncated: bool | None
    secondary_status: int | None
    secondary_ms: float | None
    secondary_error: str | None
    # schema 5 (cutover): the route's mode, who answered the client, whether it fell back
    mode: str | None
    served_by: str | None
    fell_back: bool | None
    # schema 6 (fair latency): our own delay in the candidate's / primary's time, ms
    lag_ms: float | None
    primary_lag_ms: float | None


class DifferenceRow(NamedTuple):
    """One row of `differences`: a primary-vs-candidate difference (a stored fact)."""

    exchange_id: str
    run_id: str
    endpoint: str
    path: str
    kind: str
    primary_value: str | None
    candidate_value: str | None
    status: str  # provisional (write-time); readers use shadow_difference_outcomes
    cluster_path: str
    reason: str | None
    # The same (cluster_path, kind) also differs primary-vs-secondary in this exchange;
    # None when the exchange had no usable secondary (none, an error, another status).
    secondary_same: bool | None
    # The first row of its exchange with this (cluster_path, kind): counts the exchange once.
    cluster_first: bool


class NoiseRow(NamedTuple):
    """One row of `noise_differences`: a primary-vs-secondary difference (evidence)."""

    exchange_id: str
    run_id: str
    endpoint: str
    path: str
    cluster_path: str
    kind: str
    # The first row of its exchange with this (cluster_path, kind); NULL in rows of older
    # stores whose secondary was not usable (they are no evidence).
    cluster_first: bool | None


class ConversationRow(NamedTuple):
    """One row of `conversations`: a WebSocket conversation or event stream compared."""

    exchange_id: str
    run_id: str
    kind: str  # websocket | sse
    client_messages: int  # the client's messages (sent to both)
    primary_messages: int | None  # the server's messages on each side; None: no answer
    candidate_messages: int | None
    primary_ended: str | None  # closed | limit | error
    candidate_ended: str | None
    primary_close_code: int | None
    candidate_close_code: int | None
    dropped: int  # messages past the cap (either side), counted and not kept


class AcceptedRow(NamedTuple):
    """One row of `run_accepted`: an [[accepted]] entry of the config a run started with."""

    run_id: str
    entry: int
    endpoint: str
    path: str
    kind: str | None
    reason: str


class EventRow(NamedTuple):
    """One row of `events`: a flag change, rollback, notification or fallback summary."""

    event_id: str
    run_id: str
    ts: datetime
    kind: str  # flag_change | rollback | notification | fallbacks | flag_store
    route: str | None
    flag: str | None
    mode_before: str | None
    mode_after: str | None
    actor: str | None  # who: a person (shadow flags --by), or "shadow-controller"
    reason: str | None
    evidence: str | None  # JSON: the figures behind a rollback, a webhook's answer, ...


class BigInt(int):
    """Annotation of a BIGINT column (a plain `int` is an INTEGER)."""


class DataTableRow(NamedTuple):
    """One row of `data_tables`: one table compared by `shadow data diff` (sql/008_data.sql)."""

    run_id: str
    table_name: str
    old_table: str
    new_table: str
    key_columns: str  # JSON list of the key's (new) column names
    old_url: str  # without passwords
    new_url: str
    old_rows: BigInt
    new_rows: BigInt
    missing_rows: BigInt  # only in old
    extra_rows: BigInt  # only in new
    changed_rows: BigInt
    duplicate_keys: BigInt
    in_flight: BigInt
    rows_dropped: BigInt  # differing rows whose differences were not stored (--max-rows)
    rows_read_old: BigInt
    rows_read_new: BigInt
    segments_checked: BigInt
    segments_read: BigInt
    bisect: bool
    segments: int
    threshold: int
    since_column: str | None
    cutoff: datetime | None
    only_old: str | None  # JSON list: columns not compared, in old only
    only_new: str | None
    elapsed_s: float


class DataDifferenceRow(NamedTuple):
    """One row of `data_differences`: one difference of one row of a table."""

    run_id: str
    table_name: str
    row_key: str  # id=42
    path: str  # $row[id=42].created_at
    kind: str  # value_changed | type_changed | removed | added | duplicate | ...
    column_name: str | None
    old_value: str | None  # JSON text, redacted
    new_value: str | None


class DataColumnRow(NamedTuple):
    """One row of `data_columns`: changed rows that differ in one column."""

    run_id: str
    table_name: str
    column_name: str
    changed_rows: BigInt


_SQL = {
    str: "VARCHAR",
    int: "INTEGER",
    BigInt: "BIGINT",
    float: "DOUBLE",
    bool: "BOOLEAN",
    datetime: "TIMESTAMP",
}


def _base(annotation: object) -> type:
    args = getattr(annotation, "__args__", None)
    if args:  # `X | None`
        return next(a for a in args if a is not type(None))
    assert isinstance(annotation, type)
    return annotation


def columns(row: type[tuple[object, ...]]) -> tuple[str, ...]:
    """Column names of a row type, in table order."""
    return tuple(row._fields)  # type: ignore[attr-defined]


def arrow_schema(row: type[tuple[object, ...]]) -> pa.Schema:
    """The Arrow schema of a row type (every column nullable, as in the tables)."""
    import pyarrow as pa  # only writers need it: readers start faster without it

    arrow = {
        str: pa.string(),
        int: pa.int32(),
        BigInt: pa.int64(),
        float: pa.float64(),
        bool: pa.bool_(),
        datetime: pa.timestamp("us"),
    }
    hints = get_type_hints(row)
    return pa.schema([(name, arrow[_base(hints[name])]) for name in columns(row)])


def sql_types(row: type[tuple[object, ...]]) -> dict[str, str]:
    """Column name -> DuckDB type name, for checking the migrated tables."""
    hints = get_type_hints(row)
    return {name: _SQL[_base(hints[name])] for name in columns(row)}


TABLES: dict[str, type[tuple[object, ...]]] = {
    "exchanges": ExchangeRow,
    "differences": DifferenceRow,
    "noise_differences": NoiseRow,
    "run_accepted": AcceptedRow,
    "events": EventRow,
    "conversations": ConversationRow,
    "data_tables": DataTableRow,
    "data_differences": DataDifferenceRow,
    "data_columns": DataColumnRow,
}

__all__ = [
    "TABLES",
    "AcceptedRow",
    "BigInt",
    "ConversationRow",
    "DataColumnRow",
    "DataDifferenceRow",
    "DataTableRow",
    "DifferenceRow",
    "EventRow",
    "ExchangeRow",
    "NoiseRow",
    "arrow_schema",
    "columns",
    "sql_types",
]
