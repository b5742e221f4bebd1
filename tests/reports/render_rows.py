"""The stored traffic the render tests check the HTML against, and helpers to read both."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Tag

from shadow.store.writer import Run, open_for_reading
from tests.reports.report_store import ERROR, T0, Call, build

SECRET = "Bearer top-secret-xyz"
COOKIE_SECRET = "session=cookie-secret-123"
XSS = "<script>alert(1)</script>"
ANALYSIS = "GET /api/analysis/{id}"


def analysis(created: str, aov: float) -> dict[str, Any]:
    return {"id": 1, "createdAt": created, "metrics": {"avgOrderValue": aov}}


BEFORE = analysis("2024-05-02T09:25:00Z", 204.63)  # what the primary answers
LATER = analysis("2024-05-02T09:26:00Z", 204.63)  # createdAt differs
ROUNDED = analysis("2024-05-02T09:26:00Z", 204.62)  # createdAt and avgOrderValue differ
OK = {"ok": True}

_CALLS = [
    # GET /api/analysis/{id}: 1 match, 3 differ (one with a status mismatch) -> 25 %
    Call(ANALYSIS, BEFORE, BEFORE),
    Call(ANALYSIS, BEFORE, LATER,
         headers=(("Authorization", SECRET), ("Cookie", COOKIE_SECRET), ("Accept", "*/*"))),
    Call(ANALYSIS, BEFORE, ROUNDED),
    Call(ANALYSIS, BEFORE, LATER, candidate_status=404),
    # GET /api/reports: 1 match, 1 differ carrying markup -> 50 %
    Call("GET /api/reports", {"note": "plain"}, {"note": "plain"}),
    Call("GET /api/reports", {"note": "plain"}, {"note": XSS}),
    # GET /api/insights: 2 match, 1 candidate error -> 100 %, 1 error
    Call("GET /api/insights", OK, OK),
    Call("GET /api/insights", OK, OK),
    Call("GET /api/insights", OK, ERROR),
    # GET /api/health: 2 match -> 100 %, no errors
    Call("GET /api/health", OK, OK),
    Call("GET /api/health", OK, OK),
    # POST /api/start-analysis: skipped only -> not compared, last
    Call("POST /api/start-analysis", OK, None, skip_reason="POST is not copied"),
    # a second run, excluded when filtering by run
    Call("GET /api/other", BEFORE, LATER, run_id="r2"),
]  # fmt: skip
# Latencies: the primary answers in 10 + i ms, the candidate in 20 + i (an error in 5000).
ROWS = [
    replace(c, primary_ms=10.0 + i, candidate_ms=5000.0 if c.candidate == ERROR else 20.0 + i)
    for i, c in enumerate(_CALLS)
]
EXPECTED_ORDER = [
    "GET /api/other",  # 0 %
    "GET /api/analysis/{id}",  # 25 %
    "GET /api/reports",  # 50 %
    "GET /api/insights",  # 100 %, 1 candidate error
    "GET /api/health",
    "POST /api/start-analysis",
]


def build_db(path: Path, rows: list[Call]) -> str:
    """The store of `rows`, judged by the real evaluator; runs r1 (7 copies dropped), r2 (1)."""
    runs = [
        Run("r1", "proxy", T0, copies_dropped=7),
        Run("r2", "proxy", T0 + 10_000, copies_dropped=1),
    ]
    return build(path, rows, runs)


def sql(db: str, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = open_for_reading(db, wait=5)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def endpoint_rows(soup: BeautifulSoup) -> list[Tag]:
    table = soup.find("table", id="endpoints")
    assert isinstance(table, Tag)
    return table.find("tbody").find_all("tr")  # type: ignore[union-attr]


def cells(row: Tag) -> list[Tag]:
    return row.find_all("td")


def col(row: Tag) -> dict[str, Tag]:
    return {str(td["data-col"]): td for td in cells(row)}


def section_for(soup: BeautifulSoup, endpoint: str) -> Tag:
    row = soup.find("tr", attrs={"data-endpoint": endpoint})
    assert isinstance(row, Tag)
    anchor = row.find("a")["href"].lstrip("#")  # type: ignore[index,union-attr]
    section = soup.find("section", id=anchor)
    assert isinstance(section, Tag)
    assert section.find("h3").get_text().startswith(endpoint)  # type: ignore[union-attr]
    return section
