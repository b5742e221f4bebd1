"""The report's latency comparison: ratios, the shift with its interval, and the verdict.

The store is written by the real evaluator and StoreWriter, with the candidate's lag_ms
set as the sender sets it; what the page shows is checked against
`shadow_latency_comparison` on that store (the macro itself is tested against plain
Python in tests/shadow/store/test_latency_comparison.py).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag

from reports import render_report
from reports.context import build_context
from reports.latency import LatencyComparison
from shadow.config.loader import parse_config
from shadow.pipeline.evaluate import evaluate
from shadow.store.writer import Run, StoreWriter, open_for_reading, reading
from tests.store_builder import T0, Call, exchange

SLOW, SAME, FEW, LAGGY = "GET /api/slow", "GET /api/same", "GET /api/few", "GET /api/laggy"


def _calls() -> list[tuple[Call, float | None]]:
    """(call, lag_ms): four endpoints whose latency says four different things."""
    rng = random.Random(42)

    def ms(median: float) -> float:
        return rng.lognormvariate(math.log(median), 0.4)

    out: list[tuple[Call, float | None]] = []
    # 600 pairs, the candidate about twice as slow: slower (the test uses 500 of them)
    out += [(Call(SLOW, {"a": 1}, {"a": 1}, primary_ms=ms(20), candidate_ms=ms(40)), None)
            for _ in range(600)]  # fmt: skip
    out += [(Call(SAME, {"a": 1}, {"a": 1}, primary_ms=ms(20), candidate_ms=ms(20)), None)
            for _ in range(80)]  # fmt: skip
    # three times slower, but on 12 requests only
    out += [(Call(FEW, {"a": 1}, {"a": 1}, primary_ms=10.0 + k, candidate_ms=30.0 + 3 * k), None)
            for k in range(12)]  # fmt: skip
    # as fast as the primary; 30 more copies went out late and look slow: left out
    out += [(Call(LAGGY, {"a": 1}, {"a": 1}, primary_ms=ms(20), candidate_ms=ms(20)), None)
            for _ in range(60)]  # fmt: skip
    out += [(Call(LAGGY, {"a": 1}, {"a": 1}, primary_ms=20.0, candidate_ms=200.0), 150.0)
            for _ in range(30)]  # fmt: skip
    return out


def write(path: Path, calls: Iterable[tuple[Call, float | None]]) -> str:
    cfg = parse_config({})
    writer = StoreWriter(str(path))
    writer.run_changed(Run("r1", "proxy", T0, "http://p.test", "http://c.test"))
    for i, (call, lag) in enumerate(calls):
        ex = exchange(i, call)
        assert ex.candidate is not None
        ex = replace(ex, candidate=replace(ex.candidate, lag_ms=lag))
        result = evaluate(ex, cfg, call.run_id, 64 * 1024, "differ")
        writer.add(result.row, result.differences, result.noise)
    writer.flush()
    return str(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write(tmp_path_factory.mktemp("latency") / "shadow.duckdb", _calls())


@pytest.fixture(scope="module")
def page(store: str, tmp_path_factory: pytest.TempPathFactory) -> BeautifulSoup:
    out = tmp_path_factory.mktemp("page") / "report.html"
    render_report(store, str(out))
    return BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")


@pytest.fixture(scope="module")
def macro(store: str) -> dict[str, dict[str, Any]]:
    with reading(store, wait=5) as con:
        cur = con.execute("SELECT * FROM shadow_latency_comparison(NULL)")
        names = [d[0] for d in cur.description or []]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}


def cell(page: BeautifulSoup, endpoint: str, column: str) -> Tag:
    found = page.select_one(f'#endpoints tr[data-endpoint="{endpoint}"] td[data-col="{column}"]')
    assert isinstance(found, Tag), (endpoint, column)
    return found


def section_verdict(page: BeautifulSoup, endpoint: str) -> Tag:
    found = page.select_one(f'section[data-endpoint="{endpoint}"] p.latency-verdict')
    assert isinstance(found, Tag), endpoint
    return found


def test_the_verdicts_the_store_holds(macro: dict[str, dict[str, Any]]) -> None:
    assert {e: r["latency_verdict"] for e, r in macro.items()} == {
        SLOW: "slower",
        SAME: "same",
        FEW: "too few",
        LAGGY: "same",
    }
    assert (macro[SLOW]["pairs"], macro[SLOW]["samples"]) == (600, 500)
    assert macro[LAGGY]["pairs"] == 60


def test_overview_shows_shift_interval_and_verdict(
    page: BeautifulSoup, macro: dict[str, dict[str, Any]]
) -> None:
    slow = macro[SLOW]
    shown = cell(page, SLOW, "latency")
    assert shown.get_text(strip=True) == (
        f"{slow['shift_ratio']:.2f}\u00d7 [{slow['ci_low']:.2f}\u2013{slow['ci_high']:.2f}] slower"
    )
    assert "bad" in shown["class"] and shown["data-verdict"] == "slower"
    assert float(str(shown["data-v"])) == pytest.approx(slow["shift_ratio"], rel=1e-5)
    same = cell(page, SAME, "latency")
    assert same.get_text(strip=True).endswith("] same") and "bad" not in same["class"]
    few = cell(page, FEW, "latency")
    assert few.get_text(strip=True) == "too few samples (n=12)"
    assert "na" in few["class"] and few["data-v"] == "-1"  # sorts with the unjudged


def test_overview_shows_both_ratios_from_sql(
    page: BeautifulSoup, macro: dict[str, dict[str, Any]]
) -> None:
    for endpoint, row in macro.items():
        for column in ("median_ratio", "p95_ratio"):
            shown = cell(page, endpoint, column)
            assert shown.get_text(strip=True) == f"{row[column]:.2f}\u00d7"
            assert float(str(shown["data-v"])) == pytest.approx(row[column], rel=1e-5)
    # the few samples' ratios are shown, but greyed: they are no verdict
    assert cell(page, FEW, "p95_ratio").get_text(strip=True) == "3.00\u00d7"
    assert "na" in cell(page, FEW, "p95_ratio")["class"]
    assert "na" not in cell(page, SLOW, "p95_ratio")["class"]


def test_section_says_what_the_verdict_is_over(
    page: BeautifulSoup, macro: dict[str, dict[str, Any]]
) -> None:
    slow = section_verdict(page, SLOW)
    assert slow["data-verdict"] == "slower"
    assert cell(page, SLOW, "latency").get_text(strip=True) in slow.get_text()
    assert "over 500 of 600 pairs fit to compare" in slow.get_text(" ", strip=True)
    assert "left out" not in slow.get_text()
    laggy = section_verdict(page, LAGGY).get_text(" ", strip=True)
    assert "over 60 of 60 pairs" in laggy
    assert "30 compared exchanges left out for our own delay" in laggy
    assert "too few samples (n=12)" in section_verdict(page, FEW).get_text()
    ratios = page.select_one(f'section[data-endpoint="{SLOW}"] table.latency tr.ratios')
    assert ratios is not None
    assert [td.get_text(strip=True) for td in ratios.find_all("td")] == [
        "candidate / primary",
        f"{macro[SLOW]['median_ratio']:.2f}\u00d7",
        f"{macro[SLOW]['p95_ratio']:.2f}\u00d7",
        "",
    ]


def test_one_latency_query_for_every_endpoint(store: str) -> None:
    class Recording:
        def __init__(self, con: Any) -> None:
            self.con = con
            self.sql: list[str] = []

        def execute(self, sql: str, params: Any = None) -> Any:
            self.sql.append(sql)
            return self.con.execute(sql, params)

    con = open_for_reading(store, wait=5)
    try:
        recording = Recording(con)
        ctx = build_context(recording, store)  # type: ignore[arg-type]
    finally:
        con.close()
    assert sum("shadow_latency_comparison" in s for s in recording.sql) == 1
    assert all(isinstance(e.latency, LatencyComparison) for e in ctx.endpoints)


def test_wording() -> None:
    base = LatencyComparison(
        pairs=812, excluded=0, samples=500, median_ratio=1.3, p95_ratio=1.4,
        shift_ratio=1.3214, ci_low=1.1049, ci_high=1.5751, verdict="slower",
    )  # fmt: skip
    assert base.text == "1.32\u00d7 [1.10\u20131.58] slower"
    assert (base.css, base.figures_css, base.sort_value) == ("bad", "", 1.3214)
    faster = replace(base, shift_ratio=0.5, ci_low=0.4, ci_high=0.6, verdict="faster")
    assert (faster.text, faster.css) == ("0.50\u00d7 [0.40\u20130.60] faster", "good")
    few = replace(base, samples=12, ci_low=None, ci_high=None, verdict="too few")
    assert (few.text, few.css, few.figures_css, few.sort_value) == (
        "too few samples (n=12)",
        "na",
        "na",
        None,
    )
