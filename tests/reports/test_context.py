"""reports.context: the report's numbers, built by SQL on a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from comparators import Comparison, Difference, Kind, Payload, Verdict
from reports.context import SAMPLES_PER_ENDPOINT, build_context
from shadow.model import BackendResponse, Exchange, Request
from shadow.records import difference_rows, exchange_row
from shadow.store import Run, StoreWriter, open_for_reading

JSON = (("content-type", "application/json"),)


def add(
    writer: StoreWriter,
    i: int,
    endpoint: str,
    verdict: Verdict,
    diffs: tuple[Difference, ...] = (),
    primary_ms: float = 10.0,
    candidate_ms: float = 20.0,
    run_id: str = "r1",
) -> None:
    method, path = endpoint.split(" ", 1)
    cand = (
        BackendResponse.failed("refused", candidate_ms)
        if verdict is Verdict.CANDIDATE_ERROR
        else BackendResponse(Payload(200, JSON, b'{"v": 2}'), candidate_ms)
    )
    ex = Exchange(
        id=f"e{i}",
        request=Request(method, path.replace("{id}", str(i)), "q=1" if i % 2 else ""),
        primary=BackendResponse(Payload(200, JSON, b'{"v": 1}'), primary_ms),
        candidate=cand,
        endpoint=endpoint,
        started_at=1_714_640_000.0 + i,
    )
    cmp = Comparison(verdict, diffs, body_kind="json")
    writer.add(exchange_row(ex, cmp, run_id), difference_rows(ex, cmp, run_id))


V = Difference("$.v", Kind.VALUE_CHANGED, 1, 2)
W = Difference("$.w", Kind.ADDED, None, 3)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    db = str(tmp_path / "c.duckdb")
    w = StoreWriter(db)
    w.run_changed(Run("r1", "proxy", 1_714_640_000.0, copies_dropped=2))
    w.run_changed(Run("r2", "replay:x.har", 1_714_650_000.0))
    for i, ms in enumerate([10.0, 20.0, 30.0, 40.0, 50.0]):
        add(w, i, "GET /a/{id}", Verdict.DIFFER, (V, W) if i == 0 else (V,), primary_ms=ms)
    add(w, 5, "GET /a/{id}", Verdict.MATCH)
    add(w, 6, "GET /b", Verdict.CANDIDATE_ERROR, candidate_ms=5000.0)
    add(w, 7, "GET /b", Verdict.MATCH, candidate_ms=30.0)
    add(w, 8, "GET /c", Verdict.MATCH, run_id="r2")
    w.flush()
    c = open_for_reading(db)
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
    assert a.clusters[1].example_exchange == "e0" and a.noise == [] and a.accepted == []
    assert len(a.samples) == SAMPLES_PER_ENDPOINT
    assert [s.exchange_id for s in a.samples] == ["e4", "e3", "e2"]  # newest first
    sample = a.samples[1]
    assert sample.target == "/a/3?q=1"
    assert [d["path"] for d in sample.differences] == ["$.v"]
    assert [line.marked for line in sample.primary.lines] == [False, True, False]
    assert sample.primary.status == 200 and sample.primary.headers == [
        ("content-type", "application/json")
    ]
    assert [s.verdict for s in b.samples] == ["candidate_error"]
    assert b.samples[0].candidate.error == "refused"
    assert b.samples[0].candidate.lines == []
    assert c.samples == [] and c.clusters == []


def test_run_filter(con: duckdb.DuckDBPyConnection) -> None:
    ctx = build_context(con, "c.duckdb", run_id="r2")
    assert [e.endpoint for e in ctx.endpoints] == ["GET /c"]
    assert ctx.summary.exchanges == 1
    assert ctx.summary.dropped == 0
    assert [r["run_id"] for r in ctx.runs] == ["r2"]
    assert build_context(con, "c.duckdb", run_id="nope").summary.exchanges == 0
