"""Difference clusters, and noise and accepted differences kept apart from parity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from comparators import Difference, Kind, Verdict
from reports.context import EndpointRow, build_context
from reports.detail import load_clusters
from shadow.store import open_for_reading
from tests.reports.report_store import Ex, build, changed, demo_exchanges

NOISE = ("noise", "differs between primary and secondary")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_for_reading(build(tmp_path / "d.duckdb", demo_exchanges()))
    yield con
    con.close()


def by_name(con: duckdb.DuckDBPyConnection, name: str) -> EndpointRow:
    return next(e for e in build_context(con, "d").endpoints if e.endpoint == name)


def test_clusters_group_list_indices_and_count_exchanges(
    demo: duckdb.DuckDBPyConnection,
) -> None:
    orders = by_name(demo, "GET /api/orders/{id}")
    (price,) = orders.clusters
    # $.items[0].price and $.items[1].price in each of 2 exchanges: one cluster
    assert (price.path, price.kind, price.status) == ("$.items[*].price", "value_changed", "real")
    assert (price.occurrences, price.exchanges) == (4, 2)
    assert price.share == pytest.approx(100 * 2 / 6)
    # the example's values come from one difference
    assert (price.example_path, price.primary_example, price.candidate_example) in {
        ("$.items[0].price", "10", "11"),
        ("$.items[1].price", "5", "6"),
    }
    assert price.example_exchange == "x0000"


def test_noise_and_accepted_are_separate_and_never_count_against_parity(
    demo: duckdb.DuckDBPyConnection,
) -> None:
    orders = by_name(demo, "GET /api/orders/{id}")
    assert [c.path for c in orders.noise] == ["$.generatedAt"]
    assert [c.path for c in orders.accepted] == ["$header.etag"]
    noise, accepted = orders.noise[0], orders.accepted[0]
    assert (noise.status, noise.exchanges, noise.reason) == ("noise", 5, NOISE[1])
    assert noise.evidence == 5  # rows of noise_differences at that path
    assert (accepted.status, accepted.exchanges) == ("accepted", 3)
    assert accepted.reason == "etags differ by design"
    # 6 compared: 2 with a real difference, 3 with only noise/accepted ones, 1 match
    assert (orders.compared, orders.differed, orders.tolerated, orders.matched) == (6, 2, 3, 4)
    assert orders.parity == pytest.approx(100 * 4 / 6)
    s = build_context(demo, "d").summary
    assert (s.differed, s.tolerated) == (3, 3)
    assert "3 only noise/accepted" in s.describe()


def test_cut_off_differences_still_count(tmp_path: Path) -> None:
    ts = changed("$.ts", 1, 2)
    exchanges = [
        Ex("GET /a", Verdict.DIFFER, (ts,), {"$.ts": NOISE}),
        Ex("GET /a", Verdict.DIFFER, (ts,), {"$.ts": NOISE}, truncated=True),
    ]
    con = open_for_reading(build(tmp_path / "t.duckdb", exchanges))
    try:
        (a,) = build_context(con, "t").endpoints
    finally:
        con.close()
    # the second had more differences than were kept: they may be real
    assert (a.tolerated, a.differed) == (1, 1)


def test_clusters_are_bounded_per_status_with_the_rest_counted(tmp_path: Path) -> None:
    diffs = tuple(Difference(f"$.f{i}", Kind.ADDED, None, i) for i in range(6))
    exchanges = [
        Ex("GET /a", Verdict.DIFFER, diffs[: 6 - k], {"$.f0": NOISE, "$.f1": NOISE})
        for k in range(3)
    ]
    con = open_for_reading(build(tmp_path / "b.duckdb", exchanges))
    try:
        clusters, totals = load_clusters(con, None, ["GET /a"], {"GET /a": 3}, per_status=2)
    finally:
        con.close()
    # most frequent first: f2, f3 in all three exchanges, f4 in two, f5 in one
    assert [c.path for c in clusters["GET /a"]["real"]] == ["$.f2", "$.f3"]
    assert [c.exchanges for c in clusters["GET /a"]["real"]] == [3, 3]
    assert [c.path for c in clusters["GET /a"]["noise"]] == ["$.f0", "$.f1"]
    assert totals["GET /a"] == {"real": 4, "noise": 2}


def test_samples_real_first_then_errors_then_tolerated(tmp_path: Path) -> None:
    ts = changed("$.ts", 1, 2)
    v = changed("$.v", 1, 2)
    body = b'{"ts": 1, "v": 1}'
    exchanges = [
        Ex("GET /a", Verdict.DIFFER, (ts,), {"$.ts": NOISE}, primary_body=body),  # newest last
        Ex("GET /a", Verdict.CANDIDATE_ERROR),
        Ex("GET /a", Verdict.DIFFER, (ts, v), {"$.ts": NOISE}, primary_body=body),
        Ex("GET /a", Verdict.DIFFER, (ts,), {"$.ts": NOISE}, primary_body=body),
    ]
    con = open_for_reading(build(tmp_path / "s.duckdb", exchanges))
    try:
        (a,) = build_context(con, "s").endpoints
    finally:
        con.close()
    assert [(s.exchange_id, s.verdict) for s in a.samples] == [
        ("x0002", "differ"),
        ("x0001", "candidate_error"),
        ("x0003", "tolerated"),
    ]
    real = a.samples[0]
    assert [(d["path"], d["status"]) for d in real.differences] == [
        ("$.v", "real"),
        ("$.ts", "noise"),
    ]
    # the real difference's line is marked, the noise one only softly
    lines = {line.text.strip(): (line.marked, line.soft) for line in real.primary.lines}
    assert lines['"v": 1'] == (True, False)
    assert lines['"ts": 1,'] == (False, True)
