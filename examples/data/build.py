"""The data-migration story's two databases: the legacy SQLite and its PostgreSQL migration.

The legacy Node app kept its data in SQLite, written the way such apps write it:
timestamps as naive UTC text ('YYYY-MM-DD HH:MM:SS', completions with milliseconds),
JSON as text with the keys in the app's own order. The rewrite reads PostgreSQL, and a
migration script copies the rows across: text timestamps become TIMESTAMPTZ, JSON text
becomes JSONB (which reorders keys: not a difference), `dataset_id` is renamed `dataset`.

    build_legacy(Path("legacy.sqlite"))                  # 40 analyses + 12 insights
    migrate(Path("legacy.sqlite"), "postgresql://...")   # the copy, with the SLIPS

With `slips=True` (the default) the copy is faithful except for three deliberate slips,
each in exactly one row (`SLIPS`, `SLIP_DESCRIPTIONS`):

  (a) the longest analysis name is cut to 40 characters (a VARCHAR(40)-minded script);
  (b) one analysis's created_at is read as Europe/Berlin local time instead of UTC,
      so it lands 2 hours early (CEST);
  (c) one insight is not copied at all.

From the command line (see examples/data/README.md):

    python -m examples.data.build --legacy legacy.sqlite --new-url postgresql://...
    python -m examples.data.build --serve /tmp/migration   # a TempPostgres, until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from examples import store

LEGACY_TIME = "%Y-%m-%d %H:%M:%S"  # the legacy app's created_at: naive UTC, whole seconds
NAME_LIMIT = 40  # slip (a): names cut to this many characters
LEGACY_ZONE = "Europe/Berlin"  # slip (b): the zone the slipped timestamp is read in

# Some analyses got a note appended to their name in the legacy app, so a few names are
# longer than NAME_LIMIT; id 13's is exactly NAME_LIMIT characters (and must survive).
NAME_NOTES: dict[int, str] = {
    5: "re-run after the tracking fix",
    13: "EU traffic only",
    22: "holdout 10%, mobile web",
    31: "new copy",
    38: "sequential test, weekly peeks approved by the stats team",
}

SlipKind = Literal["value_changed", "removed"]


class Slip(NamedTuple):
    """One deliberate migration slip: where it is and what `shadow data diff` should say."""

    table: str
    key: int  # the row's primary key (`id`)
    column: str | None  # None: the whole row
    kind: SlipKind  # "removed": the row is only in the old (legacy) database


def legacy_name(row: store.Analysis) -> str:
    """The analysis's name as the legacy database holds it (the store's, plus any note)."""
    note = NAME_NOTES.get(row.id)
    return f"{row.name} — {note}" if note else row.name


def _analyses() -> list[store.Analysis]:
    return [row for i in range(1, store.ANALYSIS_COUNT + 1) if (row := store.analysis(i))]


TRUNCATED_ID = max(_analyses(), key=lambda row: (len(legacy_name(row)), -row.id)).id
TIMEZONE_ID = 23 if TRUNCATED_ID != 23 else 24
DROPPED_INSIGHT_ID = 7

SLIPS: list[Slip] = [
    Slip("analyses", TRUNCATED_ID, "name", "value_changed"),
    Slip("analyses", TIMEZONE_ID, "created_at", "value_changed"),
    Slip("insights", DROPPED_INSIGHT_ID, None, "removed"),
]
SLIP_DESCRIPTIONS: list[str] = [
    f"analyses id={TRUNCATED_ID} name: truncated to {NAME_LIMIT} characters",
    f"analyses id={TIMEZONE_ID} created_at: read as {LEGACY_ZONE} local time instead of UTC"
    " (2 hours early)",
    f"insights id={DROPPED_INSIGHT_ID} (whole row): not copied, missing from the new database",
]

# --- the legacy SQLite database -------------------------------------------------------------

LEGACY_SCHEMA = """
CREATE TABLE analyses (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    owner_email TEXT NOT NULL,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    progress INTEGER NOT NULL,
    conversion_rate REAL NOT NULL,
    metrics TEXT NOT NULL,
    tags TEXT NOT NULL
);
CREATE TABLE insights (
    id INTEGER PRIMARY KEY,
    analysis_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    confidence REAL NOT NULL,
    created_at TEXT NOT NULL
);
"""


def legacy_time(value: datetime) -> str:
    """'YYYY-MM-DD HH:MM:SS' in UTC, without an offset (the legacy created_at format)."""
    return value.astimezone(UTC).strftime(LEGACY_TIME)


def legacy_time_ms(value: datetime) -> str:
    """'YYYY-MM-DD HH:MM:SS.mmm' in UTC, without an offset (the legacy completed_at format)."""
    utc = value.astimezone(UTC)
    return f"{utc.strftime(LEGACY_TIME)}.{utc.microsecond // 1000:03d}"


def _js_json(value: Any) -> str:
    # JSON.stringify: compact, keys in insertion order
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _legacy_metrics(row: store.Analysis) -> str:
    # the legacy app's key order (sampleSize first); JSONB will not keep it
    return _js_json(
        {
            "sampleSize": row.metrics.sample_size,
            "conversionRate": row.metrics.conversion_rate,
            "avgOrderValue": row.metrics.avg_order_value,
            "confidence": row.metrics.confidence,
            "segments": [
                {"name": seg.name, "share": seg.share, "lift": seg.lift} for seg in row.segments
            ],
        }
    )


def build_legacy(path: Path) -> int:
    """Write the legacy SQLite database at `path` (replacing any file there).

    Tables `analyses` (store.ANALYSIS_COUNT rows) and `insights` (store.INSIGHT_COUNT
    rows); returns the number of rows written in all (40 + 12 = 52).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    analyses = [
        (
            row.id,
            legacy_name(row),
            row.status,
            row.dataset_id,
            row.owner.email,
            legacy_time(row.created_at),
            legacy_time_ms(row.completed_at) if row.completed_at else None,
            row.progress,
            row.metrics.conversion_rate,
            _legacy_metrics(row),
            _js_json(list(row.tags)),
        )
        for row in _analyses()
    ]
    insights = [
        (row.id, row.analysis_id, row.title, row.confidence_score, legacy_time(row.created_at))
        for row in store.insights()
    ]
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(LEGACY_SCHEMA)
        db.executemany(f"INSERT INTO analyses VALUES ({', '.join('?' * 11)})", analyses)
        db.executemany("INSERT INTO insights VALUES (?, ?, ?, ?, ?)", insights)
        db.commit()
    return len(analyses) + len(insights)


# --- the migration into PostgreSQL ----------------------------------------------------------

NEW_SCHEMA = [
    "DROP TABLE IF EXISTS analyses",
    "DROP TABLE IF EXISTS insights",
    """CREATE TABLE analyses (
        id BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        dataset TEXT NOT NULL,
        owner_email TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        completed_at TIMESTAMPTZ,
        progress INTEGER NOT NULL,
        conversion_rate DOUBLE PRECISION NOT NULL,
        metrics JSONB NOT NULL,
        tags JSONB NOT NULL
    )""",
    """CREATE TABLE insights (
        id BIGINT PRIMARY KEY,
        analysis_id BIGINT NOT NULL,
        title TEXT NOT NULL,
        confidence DOUBLE PRECISION NOT NULL,
        created_at TIMESTAMPTZ NOT NULL
    )""",
]


def parse_legacy_time(text: str, zone: str = "UTC") -> datetime:
    """A legacy timestamp ('YYYY-MM-DD HH:MM:SS[.mmm]', naive) read in `zone`, as UTC."""
    naive = datetime.fromisoformat(text)
    if naive.tzinfo is not None:
        raise ValueError(f"a legacy timestamp with an offset: {text!r}")
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _reparse_json(text: str) -> str:
    return json.dumps(json.loads(text), ensure_ascii=False)


def _ingest(cursor: Any, table: str, columns: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Bulk-load `rows` into `table` through a temporary staging table (COPY via ADBC).

    ADBC's COPY sends strings as text, which a JSONB column refuses in binary COPY, so
    the rows land in a staging table first and are cast on INSERT ... SELECT.
    """
    import pyarrow as pa

    schema = pa.schema([(name, kind) for name, kind in columns.items()])
    data = pa.Table.from_pylist(rows, schema=schema)
    staging = f"{table}_staging"
    cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{staging}")
    cursor.adbc_ingest(staging, data, mode="create", temporary=True)
    casts = {"metrics": "metrics::jsonb", "tags": "tags::jsonb"}
    names = ", ".join(columns)
    select = ", ".join(casts.get(name, name) for name in columns)
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {select} FROM pg_temp.{staging}")
    cursor.execute(f"DROP TABLE pg_temp.{staging}")


def migrate(legacy: Path, new_url: str, *, slips: bool = True) -> list[str]:
    """Copy the legacy SQLite database into PostgreSQL at `new_url` (tables replaced).

    Every row is copied faithfully (timestamps read as UTC, JSON parsed, `dataset_id`
    renamed `dataset`), except, when `slips` is true, the three SLIPS. Returns their
    descriptions (SLIP_DESCRIPTIONS), or [] without slips.
    """
    import adbc_driver_postgresql.dbapi as pg
    import pyarrow as pa

    with contextlib.closing(sqlite3.connect(f"file:{Path(legacy)}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        old_analyses = [dict(r) for r in db.execute("SELECT * FROM analyses ORDER BY id")]
        old_insights = [dict(r) for r in db.execute("SELECT * FROM insights ORDER BY id")]

    analyses: list[dict[str, Any]] = []
    for row in old_analyses:
        name = row["name"]
        if slips and row["id"] == TRUNCATED_ID:
            name = name[:NAME_LIMIT]  # slip (a)
        zone = LEGACY_ZONE if slips and row["id"] == TIMEZONE_ID else "UTC"  # slip (b)
        analyses.append(
            {
                "id": row["id"],
                "name": name,
                "status": row["status"],
                "dataset": row["dataset_id"],
                "owner_email": row["owner_email"],
                "created_at": parse_legacy_time(row["created_at"], zone),
                "completed_at": (
                    parse_legacy_time(row["completed_at"]) if row["completed_at"] else None
                ),
                "progress": row["progress"],
                "conversion_rate": row["conversion_rate"],
                "metrics": _reparse_json(row["metrics"]),
                "tags": _reparse_json(row["tags"]),
            }
        )
    insights = [
        {
            "id": row["id"],
            "analysis_id": row["analysis_id"],
            "title": row["title"],
            "confidence": row["confidence"],
            "created_at": parse_legacy_time(row["created_at"]),
        }
        for row in old_insights
        if not (slips and row["id"] == DROPPED_INSIGHT_ID)  # slip (c)
    ]

    stamp = pa.timestamp("us", tz="UTC")
    with pg.connect(new_url) as con:
        with con.cursor() as cur:
            for statement in NEW_SCHEMA:
                cur.execute(statement)
            _ingest(
                cur,
                "analyses",
                {
                    "id": pa.int64(), "name": pa.string(), "status": pa.string(),
                    "dataset": pa.string(), "owner_email": pa.string(), "created_at": stamp,
                    "completed_at": stamp, "progress": pa.int32(),
                    "conversion_rate": pa.float64(), "metrics": pa.string(),
                    "tags": pa.string(),
                },
                analyses,
            )  # fmt: skip
            _ingest(
                cur,
                "insights",
                {
                    "id": pa.int64(), "analysis_id": pa.int64(), "title": pa.string(),
                    "confidence": pa.float64(), "created_at": stamp,
                },
                insights,
            )  # fmt: skip
        con.commit()
    return list(SLIP_DESCRIPTIONS) if slips else []


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.data.build", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    parser.add_argument("--legacy", type=Path, help="where to write the legacy SQLite database")
    parser.add_argument("--new-url", help="PostgreSQL URL to migrate into (tables replaced)")
    parser.add_argument(
        "--serve",
        type=Path,
        metavar="DIR",
        help="start a throwaway PostgreSQL in DIR, build both databases, wait for Ctrl-C",
    )
    parser.add_argument("--no-slips", action="store_true", help="a faithful copy")
    args = parser.parse_args(argv)
    slips = not args.no_slips
    if args.serve is not None:
        from examples.data.postgres import TempPostgres

        legacy = args.legacy or args.serve / "legacy.sqlite"
        count = build_legacy(legacy)
        with TempPostgres(args.serve / "postgres") as server:
            url = server.create_database("migrated")
            done = migrate(legacy, url, slips=slips)
            print(f"legacy:   sqlite:{legacy.resolve()}  ({count} rows)")
            print(f"migrated: {url}")
            for line in done:
                print(f"  slip: {line}")
            print("Ctrl-C stops the server", flush=True)
            # Ctrl-C or SIGTERM: leave the `with`, which stops the server
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.default_int_handler)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        return 0
    if args.legacy is None:
        parser.error("--legacy (or --serve) is required")
    count = build_legacy(args.legacy)
    print(f"legacy: sqlite:{args.legacy} ({count} rows)")
    if args.new_url:
        for line in migrate(args.legacy, args.new_url, slips=slips):
            print(f"  slip: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
