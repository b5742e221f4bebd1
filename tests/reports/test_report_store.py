"""The report tests' store builder writes what tests/store_builder.write_store writes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.reports.render_rows import sql
from tests.reports.report_store import DEMO_CONFIG, Req, build, demo_exchanges
from tests.store_builder import write_store

TABLES = {
    "exchanges": "exchange_id",
    "differences": "exchange_id, path",
    "noise_differences": "exchange_id, path",
    "run_accepted": "run_id, entry",
}


def dump(db: str) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sql(db, f"SELECT * FROM {t} ORDER BY {key}") for t, key in TABLES.items()}


def test_build_stores_what_write_store_stores(tmp_path: Path) -> None:
    # write_store knows no query or request body: leave them out of the comparison
    calls = [replace(c, query="", body=b"") if isinstance(c, Req) else c for c in demo_exchanges()]
    db = build(tmp_path / "ours.duckdb", calls, config=DEMO_CONFIG)
    ours = dump(db)
    assert ours == dump(write_store(tmp_path / "theirs.duckdb", calls, config=DEMO_CONFIG))
    # and the demo has every kind of row to compare
    assert all(ours.values())
    statuses = sql(db, "SELECT DISTINCT status FROM differences ORDER BY status")
    assert statuses == [("accepted",), ("noise",), ("real",)]


def test_build_keeps_the_request_query_and_body_redacted(tmp_path: Path) -> None:
    db = build(tmp_path / "q.duckdb", demo_exchanges(), config=DEMO_CONFIG)
    queries = sql(db, "SELECT DISTINCT query FROM exchanges WHERE query IS NOT NULL")
    assert queries == [("page=1&token=[REDACTED]",)]
    bodies = sql(db, "SELECT request_body FROM exchanges WHERE method = 'POST'")
    assert bodies == [('{"name": "it\'s $(whoami)"}',)]
    urls = sql(db, "SELECT primary_url, candidate_url, copies_dropped FROM runs")
    assert urls == [("http://primary.test:8000", "http://cand.test:9000", 0)]
