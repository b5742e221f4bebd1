"""The overview's new parts, bounded sizes, and a self-contained, inert page."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pytest
from bs4 import BeautifulSoup

from reports import context, render_report
from reports.context import build_context
from reports.overview import never_exercised
from shadow.store.writer import open_for_reading
from tests.reports.report_store import DEMO_CONFIG, PWN, ROUTES, Call, build, demo_exchanges


def test_never_exercised_routes() -> None:
    seen = ["GET /a/{id}", "POST /b"]
    routes = [
        "GET /a/{id}",
        "get /b",
        "POST /b",
        "* /a/{id}",
        "ANY /c",
        "/b",
        "/d",
        " PUT /a/{id} ",
    ]
    assert never_exercised(routes, seen) == ["/d", "ANY /c", "PUT /a/{id}", "get /b"]


def test_demo_overview(tmp_path: Path) -> None:
    db = build(tmp_path / "d.duckdb", demo_exchanges(), config=DEMO_CONFIG)
    con = open_for_reading(db)
    try:
        ctx = build_context(con, db, routes=ROUTES)
    finally:
        con.close()
    assert ctx.unexercised == ["* /api/admin", "DELETE /api/orders/{id}"]
    users = next(e for e in ctx.endpoints if e.endpoint == "GET /api/users")
    assert (users.candidate_errors, users.sent) == (1, 2)
    assert users.candidate_error_rate == pytest.approx(50.0)
    assert users.tags == "errors"
    orders = ctx.endpoints[0]
    assert orders.endpoint == "GET /api/orders/{id}" and orders.tags == "failing"
    # primary 10, 10, 32, 33, 34, 10 ms
    assert orders.primary_p99 == pytest.approx(33.95)
    assert orders.latency is not None
    assert orders.latency.p95_ratio == pytest.approx(orders.candidate_p95 / orders.primary_p95)  # type: ignore[operator]
    assert (orders.latency.pairs, orders.latency.verdict) == (6, "too few")
    start = ctx.endpoints[-1]
    assert start.latency is not None
    assert (start.tags, start.candidate_error_rate, start.latency.p95_ratio) == (
        "uncompared",
        None,
        None,
    )


class CountingConnection:
    """Counts the rows each query hands to Python."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.fetched = 0

    def execute(self, sql: str, params: Any) -> CountingConnection:
        self.cur = self.con.execute(sql, params)
        return self

    @property
    def description(self) -> Any:
        return self.cur.description

    def fetchall(self) -> list[Any]:
        out = self.cur.fetchall()
        self.fetched += len(out)
        return out


def test_python_sees_a_bounded_number_of_rows(tmp_path: Path) -> None:
    one, two = {"items": [{"v": 1}]}, {"items": [{"v": 2}]}
    many = [Call(f"GET /e{i % 4}", one, two if i % 3 else one) for i in range(3000)]
    con = open_for_reading(build(tmp_path / "m.duckdb", many))
    try:
        counting = CountingConnection(con)
        ctx = build_context(counting, "m")  # type: ignore[arg-type]
    finally:
        con.close()
    assert ctx.summary.exchanges == 3000
    assert all(len(e.samples) == context.SAMPLES_PER_ENDPOINT for e in ctx.endpoints)
    # summary, runs, 4 endpoints, 4 clusters, histogram buckets, 12 samples, their differences
    assert counting.fetched < 100


def test_detail_sections_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "MAX_DETAIL_ENDPOINTS", 3)
    calls = [Call(f"GET /e{i}", {"v": 1}, {"v": 2 if i < 4 else 1}) for i in range(8)]
    db = build(tmp_path / "c.duckdb", calls)
    out = tmp_path / "c.html"
    render_report(db, str(out))
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert len(soup.select("#endpoints tbody tr")) == 8
    assert len(soup.select("section.endpoint")) == 3
    assert len(soup.select("#endpoints tr[data-anchor]")) == 3
    assert "5 more are in the table only" in soup.select_one("#not-detailed").get_text()  # type: ignore[union-attr]


def test_page_is_self_contained_and_inert(tmp_path: Path) -> None:
    hostile = f'GET /x/"><img src=x onerror=alert(1)>{PWN}'
    calls = [*demo_exchanges(), Call(hostile, {"a": PWN}, {"a": 1})]
    db = build(tmp_path / "s.duckdb", calls, config=DEMO_CONFIG)
    out = tmp_path / "s.html"
    render_report(db, str(out), routes=[*ROUTES, f"GET {PWN}"])
    html = out.read_text(encoding="utf-8")
    soup = BeautifulSoup(html, "html.parser")
    assert len(soup.find_all("script")) == 1 and not soup.find_all("img")
    assert PWN not in html and "<img" not in html
    csp = soup.find("meta", attrs={"http-equiv": "Content-Security-Policy"})
    assert csp is not None and "default-src 'none'" in str(csp["content"])
    # nothing is loaded from anywhere: no src, no external href, no CSS url() or @import
    assert not soup.select("[src]")
    assert all(str(a["href"]).startswith("#") for a in soup.select("[href]"))
    assert not re.search(r"url\(|@import", html)
    assert [t for t in soup.select("[data-endpoint]") if t["data-endpoint"] == hostile]  # as text
    assert "s3cr3t" not in html and "Bearer [REDACTED]" not in html


def test_section_labels_noise_and_accepted_apart(tmp_path: Path) -> None:
    db = build(tmp_path / "d.duckdb", demo_exchanges(), config=DEMO_CONFIG)
    out = tmp_path / "d.html"
    render_report(db, str(out))
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    section = soup.select_one('section[data-endpoint="GET /api/orders/{id}"]')
    assert section is not None
    real = [tr["data-path"] for tr in section.select("table.clusters.real tbody tr")]
    noise = section.select_one("div.tolerated.noise")
    accepted = section.select_one("div.tolerated.accepted")
    assert real == ["$.items[*].price"]
    assert noise is not None and accepted is not None
    assert "not counted against parity" in noise.h4.get_text()  # type: ignore[union-attr]
    assert [tr["data-path"] for tr in noise.select("tbody tr")] == ["$.generatedAt"]
    assert [tr["data-path"] for tr in accepted.select("tbody tr")] == ["$.etag"]
    assert "#1: etags differ by design" in accepted.get_text()
    curls = [pre.get_text() for pre in section.select(".curl pre")]
    assert curls[0].startswith("curl -sS 'http://primary.test:8000/api/orders/")
    assert curls[1].startswith("curl -sS 'http://cand.test:9000/api/orders/")
    assert "fill in [REDACTED] values" in section.get_text()
