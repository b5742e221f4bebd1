"""Run comparison: parity per endpoint against a baseline run, in this store or another."""

from __future__ import annotations

from pathlib import Path

import pytest
from bs4 import BeautifulSoup, Tag

from reports import render_report
from reports.baseline import Delta
from reports.context import build_context
from reports.render import other_store_baseline
from shadow.errors import StoreError
from shadow.store.writer import open_for_reading
from tests.reports.report_store import Call, build


def run(run_id: str, spec: dict[str, tuple[int, int]]) -> list[Call]:
    """Exchanges of one run: endpoint -> (matching, differing)."""
    out = []
    for endpoint, (ok, bad) in spec.items():
        out += [Call(endpoint, {"v": 1}, {"v": 1}, run_id=run_id) for _ in range(ok)]
        out += [Call(endpoint, {"v": 1}, {"v": 2}, run_id=run_id) for _ in range(bad)]
    return out


BEFORE = {"GET /same": (4, 0), "GET /worse": (4, 0), "GET /better": (1, 1), "GET /gone": (2, 0)}
AFTER = {"GET /same": (8, 0), "GET /worse": (3, 1), "GET /better": (2, 0), "GET /new": (1, 1)}


@pytest.fixture
def two_runs(tmp_path: Path) -> str:
    return build(tmp_path / "two.duckdb", run("old", BEFORE) + run("new", AFTER), ("old", "new"))


def comparison_rows(html: str) -> dict[str, Tag]:
    soup = BeautifulSoup(html, "html.parser")
    table = soup.find("table", id="comparison-table")
    assert isinstance(table, Tag)
    return {tr["data-endpoint"]: tr for tr in table.find_all("tr", attrs={"data-endpoint": True})}  # type: ignore[misc]


def test_deltas_per_endpoint(two_runs: str) -> None:
    con = open_for_reading(two_runs)
    try:
        from reports.baseline import snapshot

        base = snapshot(con, "old", "run old")
        ctx = build_context(con, two_runs, "new", baseline=base)
    finally:
        con.close()
    c = ctx.comparison
    assert c is not None
    got = {d.endpoint: d for d in c.rows}
    assert [d.change for d in c.rows] == ["worse", "new", "removed", "better", "same"]
    assert got["GET /worse"] == Delta(
        "GET /worse", "worse", 100.0, 75.0, 4, 4, got["GET /worse"].anchor
    )
    assert got["GET /worse"].delta == pytest.approx(-25.0)
    assert (got["GET /better"].before, got["GET /better"].after) == (50.0, 100.0)
    assert (got["GET /new"].change, got["GET /new"].before, got["GET /new"].after) == (
        "new",
        None,
        50.0,
    )
    assert (got["GET /gone"].change, got["GET /gone"].requests_after) == ("removed", 0)
    assert got["GET /gone"].anchor is None and got["GET /worse"].anchor is not None
    assert (c.before, c.after) == (pytest.approx(100 * 11 / 12), pytest.approx(100 * 14 / 16))
    # the overview knows each current endpoint's change, for the filter
    worse = next(e for e in ctx.endpoints if e.endpoint == "GET /worse")
    assert worse.delta is not None and "worse" in worse.tags.split()


def test_baseline_in_same_store_reports_the_latest_other_run(two_runs: str, tmp_path: Path) -> None:
    out = tmp_path / "cmp.html"
    summary = render_report(two_runs, str(out), baseline="old")
    assert summary.exchanges == 16  # the "new" run only
    html = out.read_text(encoding="utf-8")
    rows = comparison_rows(html)
    assert rows["GET /worse"]["data-change"] == "worse"
    assert "▼ worse" in rows["GET /worse"].get_text()
    assert "-25.0 pp" in rows["GET /worse"].get_text()
    assert rows["GET /better"]["data-change"] == "better"
    assert rows["GET /gone"]["data-change"] == "removed"
    assert rows["GET /new"]["data-change"] == "new"
    soup = BeautifulSoup(html, "html.parser")
    assert soup.select_one('[data-k="parity_delta"]').get_text(strip=True) == "-4.2 pp"  # type: ignore[union-attr]
    assert soup.select_one('option[value="worse"]') is not None


def test_baseline_from_another_store_defaults_to_its_latest_run(tmp_path: Path) -> None:
    other = build(
        tmp_path / "other.duckdb", run("a", {"GET /x": (1, 1)}) + run("b", BEFORE), ("a", "b")
    )
    current = build(tmp_path / "cur.duckdb", run("c", AFTER), ("c",))
    base = other_store_baseline(other, None)
    assert base.run_id == "b" and base.label == f"run b of {other}"
    out = tmp_path / "x.html"
    render_report(current, str(out), baseline_db=other)
    rows = comparison_rows(out.read_text(encoding="utf-8"))
    assert set(rows) == set(BEFORE) | set(AFTER)
    render_report(current, str(out), baseline="a", baseline_db=other)
    rows = comparison_rows(out.read_text(encoding="utf-8"))
    assert rows["GET /x"]["data-change"] == "removed"


def test_unknown_baseline_is_a_store_error(two_runs: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="baseline run 'nope' not found"):
        render_report(two_runs, str(tmp_path / "o.html"), baseline="nope")
    only = build(tmp_path / "one.duckdb", run("solo", {"GET /x": (1, 0)}), ("solo",))
    with pytest.raises(StoreError, match="no run besides baseline"):
        render_report(only, str(tmp_path / "o.html"), baseline="solo")
    assert not (tmp_path / "o.html").exists()
