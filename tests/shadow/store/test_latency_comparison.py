"""shadow_latency_comparison: ratios, the Hodges-Lehmann shift, its interval, the verdict.

Stores are written by the real evaluator and StoreWriter (tests/store_builder.py), with
the candidate's lag_ms set on its BackendResponse as the sender sets it. The statistics
are checked against a computation in plain Python (`hodges_lehmann` below).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from shadow.config.loader import parse_config
from shadow.pipeline.evaluate import evaluate
from shadow.store.writer import Run, StoreWriter, reading
from tests.store_builder import ERROR, T0, Call, exchange

EP = "GET /api/a/{id}"
COLUMNS = ("endpoint", "pairs", "samples", "median_ratio", "p95_ratio", "shift_ratio",
           "ci_low", "ci_high", "latency_verdict")  # fmt: skip


@dataclass
class Timed:
    """One request: what each backend took (ms), and our own delay in the candidate's."""

    primary_ms: float
    candidate_ms: float
    lag_ms: float | None = None
    endpoint: str = EP
    run_id: str = "r1"
    candidate_error: bool = False


def write(path: Path, timed: Iterable[Timed], ids: Sequence[int] | None = None) -> str:
    """A store of equal answers (all `match`) timed as given; `ids`: each one's index."""
    timed = list(timed)
    cfg = parse_config({})
    writer = StoreWriter(str(path))
    for n, run_id in enumerate(sorted({t.run_id for t in timed})):
        writer.run_changed(Run(run_id, "proxy", T0 + 3600 * n, "http://p.test", "http://c.test"))
    for k, t in enumerate(timed):
        i = ids[k] if ids is not None else k
        answer = ERROR if t.candidate_error else {"ok": True}
        call = Call(t.endpoint, {"ok": True}, answer, run_id=t.run_id,
                    primary_ms=t.primary_ms, candidate_ms=t.candidate_ms)  # fmt: skip
        ex = exchange(i, call)
        assert ex.candidate is not None
        ex = replace(ex, candidate=replace(ex.candidate, lag_ms=t.lag_ms))
        result = evaluate(ex, cfg, t.run_id, 64 * 1024, "differ")
        writer.add(result.row, result.differences, result.noise)
    writer.flush()
    return str(path)


def compare(db: str, run: str | None = None) -> dict[str, dict[str, Any]]:
    with reading(db, wait=5) as con:
        rows = con.execute("SELECT * FROM shadow_latency_comparison(?)", [run]).fetchall()
        names = [d[0] for d in con.description or []]
    assert tuple(names) == COLUMNS
    return {r[0]: dict(zip(names, r, strict=True)) for r in rows}


def hodges_lehmann(
    primary: Sequence[float], candidate: Sequence[float]
) -> tuple[float, float | None, float | None]:
    """The shift ratio and its 95 % interval, the textbook way: sort every difference."""
    xs = [math.log(max(p, 0.001)) for p in primary]
    ys = [math.log(max(c, 0.001)) for c in candidate]
    d = sorted(y - x for x in xs for y in ys)
    n, m = len(xs), len(ys)
    c = math.floor(n * m / 2 - 1.96 * math.sqrt(n * m * (n + m + 1) / 12))
    if c < 1:
        return math.exp(statistics.median(d)), None, None
    return math.exp(statistics.median(d)), math.exp(d[c - 1]), math.exp(d[len(d) - c])


def lognormal(rng: random.Random, n: int, median_ms: float, sigma: float = 0.5) -> list[float]:
    return [rng.lognormvariate(math.log(median_ms), sigma) for _ in range(n)]


def pairs(primary: Sequence[float], candidate: Sequence[float], **kw: Any) -> list[Timed]:
    return [Timed(p, c, **kw) for p, c in zip(primary, candidate, strict=True)]


# --- verdicts -----------------------------------------------------------------------------


def test_equal_distributions_are_the_same(tmp_path: Path) -> None:
    rng = random.Random(7)
    db = write(tmp_path / "s.duckdb", pairs(lognormal(rng, 300, 40), lognormal(rng, 300, 40)))
    row = compare(db)[EP]
    assert (row["pairs"], row["samples"], row["latency_verdict"]) == (300, 300, "same")
    assert row["ci_low"] < 1 < row["ci_high"]
    assert 0.9 < row["shift_ratio"] < 1.1


def test_a_candidate_twice_as_slow_is_slower_and_the_interval_holds_two(tmp_path: Path) -> None:
    rng = random.Random(11)
    db = write(tmp_path / "s.duckdb", pairs(lognormal(rng, 200, 40), lognormal(rng, 200, 80)))
    row = compare(db)[EP]
    assert (row["pairs"], row["latency_verdict"]) == (200, "slower")
    assert 1 < row["ci_low"] < 2 < row["ci_high"]
    assert row["shift_ratio"] == pytest.approx(2, rel=0.15)
    assert row["median_ratio"] == pytest.approx(2, rel=0.2)


def test_a_candidate_twice_as_fast_is_faster(tmp_path: Path) -> None:
    rng = random.Random(13)
    db = write(tmp_path / "s.duckdb", pairs(lognormal(rng, 120, 80), lognormal(rng, 120, 40)))
    row = compare(db)[EP]
    assert row["latency_verdict"] == "faster"
    assert row["ci_low"] < row["shift_ratio"] < row["ci_high"] < 1
    assert row["shift_ratio"] == pytest.approx(0.5, rel=0.15)


def test_under_fifty_samples_a_side_is_too_few(tmp_path: Path) -> None:
    few = [Timed(10.0, 100.0, endpoint="GET /few") for _ in range(49)]
    enough = [Timed(10.0 + k % 7, 100.0 + k % 5, endpoint="GET /enough") for k in range(50)]
    rows = compare(write(tmp_path / "s.duckdb", few + enough))
    # ten times slower, every time: still no verdict on 49 samples
    assert (rows["GET /few"]["samples"], rows["GET /few"]["latency_verdict"]) == (49, "too few")
    assert rows["GET /few"]["ci_low"] is None and rows["GET /few"]["ci_high"] is None
    assert rows["GET /few"]["shift_ratio"] == pytest.approx(10.0)
    assert rows["GET /enough"]["latency_verdict"] == "slower"


def test_thirty_samples_are_too_few(tmp_path: Path) -> None:
    rng = random.Random(3)
    db = write(tmp_path / "s.duckdb", pairs(lognormal(rng, 30, 40), lognormal(rng, 30, 120)))
    row = compare(db)[EP]
    assert (row["pairs"], row["samples"], row["latency_verdict"]) == (30, 30, "too few")
    assert (row["ci_low"], row["ci_high"]) == (None, None)


def test_identical_times_are_the_same_with_a_point_interval(tmp_path: Path) -> None:
    """All ties: every difference is 0, so the interval is [1, 1] and neither side wins."""
    row = compare(write(tmp_path / "s.duckdb", [Timed(25.0, 25.0)] * 80))[EP]
    assert (row["shift_ratio"], row["ci_low"], row["ci_high"]) == (1.0, 1.0, 1.0)
    assert (row["median_ratio"], row["p95_ratio"], row["latency_verdict"]) == (1.0, 1.0, "same")


def test_zero_times_are_floored_not_infinite(tmp_path: Path) -> None:
    timed = [Timed(0.0, 5.0) for _ in range(60)]
    row = compare(write(tmp_path / "s.duckdb", timed))[EP]
    assert row["shift_ratio"] == pytest.approx(5.0 / 0.001)
    assert row["latency_verdict"] == "slower"
    assert row["median_ratio"] is None  # the primary's p50 is 0: no ratio


# --- against the textbook computation ------------------------------------------------------


@pytest.mark.parametrize(("n", "seed"), [(50, 1), (51, 2), (137, 3), (499, 4)])
def test_fewer_than_500_samples_match_python(tmp_path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    primary, candidate = lognormal(rng, n, 30, 0.8), lognormal(rng, n, 33, 0.8)
    row = compare(write(tmp_path / "s.duckdb", pairs(primary, candidate)))[EP]
    shift, low, high = hodges_lehmann(primary, candidate)
    assert row["samples"] == n
    assert row["shift_ratio"] == pytest.approx(shift, rel=1e-12)
    assert row["ci_low"] == pytest.approx(low, rel=1e-12)
    assert row["ci_high"] == pytest.approx(high, rel=1e-12)
    assert row["median_ratio"] == pytest.approx(
        statistics.median(candidate) / statistics.median(primary), rel=1e-12
    )


def test_ratios_are_over_every_fair_pair_the_test_over_500_of_them(tmp_path: Path) -> None:
    rng = random.Random(5)
    primary, candidate = lognormal(rng, 2000, 30, 0.6), lognormal(rng, 2000, 36, 0.6)
    timed = pairs(primary, candidate)
    db = write(tmp_path / "s.duckdb", timed)
    row = compare(db)[EP]
    assert (row["pairs"], row["samples"]) == (2000, 500)
    # the quantiles of every fair pair, as shadow_endpoint_outcomes has them
    p95 = statistics.quantiles(primary, n=20, method="inclusive")[18]
    c95 = statistics.quantiles(candidate, n=20, method="inclusive")[18]
    assert row["p95_ratio"] == pytest.approx(c95 / p95, rel=1e-9)
    with reading(db, wait=5) as con:
        figures = con.execute(
            "SELECT candidate_q[2] / primary_q[2], candidate_q[1] / primary_q[1] "
            "FROM shadow_endpoint_outcomes(NULL)"
        ).fetchone()
        # the 500 the rule picks: smallest hash(run_id, exchange_id)
        picked = con.execute(
            "SELECT primary_ms, candidate_ms FROM exchanges "
            "ORDER BY hash(run_id, exchange_id) LIMIT 500"
        ).fetchall()
    assert figures == pytest.approx((row["p95_ratio"], row["median_ratio"]), rel=1e-12)
    # the test, over exactly those 500: the constant-rank path (N = 250 000)
    shift, low, high = hodges_lehmann([p for p, _ in picked], [c for _, c in picked])
    assert row["shift_ratio"] == pytest.approx(shift, rel=1e-12)
    assert row["ci_low"] == pytest.approx(low, rel=1e-12)
    assert row["ci_high"] == pytest.approx(high, rel=1e-12)
    assert row["latency_verdict"] == "slower"  # 1.2x over 500 samples is significant

    # the pick depends on the exchanges, not on the order they were written in
    order = list(range(len(timed)))
    random.Random(9).shuffle(order)
    again = write(tmp_path / "shuffled.duckdb", [timed[i] for i in order], ids=order)
    assert compare(again) == compare(db) == {EP: row}


# --- what is a sample ----------------------------------------------------------------------


def test_rows_with_our_own_delay_are_not_samples(tmp_path: Path) -> None:
    rng = random.Random(17)
    primary, candidate = lognormal(rng, 100, 40), lognormal(rng, 100, 40)
    fair = pairs(primary, candidate)
    # the copy went out late or the loop stalled: the candidate looks 10x slower
    late = [Timed(40.0, 400.0, lag_ms=100.0) for _ in range(80)]
    # a little lag, within the 2 ms bound: still a sample
    small_lag = [Timed(40.0, 40.0, lag_ms=1.9) for _ in range(3)]
    row = compare(write(tmp_path / "s.duckdb", fair + late + small_lag))[EP]
    assert (row["pairs"], row["latency_verdict"]) == (103, "same")
    shift, low, high = hodges_lehmann(primary + [40.0] * 3, candidate + [40.0] * 3)
    assert (row["shift_ratio"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (shift, low, high), rel=1e-12
    )
    # counted with them, the candidate would be slower
    counted = [replace(t, lag_ms=None) for t in late]
    assert compare(write(tmp_path / "all.duckdb", fair + counted))[EP]["latency_verdict"] == (
        "slower"
    )


def test_errors_are_not_samples_and_an_endpoint_without_pairs_has_a_row(tmp_path: Path) -> None:
    ok = [Timed(10.0, 10.0) for _ in range(60)]
    errors = [Timed(10.0, 5000.0, candidate_error=True) for _ in range(40)]
    down = [Timed(10.0, 5000.0, endpoint="GET /down", candidate_error=True) for _ in range(5)]
    rows = compare(write(tmp_path / "s.duckdb", ok + errors + down))
    assert (rows[EP]["pairs"], rows[EP]["shift_ratio"], rows[EP]["latency_verdict"]) == (
        60,
        1.0,
        "same",
    )
    assert rows["GET /down"] == {
        "endpoint": "GET /down", "pairs": 0, "samples": 0, "median_ratio": None,
        "p95_ratio": None, "shift_ratio": None, "ci_low": None, "ci_high": None,
        "latency_verdict": "too few",
    }  # fmt: skip


def test_a_run_is_compared_on_its_own(tmp_path: Path) -> None:
    rng = random.Random(23)
    before = pairs(lognormal(rng, 60, 40), lognormal(rng, 60, 40), run_id="r1")
    after = pairs(lognormal(rng, 60, 40), lognormal(rng, 60, 120), run_id="r2")
    db = write(tmp_path / "s.duckdb", before + after)
    assert compare(db, "r1")[EP]["latency_verdict"] == "same"
    assert compare(db, "r2")[EP]["latency_verdict"] == "slower"
    assert compare(db)[EP]["pairs"] == 120
