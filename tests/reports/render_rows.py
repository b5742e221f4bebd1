"""The stored traffic the render tests check the HTML against, and helpers to read both."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Tag

from comparators import Comparison, Difference, Kind, Payload, Verdict
from shadow.model import BackendResponse, Exchange, Request
from shadow.records import difference_rows, exchange_row
from shadow.store import Run, StoreWriter, open_for_reading

JSON = (("content-type", "application/json"),)
SECRET = "Bearer top-secret-xyz"
COOKIE_SECRET = "session=cookie-secret-123"
XSS = "<script>alert(1)</script>"


@dataclass
class Row:
    endpoint: str
    verdict: Verdict
    diffs: tuple[Difference, ...] = ()
    primary_status: int = 200
    candidate_status: int = 200
    primary_body: bytes = b'{"ok": true}'
    candidate_body: bytes = b'{"ok": true}'
    headers: tuple[tuple[str, str], ...] = ()
    run_id: str = "r1"
    extra: dict[str, Any] = field(default_factory=dict)


def analysis_body(created: str, aov: float) -> bytes:
    return json.dumps({"id": 1, "createdAt": created, "metrics": {"avgOrderValue": aov}}).encode()


CREATED = Difference(
    "$.createdAt", Kind.VALUE_CHANGED, "2024-05-02T09:25:00.000Z", "2024-05-02T09:25:00Z"
)
AOV = Difference("$.metrics.avgOrderValue", Kind.VALUE_CHANGED, 204.63, 204.62)
STATUS = Difference("$status", Kind.STATUS, 200, 404)

ROWS = [
    # GET /api/analysis/{id}: 1 match, 3 differ (one with a status mismatch) -> 25 %
    Row("GET /api/analysis/{id}", Verdict.MATCH),
    Row(
        "GET /api/analysis/{id}",
        Verdict.DIFFER,
        (CREATED,),
        primary_body=analysis_body("2024-05-02T09:25:00.000Z", 1.5),
        candidate_body=analysis_body("2024-05-02T09:25:00Z", 1.5),
        headers=(("Authorization", SECRET), ("Cookie", COOKIE_SECRET), ("Accept", "*/*")),
    ),
    Row(
        "GET /api/analysis/{id}",
        Verdict.DIFFER,
        (CREATED, AOV),
        primary_body=analysis_body("2024-05-02T09:25:00.000Z", 204.63),
        candidate_body=analysis_body("2024-05-02T09:25:00Z", 204.62),
    ),
    Row("GET /api/analysis/{id}", Verdict.DIFFER, (STATUS, CREATED), candidate_status=404),
    # GET /api/reports: 1 match, 1 differ carrying markup -> 50 %
    Row("GET /api/reports", Verdict.MATCH),
    Row(
        "GET /api/reports",
        Verdict.DIFFER,
        (Difference("$.note", Kind.VALUE_CHANGED, "plain", XSS),),
        primary_body=b'{"note": "plain"}',
        candidate_body=json.dumps({"note": XSS}).encode(),
    ),
    # GET /api/insights: 2 match, 1 candidate error -> 100 %, 1 error
    Row("GET /api/insights", Verdict.MATCH),
    Row("GET /api/insights", Verdict.MATCH),
    Row(
        "GET /api/insights",
        Verdict.CANDIDATE_ERROR,
        extra={"candidate_error": "timeout after 5000 ms"},
    ),
    # GET /api/health: 2 match -> 100 %, no errors
    Row("GET /api/health", Verdict.MATCH),
    Row("GET /api/health", Verdict.MATCH),
    # POST /api/start-analysis: skipped only -> not compared, last
    Row("POST /api/start-analysis", Verdict.SKIPPED, extra={"skip_reason": "POST is not copied"}),
    # a second run, excluded when filtering by run
    Row("GET /api/other", Verdict.DIFFER, (CREATED,), run_id="r2"),
]
EXPECTED_ORDER = [
    "GET /api/other",  # 0 %
    "GET /api/analysis/{id}",  # 25 %
    "GET /api/reports",  # 50 %
    "GET /api/insights",  # 100 %, 1 candidate error
    "GET /api/health",
    "POST /api/start-analysis",
]


def exchange_for(i: int, row: Row) -> Exchange:
    method, template = row.endpoint.split(" ", 1)
    path = template.replace("{id}", str(i))
    primary = BackendResponse(Payload(row.primary_status, JSON, row.primary_body), 10.0 + i)
    candidate: BackendResponse | None
    if row.verdict is Verdict.SKIPPED:
        candidate = None
    elif row.verdict is Verdict.CANDIDATE_ERROR:
        candidate = BackendResponse.failed(row.extra["candidate_error"], 5000.0)
    else:
        candidate = BackendResponse(
            Payload(row.candidate_status, JSON, row.candidate_body), 20.0 + i
        )
    return Exchange(
        id=f"ex{i:02d}",
        request=Request(method, path, "", row.headers),
        primary=primary,
        candidate=candidate,
        endpoint=row.endpoint,
        started_at=1_714_640_000.0 + i,
        skip_reason=row.extra.get("skip_reason"),
    )


def build_db(path: Path, rows: list[Row]) -> str:
    writer = StoreWriter(str(path))
    writer.run_changed(Run("r1", "proxy", 1_714_640_000.0, copies_dropped=7))
    writer.run_changed(Run("r2", "proxy", 1_714_650_000.0, copies_dropped=1))
    for i, row in enumerate(rows):
        ex = exchange_for(i, row)
        cmp = Comparison(row.verdict, row.diffs, body_kind="json")
        writer.add(exchange_row(ex, cmp, row.run_id), difference_rows(ex, cmp, row.run_id))
    writer.flush()
    return str(path)


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
