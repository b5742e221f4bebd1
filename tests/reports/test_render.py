"""reports.render: the HTML report from a real DuckDB store, checked against SQL on that store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bs4 import BeautifulSoup, Tag

from reports import render_report
from shadow.errors import StoreError
from tests.reports.render_rows import (
    EXPECTED_ORDER,
    ROWS,
    XSS,
    build_db,
    cells,
    col,
    endpoint_rows,
    section_for,
    sql,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, BeautifulSoup]:
    tmp = tmp_path_factory.mktemp("report")
    db = build_db(tmp / "shadow.duckdb", ROWS)
    out = tmp / "report.html"
    render_report(db, str(out))
    html = out.read_text(encoding="utf-8")
    return db, html, BeautifulSoup(html, "html.parser")


def test_endpoints_table_one_row_per_endpoint_worst_first(
    report: tuple[str, str, BeautifulSoup],
) -> None:
    db, _, soup = report
    rows = endpoint_rows(soup)
    names = [r["data-endpoint"] for r in rows]
    assert names == EXPECTED_ORDER
    assert sorted(names) == sorted(r[0] for r in sql(db, "SELECT DISTINCT endpoint FROM exchanges"))
    assert cells(rows[1])[0].get_text(strip=True) == "GET /api/analysis/{id}"


def test_endpoint_numbers_match_sql(report: tuple[str, str, BeautifulSoup]) -> None:
    db, _, soup = report
    expected = {
        r[0]: r[1:]
        for r in sql(
            db,
            """
            SELECT endpoint, count(*),
                   count(*) FILTER (WHERE verdict = 'match'),
                   count(*) FILTER (WHERE verdict IN ('match', 'differ')),
                   count(*) FILTER (WHERE verdict = 'differ'),
                   count(*) FILTER (WHERE verdict IN ('match', 'differ')
                                    AND primary_status <> candidate_status),
                   count(*) FILTER (WHERE verdict = 'candidate_error'),
                   count(*) FILTER (WHERE verdict = 'skipped')
            FROM shadow_exchange_outcomes(NULL) GROUP BY endpoint
            """,
        )
    }
    for row in endpoint_rows(soup):
        requests, matched, compared, differ, mismatches, cand_errors, skipped = expected[
            row["data-endpoint"]
        ]
        c = col(row)
        assert int(str(c["requests"]["data-v"])) == requests
        assert c["requests"].get_text(strip=True) == str(requests)
        parity_text = c["parity"].get_text(strip=True)
        if compared:
            assert float(str(c["parity"]["data-v"])) == pytest.approx(100.0 * matched / compared)
            assert parity_text == f"{100.0 * matched / compared:.1f}%"
        else:
            assert c["parity"]["data-v"] == "-1"
            assert parity_text == "n/a"
        assert int(str(c["differed"]["data-v"])) == differ
        assert int(str(c["status_mismatches"]["data-v"])) == mismatches
        assert c["status_mismatches"].get_text(strip=True) == str(mismatches)
        assert int(str(c["candidate_errors"]["data-n"])) == cand_errors
        assert int(str(c["skipped"]["data-v"])) == skipped
    by_name = {r["data-endpoint"]: col(r) for r in endpoint_rows(soup)}
    assert by_name["GET /api/analysis/{id}"]["parity"].get_text(strip=True) == "25.0%"
    assert by_name["GET /api/analysis/{id}"]["status_mismatches"].get_text(strip=True) == "1"
    # the candidate error rate: 1 of the 3 copies sent
    assert by_name["GET /api/insights"]["candidate_errors"].get_text(" ", strip=True) == (
        "33.3% (1)"
    )
    assert by_name["GET /api/health"]["candidate_errors"].get_text(strip=True) == "0.0%"
    assert by_name["POST /api/start-analysis"]["candidate_errors"].get_text(strip=True) == "n/a"


def test_latency_columns_match_sql(report: tuple[str, str, BeautifulSoup]) -> None:
    """Both sides' quantiles over the same exchanges: compared, both answered, no lag."""
    db, _, soup = report
    expected = {
        r[0]: r[1:]
        for r in sql(
            db,
            """
            SELECT endpoint, quantile_cont(primary_ms, [0.5, 0.95, 0.99]) FILTER (WHERE fair),
                   quantile_cont(candidate_ms, [0.5, 0.95, 0.99]) FILTER (WHERE fair),
                   count(*) FILTER (WHERE fair)
            FROM (SELECT *, verdict IN ('match', 'differ') AND primary_error IS NULL
                            AND candidate_error IS NULL
                            AND (lag_ms IS NULL OR lag_ms <= 1 + 0.1 * candidate_ms) AS fair
                  FROM exchanges)
            GROUP BY endpoint
            """,
        )
    }
    for row in endpoint_rows(soup):
        primary, candidate, n = expected[row["data-endpoint"]]
        c = col(row)
        if primary is None:
            assert c["primary_latency"].get_text(strip=True) == "- / - / -"
            assert c["candidate_latency"].get_text(strip=True) == "- / - / -"
            assert c["p95_ratio"].get_text(strip=True) == "-"
            assert c["median_ratio"].get_text(strip=True) == "-"
        else:
            shown = c["primary_latency"].get_text(strip=True)
            assert shown == " / ".join(f"{v:.1f}" for v in primary)
            assert float(str(c["p95_ratio"]["data-v"])) == pytest.approx(
                candidate[1] / primary[1], rel=1e-5
            )
            assert float(str(c["median_ratio"]["data-v"])) == pytest.approx(
                candidate[0] / primary[0], rel=1e-5
            )
        # fewer than 50 pairs everywhere in this store: no verdict either way
        assert c["latency"].get_text(strip=True) == f"too few samples (n={n})"


def test_summary_cards(report: tuple[str, str, BeautifulSoup]) -> None:
    db, _, soup = report
    ((exchanges, compared, matched, differed, cand_errors, skipped, endpoints),) = sql(
        db,
        """
        SELECT count(*), count(*) FILTER (WHERE verdict IN ('match', 'differ')),
               count(*) FILTER (WHERE verdict = 'match'),
               count(*) FILTER (WHERE verdict = 'differ'),
               count(*) FILTER (WHERE verdict = 'candidate_error'),
               count(*) FILTER (WHERE verdict = 'skipped'), count(DISTINCT endpoint)
        FROM shadow_exchange_outcomes(NULL)
        """,
    )
    ((dropped,),) = sql(db, "SELECT sum(copies_dropped) FROM runs")
    cards = {el["data-k"]: el.get_text(strip=True) for el in soup.select("[data-k]")}
    assert cards == {
        "parity": f"{100.0 * matched / compared:.1f}%",
        "exchanges": str(exchanges),
        "endpoints": str(endpoints),
        "differed": str(differed),
        "candidate_errors": str(cand_errors),
        "skipped": str(skipped),
        "dropped": str(dropped),
        "tolerated": "0",
        "time_range": "2024-05-02 08:53:20 → 2024-05-02 08:53:32",
    }
    assert cards["parity"] == "54.5%"  # 6 of 11 compared
    assert cards["dropped"] == "8"


def test_field_table_most_frequent_paths(report: tuple[str, str, BeautifulSoup]) -> None:
    db, _, soup = report
    section = section_for(soup, "GET /api/analysis/{id}")
    table = section.find("table", class_="clusters")
    assert isinstance(table, Tag)
    got = [
        [td.get_text(strip=True) for td in tr.find_all("td")[:4]]
        for tr in table.find("tbody").find_all("tr")  # type: ignore[union-attr]
    ]
    expected = sql(
        db,
        """
        SELECT path, kind, count(DISTINCT exchange_id) FROM shadow_difference_outcomes(NULL)
        WHERE endpoint = 'GET /api/analysis/{id}' AND status = 'real' GROUP BY path, kind
        ORDER BY count(*) DESC, path
        """,
    )
    assert [g[:3] for g in got] == [[p, k, str(n)] for p, k, n in expected]
    assert got[0] == ["$.createdAt", "value_changed", "3", "75.0%"]  # 3 of 4 compared
    assert [g[0] for g in got] == ["$.createdAt", "$.metrics.avgOrderValue", "$status"]


def test_matching_endpoint_says_no_differences(report: tuple[str, str, BeautifulSoup]) -> None:
    _, _, soup = report
    section = section_for(soup, "GET /api/health")
    assert section.find("table", class_="clusters") is None
    assert "No differences in 2 compared exchanges" in section.get_text()
    skipped = section_for(soup, "POST /api/start-analysis")
    assert "Nothing compared" in skipped.get_text()


def test_samples_mark_differing_lines(report: tuple[str, str, BeautifulSoup]) -> None:
    _, _, soup = report
    section = section_for(soup, "GET /api/analysis/{id}")
    samples = section.find_all("details", class_="sample")
    assert len(samples) == 3  # the three differing exchanges, newest first
    newest = samples[0]
    assert newest.has_attr("open")
    marked = [m.get_text() for m in samples[1].select("pre span.m")]
    assert any('"createdAt"' in t for t in marked)
    assert any('"avgOrderValue"' in t for t in marked)
    assert not any('"id"' in t for t in marked)


def test_markup_in_bodies_is_escaped(report: tuple[str, str, BeautifulSoup]) -> None:
    _, html, soup = report
    scripts = soup.find_all("script")
    assert len(scripts) == 1  # the report's own
    assert "alert(1)" not in scripts[0].get_text()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the markup is there as text, in the diff table and the candidate body
    section = section_for(soup, "GET /api/reports")
    assert XSS in section.get_text()


def test_redacted_secrets_never_in_html(report: tuple[str, str, BeautifulSoup]) -> None:
    db, html, _ = report
    assert "top-secret-xyz" not in html
    assert "cookie-secret-123" not in html
    assert "[REDACTED]" in html
    # the store itself never had them either
    stored = sql(db, "SELECT request_headers FROM exchanges WHERE exchange_id = 'r1-x00001'")[0][0]
    assert dict(json.loads(stored))["Authorization"] == "[REDACTED]"


def test_run_filter(tmp_path: Path) -> None:
    db = build_db(tmp_path / "runs.duckdb", ROWS)
    out = tmp_path / "r2.html"
    summary = render_report(db, str(out), run_id="r2")
    assert (summary.exchanges, summary.differed, summary.endpoints, summary.dropped) == (1, 1, 1, 1)
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert [r["data-endpoint"] for r in endpoint_rows(soup)] == ["GET /api/other"]


def test_render_report_returns_summary_and_writes_atomically(tmp_path: Path) -> None:
    db = build_db(tmp_path / "s.duckdb", ROWS)
    out = tmp_path / "report.html"
    out.write_text("old")
    summary = render_report(db, str(out))
    assert summary.exchanges == len(ROWS)
    assert summary.parity == pytest.approx(100.0 * 6 / 11)
    assert "parity 54.5%" in summary.describe()
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report-")] == []


def test_empty_store_renders(tmp_path: Path) -> None:
    db = build_db(tmp_path / "e.duckdb", [])
    out = tmp_path / "e.html"
    summary = render_report(db, str(out))
    assert summary.exchanges == 0 and summary.parity is None
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert endpoint_rows(soup) == []
    assert soup.select_one('[data-k="parity"]').get_text(strip=True) == "n/a"  # type: ignore[union-attr]


def test_missing_store_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        render_report(str(tmp_path / "none.duckdb"), str(tmp_path / "out.html"))
    assert not (tmp_path / "out.html").exists()
