"""Latency histograms: buckets counted in SQL, bars shaped for inline SVG."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from reports import render_report
from reports.detail import load_histograms
from reports.histogram import PLOT_H, bucket_range, build_histogram, edge_label
from shadow.store.writer import open_for_reading
from tests.reports.report_store import ERROR, Call, build

PRIMARY_MS = [0.3, 1.0, 1.9, 3.0, 100.0, 40_000.0]


@pytest.fixture
def db(tmp_path: Path) -> str:
    ok = {"ok": True}
    calls = [Call("GET /a", ok, ok, primary_ms=ms, candidate_ms=ms * 4) for ms in PRIMARY_MS]
    calls.append(Call("GET /a", ok, ERROR, candidate_ms=5000.0))  # no bar
    calls.append(Call("GET /b", ok, None, primary_ms=7.0))  # not copied
    return build(tmp_path / "h.duckdb", calls)


def test_buckets_are_counted_in_sql(db: str) -> None:
    con = open_for_reading(db)
    try:
        hists = load_histograms(con, None, ["GET /a", "GET /b"])
        only_b = load_histograms(con, None, ["GET /b"])
    finally:
        con.close()
    a = hists["GET /a"]
    assert a.totals == {"primary": 7, "candidate": 6}  # the errored copy has no latency
    titles = [bar.title for bar in a.bars if bar.side == "primary"]
    # 0.3 -> < 1 ms; 1.0 and 1.9 -> 1-2 ms; 40 s -> the top bucket
    assert titles[0] == "primary < 1 ms: 1 (14.3%)"
    assert titles[1] == "primary 1-2 ms: 2 (28.6%)"
    assert titles[-1] == "primary >= 32,768 ms: 1 (14.3%)"
    cand = [bar.title for bar in a.bars if bar.side == "candidate"]
    assert cand[0] == "candidate 1-2 ms: 1 (16.7%)"  # 0.3 * 4
    # a skipped request has a primary latency only
    assert only_b["GET /b"].totals == {"primary": 1, "candidate": 0}
    assert set(only_b) == {"GET /b"}


def test_bar_geometry() -> None:
    h = build_histogram({"primary": {2: 3, 4: 1}, "candidate": {3: 2}})
    assert h is not None
    assert [t.text for t in h.ticks] == ["4", "8", "16"]
    tallest = max(h.bars, key=lambda b: b.h)
    assert tallest.h == pytest.approx(PLOT_H) and tallest.y == pytest.approx(0)
    by = {(b.side, b.title.split(":")[0]): b for b in h.bars}
    p4 = by[("primary", "primary 4-8 ms")]
    p16 = by[("primary", "primary 16-32 ms")]
    assert p16.h == pytest.approx(p4.h / 3)
    assert p16.y + p16.h == pytest.approx(h.baseline)
    assert build_histogram({"primary": {}, "candidate": {}}) is None


@pytest.mark.parametrize(
    ("bucket", "label", "span"),
    [(-1, "0", "< 1 ms"), (0, "1", "1-2 ms"), (10, "1.024s", "1,024-2,048 ms"),
     (15, "32.768s", ">= 32,768 ms")],
)  # fmt: skip
def test_labels(bucket: int, label: str, span: str) -> None:
    assert (edge_label(bucket), bucket_range(bucket)) == (label, span)


def test_histogram_is_inline_svg(db: str, tmp_path: Path) -> None:
    out = tmp_path / "h.html"
    render_report(db, str(out))
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    svg = soup.select_one('section[data-endpoint="GET /a"] figure.hist svg')
    assert svg is not None
    # primary buckets -1, 0, 1, 3 (the errored copy's primary), 6, 15; candidate 0, 2, 3, 8, 15
    assert len(svg.select("rect.primary")) == 6 and len(svg.select("rect.candidate")) == 5
    assert svg.select_one("rect title") is not None
