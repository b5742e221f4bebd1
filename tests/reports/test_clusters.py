"""Difference clusters, and noise and accepted differences kept apart from parity."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from reports.context import EndpointRow, build_context
from reports.detail import load_clusters
from shadow.store.writer import open_for_reading
from tests.reports.report_store import DEMO_CONFIG, ERROR, Call, build, demo_exchanges

DIRECT = "the same change also happened between primary and secondary here"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_for_reading(build(tmp_path / "d.duckdb", demo_exchanges(), config=DEMO_CONFIG))
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
    assert price.example_exchange == "r1-x00000"


def test_noise_and_accepted_are_separate_and_never_count_against_parity(
    demo: duckdb.DuckDBPyConnection,
) -> None:
    orders = by_name(demo, "GET /api/orders/{id}")
    assert [c.path for c in orders.noise] == ["$.generatedAt"]
    assert [c.path for c in orders.accepted] == ["$.etag"]
    noise, accepted = orders.noise[0], orders.accepted[0]
    assert (noise.status, noise.exchanges, noise.reason) == ("noise", 5, DIRECT)
    assert noise.evidence == 5  # rows of noise_differences at that path
    assert (accepted.status, accepted.exchanges) == ("accepted", 3)
    # the entry the run was recorded with, stored with the run
    assert accepted.reason == "accepted by run r1 [[accepted]] #1: etags differ by design"
    # 6 compared: 2 with a real difference, 3 with only noise/accepted ones, 1 match
    assert (orders.compared, orders.differed, orders.tolerated, orders.matched) == (6, 2, 3, 4)
    assert orders.parity == pytest.approx(100 * 4 / 6)
    s = build_context(demo, "d").summary
    assert (s.differed, s.tolerated) == (3, 3)
    assert "3 only noise/accepted" in s.describe()


def test_noise_needs_evidence_in_the_store(tmp_path: Path) -> None:
    # The demo's traffic without secondary answers: nothing shows that generatedAt
    # varies on its own, so it is a real difference; etag is still accepted.
    calls = [replace(c, secondary=None) for c in demo_exchanges()]
    con = open_for_reading(build(tmp_path / "n.duckdb", calls, config=DEMO_CONFIG))
    try:
        orders = by_name(con, "GET /api/orders/{id}")
    finally:
        con.close()
    assert orders.noise == []
    assert {c.path for c in orders.clusters} == {"$.items[*].price", "$.generatedAt"}
    assert [c.path for c in orders.accepted] == ["$.etag"]
    assert (orders.differed, orders.tolerated, orders.matched) == (5, 0, 1)


def test_cut_off_differences_still_count(tmp_path: Path) -> None:
    # Both differ from the primary only where the secondary does too (noise), but the
    # comparison keeps one difference: the second one's other difference is not kept.
    calls = [
        Call("GET /a", {"ts": 1}, {"ts": 2}, secondary={"ts": 3}),
        Call("GET /a", {"ts": 1, "u": 1}, {"ts": 2, "u": 2}, secondary={"ts": 3, "u": 3}),
    ]
    db = build(tmp_path / "t.duckdb", calls, config={"compare": {"max_diffs": 1}})
    con = open_for_reading(db)
    try:
        (a,) = build_context(con, "t").endpoints
        stored = con.execute("SELECT diffs_truncated FROM exchanges ORDER BY ts").fetchall()
    finally:
        con.close()
    assert stored == [(False,), (True,)]
    # the second had more differences than were kept: they may be real
    assert (a.tolerated, a.differed) == (1, 1)
    assert [c.path for c in a.clusters] == [] and [c.path for c in a.noise] == ["$.ts"]


def test_clusters_are_bounded_per_status_with_the_rest_counted(tmp_path: Path) -> None:
    # Exchange k: real fields f2..f(5-k) added by the candidate; n0 and n1 (and n2 in
    # the first) change on the candidate and on the secondary alike: noise.
    calls = []
    for k in range(3):
        primary = {"n0": 0, "n1": 0, "n2": 0}
        noisy = {"n0": 1, "n1": 1, "n2": 1 if k == 0 else 0}
        candidate = {**noisy, **{f"f{i}": i for i in range(2, 6 - k)}}
        calls.append(Call("GET /a", primary, candidate, secondary={**noisy}))
    con = open_for_reading(build(tmp_path / "b.duckdb", calls))
    try:
        clusters, totals = load_clusters(con, None, ["GET /a"], {"GET /a": 3}, per_status=2)
    finally:
        con.close()
    # most frequent first: f2, f3 in all three exchanges, f4 in two, f5 in one
    assert [c.path for c in clusters["GET /a"]["real"]] == ["$.f2", "$.f3"]
    assert [c.exchanges for c in clusters["GET /a"]["real"]] == [3, 3]
    assert [c.path for c in clusters["GET /a"]["noise"]] == ["$.n0", "$.n1"]
    assert totals["GET /a"] == {"real": 4, "noise": 3}


def test_samples_real_first_then_errors_then_tolerated(tmp_path: Path) -> None:
    body = {"ts": 1, "v": 1}
    secondary = {"ts": 3, "v": 1}  # ts varies on the legacy side too: noise
    calls = [
        Call("GET /a", body, {"ts": 2, "v": 1}, secondary=secondary),  # newest last
        Call("GET /a", body, ERROR),
        Call("GET /a", body, {"ts": 2, "v": 2}, secondary=secondary),
        Call("GET /a", body, {"ts": 2, "v": 1}, secondary=secondary),
    ]
    con = open_for_reading(build(tmp_path / "s.duckdb", calls))
    try:
        (a,) = build_context(con, "s").endpoints
    finally:
        con.close()
    assert [(s.exchange_id, s.verdict) for s in a.samples] == [
        ("r1-x00002", "differ"),
        ("r1-x00001", "candidate_error"),
        ("r1-x00003", "tolerated"),
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
