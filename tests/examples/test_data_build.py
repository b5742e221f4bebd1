"""examples/data: the legacy SQLite, its PostgreSQL migration (with and without the slips),
and TempPostgres's password-checked users. Needs PostgreSQL (tests/postgres_server.py)."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from examples import store
from examples.data.build import (
    NAME_LIMIT,
    SLIP_DESCRIPTIONS,
    SLIPS,
    build_legacy,
    migrate,
)
from examples.data.postgres import TempPostgres

Rows = dict[int, dict[str, Any]]


def legacy_rows(path: Path, table: str) -> Rows:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in db.execute(f"SELECT * FROM {table}")}


def new_rows(url: str, table: str) -> Rows:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(url) as con, con.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        assert cur.description is not None
        names = [d[0] for d in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def utc(text: str | None) -> datetime | None:
    """A legacy naive-UTC text timestamp as an aware instant (the documented transform)."""
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def expected_analysis(row: dict[str, Any]) -> dict[str, Any]:
    """The legacy row after the migration's documented transforms (no slips)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "dataset": row["dataset_id"],
        "owner_email": row["owner_email"],
        "created_at": utc(row["created_at"]),
        "completed_at": utc(row["completed_at"]),
        "progress": row["progress"],
        "conversion_rate": row["conversion_rate"],
        "metrics": json.loads(row["metrics"]),
        "tags": json.loads(row["tags"]),
    }


def expected_insight(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": utc(row["created_at"])}


def as_migrated(row: dict[str, Any]) -> dict[str, Any]:
    """A PostgreSQL row with JSONB (fetched as text) parsed."""
    return {k: json.loads(v) if k in ("metrics", "tags") else v for k, v in row.items()}


def differences(legacy: Path, url: str) -> set[tuple[str, int, str | None, str]]:
    """(table, id, column or None, kind) for every cell or row that differs, like SLIPS."""
    found: set[tuple[str, int, str | None, str]] = set()
    for table, expect in (("analyses", expected_analysis), ("insights", expected_insight)):
        old = {key: expect(row) for key, row in legacy_rows(legacy, table).items()}
        new = {key: as_migrated(row) for key, row in new_rows(url, table).items()}
        found |= {(table, key, None, "removed") for key in old.keys() - new.keys()}
        found |= {(table, key, None, "added") for key in new.keys() - old.keys()}
        for key in old.keys() & new.keys():
            assert old[key].keys() == new[key].keys(), (table, key)
            found |= {
                (table, key, column, "value_changed")
                for column in old[key]
                if old[key][column] != new[key][column]
            }
    return found


# --- the legacy database ----------------------------------------------------------------------


def test_legacy_database_has_every_seeded_row_in_the_legacy_formats(tmp_path: Path) -> None:
    path = tmp_path / "legacy.sqlite"
    assert build_legacy(path) == store.ANALYSIS_COUNT + store.INSIGHT_COUNT == 52
    analyses = legacy_rows(path, "analyses")
    insights = legacy_rows(path, "insights")
    assert sorted(analyses) == list(range(1, store.ANALYSIS_COUNT + 1))
    assert sorted(insights) == list(range(1, store.INSIGHT_COUNT + 1))

    for key, row in analyses.items():
        seeded = store.analysis(key)
        assert seeded is not None
        assert row["name"].startswith(seeded.name)
        assert row["dataset_id"] == seeded.dataset_id
        assert row["owner_email"] == seeded.owner.email
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["created_at"])
        assert utc(row["created_at"]) == seeded.created_at
        if seeded.completed_at is None:
            assert row["completed_at"] is None
        else:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", row["completed_at"])
            assert utc(row["completed_at"]) == seeded.completed_at
        metrics = json.loads(row["metrics"])
        assert next(iter(metrics)) == "sampleSize"  # the legacy app's own key order
        assert metrics["sampleSize"] == seeded.metrics.sample_size
        assert json.loads(row["tags"]) == list(seeded.tags)
    for key, row in insights.items():
        seeded_insight = store.insight(key)
        assert seeded_insight is not None
        assert (row["analysis_id"], row["title"]) == (
            seeded_insight.analysis_id,
            seeded_insight.title,
        )
        assert utc(row["created_at"]) == seeded_insight.created_at

    lengths = sorted(len(row["name"]) for row in analyses.values())
    assert sum(n > NAME_LIMIT for n in lengths) >= 3  # a few long names, one exactly 40
    assert NAME_LIMIT in lengths
    assert lengths[-1] > lengths[-2]  # one longest name: the truncated one


# --- the migration ----------------------------------------------------------------------------


def test_migration_without_slips_is_faithful(tmp_path: Path, postgres_url: str) -> None:
    legacy = tmp_path / "legacy.sqlite"
    build_legacy(legacy)
    assert migrate(legacy, postgres_url, slips=False) == []

    old = legacy_rows(legacy, "analyses")
    new = new_rows(postgres_url, "analyses")
    assert set(new) == set(old)
    for key, row in new.items():
        assert row["name"] == old[key]["name"], key
        assert row["dataset"] == old[key]["dataset_id"], key
        assert row["created_at"] == utc(old[key]["created_at"]), key  # the same instant
        assert row["completed_at"] == utc(old[key]["completed_at"]), key
        assert json.loads(row["metrics"]) == json.loads(old[key]["metrics"]), key
        assert json.loads(row["tags"]) == json.loads(old[key]["tags"]), key
    old_insights = legacy_rows(legacy, "insights")
    new_insights = new_rows(postgres_url, "insights")
    assert set(new_insights) == set(old_insights)
    for key, row in new_insights.items():
        assert row["title"] == old_insights[key]["title"]
        assert row["created_at"] == utc(old_insights[key]["created_at"])
    assert differences(legacy, postgres_url) == set()


def test_migration_with_slips_differs_in_exactly_the_three_rows(
    tmp_path: Path, postgres_url: str
) -> None:
    legacy = tmp_path / "legacy.sqlite"
    build_legacy(legacy)
    assert migrate(legacy, postgres_url) == SLIP_DESCRIPTIONS
    assert differences(legacy, postgres_url) == set(SLIPS)
    assert [slip.kind for slip in SLIPS] == ["value_changed", "value_changed", "removed"]

    old = legacy_rows(legacy, "analyses")
    new = new_rows(postgres_url, "analyses")
    truncated, shifted, dropped = (slip.key for slip in SLIPS)
    assert [(slip.table, slip.column) for slip in SLIPS] == [
        ("analyses", "name"),
        ("analyses", "created_at"),
        ("insights", None),
    ]
    # (a) the longest name, cut to 40 characters
    longest = max(old.values(), key=lambda row: len(row["name"]))
    assert truncated == longest["id"]
    assert len(old[truncated]["name"]) > NAME_LIMIT
    assert new[truncated]["name"] == old[truncated]["name"][:NAME_LIMIT]
    assert f"analyses id={truncated} name" in SLIP_DESCRIPTIONS[0]
    # (b) created_at read as Berlin summer time: 2 hours early, the rest of the row intact
    assert shifted != truncated
    legacy_created = utc(old[shifted]["created_at"])
    assert legacy_created is not None
    assert new[shifted]["created_at"] == legacy_created - timedelta(hours=2)
    assert new[shifted]["completed_at"] == utc(old[shifted]["completed_at"])
    assert f"analyses id={shifted} created_at" in SLIP_DESCRIPTIONS[1]
    # (c) one insight is only in the legacy database
    assert dropped in legacy_rows(legacy, "insights")
    assert dropped not in new_rows(postgres_url, "insights")
    assert f"insights id={dropped}" in SLIP_DESCRIPTIONS[2]


def test_migration_replaces_the_tables_it_creates(tmp_path: Path, postgres_url: str) -> None:
    legacy = tmp_path / "legacy.sqlite"
    build_legacy(legacy)
    migrate(legacy, postgres_url)
    migrate(legacy, postgres_url, slips=False)  # a re-run replaces, not appends
    assert differences(legacy, postgres_url) == set()


# --- TempPostgres ------------------------------------------------------------------------------


def test_created_user_needs_its_password(postgres_server: TempPostgres, postgres_url: str) -> None:
    import adbc_driver_postgresql.dbapi as pg

    user = f"u_{uuid.uuid4().hex[:12]}"
    password = "it's s3cret"  # a quote and a space: escaped in SQL and in the URL
    postgres_server.create_user(user, password)
    database = postgres_url.rsplit("/", 1)[1]
    assert postgres_url == postgres_server.url(database)
    try:
        for wrong in ("wrong", None):
            with pytest.raises(pg.Error, match=r"authentication failed|password"):
                pg.connect(postgres_server.url(database, user, wrong)).close()
        with (
            pg.connect(postgres_server.url(database, user, password)) as con,
            con.cursor() as cur,
        ):
            cur.execute("SELECT current_user")
            assert cur.fetchall() == [(user,)]
    finally:
        postgres_server.sql(f'DROP ROLE IF EXISTS "{user}"')
