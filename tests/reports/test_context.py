"""reports.context: the report's numbers, built by SQL on a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from reports.context import SAMPLES_PER_ENDPOINT, build_context
from shadow.store.writer import Run, open_for_reading
from tests.reports.report_store import ERROR, Req, build

ONE, TWO = {"v": 1}, {"v": 2}


def req(i: int, endpoint: str, candidate: object, **kw: object) -> Req:
    """The i-th call (odd ones carry a query); the candidate answers in 20 ms unless told."""
    options: dict[str, object] = {"candidate_ms": 20.0, "query": "q=1" if i % 2 else "", **kw}
    return Req(endpoint, ONE, candidate, **options)  # type: ignore[arg-type]


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    # GET /a/{id}: 5 differ in $.v (the first also has $.w added), then 1 match
    specs: list[tuple[str, object, dict[str, object]]] = [
        ("GET /a/{id}", {"v": 2, "w": 3} if i == 0 else TWO, {"primary_ms": ms})
        for i, ms in enumerate([10.0, 20.0, 30.0, 40.0, 50.0])
    ]
    specs += [
        ("GET /a/{id}", ONE, {}),
        ("GET /b", ERROR, {"candidate_ms": 5000.0}),
        ("GET /b", ONE, {"candidate_ms": 30.0}),
        ("GET /c", ONE, {"run_id": "r2"}),
    ]
    calls = [req(i, endpoint, candidate, **kw) for i, (endpoint, candidate, kw) in enumerate(specs)]
    runs = [
        Run("r1", "proxy", 1_714_640_000.0, copies_dropped=2),
        Run("r2", "replay:x.har", 1_714_650_000.0),
    ]
    c = open_for_reading(build(tmp_path / "c.duckdb", calls, runs))
    yield c
    c.close()


def test_summary(con: duckdb.DuckDBPyConnection) -> None:
    ctx = build_context(con, "c.duckdb")
    s = ctx.summary
    assert (s.exchanges, s.compared, s.matched, s.differed) == (9, 8, 3, 5)
    assert (s.candidate_errors, s.primary_errors, s.skipped, s.endpoints, s.dropped) == (
        1,
        0,
        0,
        3,
        2,
    )
    assert s.parity == pytest.approx(37.5)
    assert [r["run_id"] for r in ctx.runs] == ["r1", "r2"]
    assert s.first_ts is not None and s.last_ts is not None and s.first_ts < s.last_ts


def test_endpoint_rows(con: duckdb.DuckDBPyConnection) -> None:
    ctx = build_context(con, "c.duckdb")
    assert [e.endpoint for e in ctx.endpoints] == ["GET /a/{id}", "GET /b", "GET /c"]
    assert [e.anchor for e in ctx.endpoints] == ["ep-0", "ep-1", "ep-2"]
    a, b, _ = ctx.endpoints
    assert (a.requests, a.compared, a.matched, a.differed) == (6, 6, 1, 5)
    assert a.parity == pytest.approx(100 / 6)
    # quantile_cont over 10, 20, 30, 40, 50, 10
    assert a.primary_p50 == pytest.approx(25.0)
    # candidate latency excludes the errored copy's 5000 ms
    assert b.candidate_p50 == pytest.approx(30.0)
    assert b.candidate_errors == 1 and b.parity == pytest.approx(100.0)


def test_fields_and_samples(con: duckdb.DuckDBPyConnection) -> None:
    a, b, c = build_context(con, "c.duckdb").endpoints
    assert [(f.path, f.kind, f.occurrences, f.exchanges) for f in a.clusters] == [
        ("$.v", "value_changed", 5, 5),
        ("$.w", "added", 1, 1),
    ]
    assert a.clusters[0].share == pytest.approx(100 * 5 / 6)
    assert (a.clusters[1].primary_example, a.clusters[1].candidate_example) == ("null", "3")
    assert a.clusters[1].example_exchange == "r1-x00000" and a.noise == [] and a.accepted == []
    assert len(a.samples) == SAMPLES_PER_ENDPOINT
    assert [s.exchange_id for s in a.samples] == ["r1-x00004", "r1-x00003", "r1-x00002"]
    sample = a.samples[1]
    assert sample.target == "/a/3?q=1"
    assert [d["path"] for d in sample.differences] == ["$.v"]
    assert [line.marked for line in sample.primary.lines] == [False, True, False]
    assert sample.primary.status == 200 and sample.primary.headers == [
        ("content-type", "application/json")
    ]
    assert [s.verdict for s in b.samples] == ["candidate_error"]
    assert b.samples[0].candidate.error == "connection refused"
    assert b.samples[0].candidate.lines == []
    assert c.samples == [] and c.clusters == []


def test_run_filter(con: duckdb.DuckDBPyConnection) -> None:
    ctx = build_context(con, "c.duckdb", run_id="r2")
    assert [e.endpoint for e in ctx.endpoints] == ["GET /c"]
    assert ctx.summary.exchanges == 1
    assert ctx.summary.dropped == 0
    assert [r["run_id"] for r in ctx.runs] == ["r2"]
    assert build_context(con, "c.duckdb", run_id="nope").summary.exchanges == 0
