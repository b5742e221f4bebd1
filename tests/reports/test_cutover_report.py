"""The report's Cutover section, from a store written by the real code, against the SQL macro.

The figures in the section must be those of `shadow_route_figures` (the one definition
the rollback controller and `shadow check` read too); the tests run the macro on the
same store and compare, bucket by bucket.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag

from reports import build_context, render_report
from reports import cutover as cut
from shadow.store.writer import open_for_reading
from tests.reports.report_store import PWN
from tests.store_builder import ERROR, Call, CutoverCall, event, write_cutover_store, write_store

ORDERS = "/api/orders/{id}"
USERS = "/api/users"
ROLLBACK_REASON = f"{PWN} error rate 0.25 > 0.05"
EVIDENCE = {
    "window_s": 60,
    "error_rate": 0.25,
    "threshold": 0.05,
    "checks": {"failed": 2, "needed": 2},
    "<i>key</i>": PWN,
}
OK = {"ok": True}


def cutover_calls() -> list[Call]:
    """GET /api/orders/{id}, one a second: shadow (0-59 s), canary (60-149 s; the
    candidate answers even seconds and, from 120 s, fails every 4th: the primary answers
    instead), then legacy after the rollback. GET /api/users: candidate mode throughout.
    GET /api/plain: no mode (not under cutover)."""
    out: list[Call] = []
    for i in range(200):
        if i < 60:
            out.append(CutoverCall("GET " + ORDERS, OK, OK if i % 10 else {"ok": False}, at=i))
        elif i < 150:
            serves, fails = i % 2 == 0, i >= 120 and i % 4 == 0
            out.append(
                CutoverCall(
                    "GET " + ORDERS, OK, ERROR if fails else OK, mode="canary", at=i,
                    served_by="candidate" if serves and not fails else "primary",
                    fell_back=fails,
                )
            )  # fmt: skip
        else:
            out.append(CutoverCall("GET " + ORDERS, OK, None, mode="legacy", at=i))
    out += [
        CutoverCall("GET " + USERS, OK, OK, mode="candidate", served_by="candidate", at=2 * i)
        for i in range(40)
    ]
    out += [CutoverCall("GET /api/plain", OK, OK, mode=None, at=20 * i) for i in range(10)]
    return out


def cutover_events(run_id: str = "r1") -> list[Any]:
    return [
        event("flag_change", 59.5, ORDERS, run_id=run_id, before="shadow", after="canary",
              actor="alice", reason="10% canary", flag="api_orders_id"),
        event("flag_store", 100, None, run_id=run_id, reason="redis unreachable"),
        event("fallbacks", 130, ORDERS, run_id=run_id, reason="8 fallbacks in the last minute",
              evidence={"fallbacks": 8}),
        event("rollback", 149.5, ORDERS, run_id=run_id, before="canary", after="legacy",
              reason=ROLLBACK_REASON, evidence=EVIDENCE),
        event("notification", 150, ORDERS, run_id=run_id, evidence="HTTP 200 <b>ok</b>"),
    ]  # fmt: skip


def cutover_store(path: Path) -> str:
    return write_cutover_store(path, cutover_calls(), cutover_events())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, BeautifulSoup]:
    tmp = tmp_path_factory.mktemp("cutover")
    db = cutover_store(tmp / "cutover.duckdb")
    out = tmp / "report.html"
    render_report(db, str(out))
    html = out.read_text(encoding="utf-8")
    return db, html, BeautifulSoup(html, "html.parser")


def macro(db: str, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    con = open_for_reading(db, wait=5)
    try:
        cur = con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def figures(db: str, bucket_s: int | None) -> dict[tuple[str, Any], dict[str, Any]]:
    found = macro(db, "SELECT * FROM shadow_route_figures(NULL, NULL, NULL, ?)", [bucket_s])
    return {(r["route"], r["bucket"]): r for r in found}


def section(soup: BeautifulSoup, route: str) -> Tag:
    found = soup.select_one(f'section.route[data-route="{route}"]')
    assert isinstance(found, Tag), route
    return found


def value(tag: Tag | None) -> float | None:
    assert isinstance(tag, Tag)
    raw = str(tag["data-v"])
    return None if raw == "" else float(raw)


def bucket_width(soup: BeautifulSoup) -> int:
    h2 = soup.select_one("h2#cutover")
    assert isinstance(h2, Tag)
    return int(str(h2["data-bucket-s"]))


# --- the section ---------------------------------------------------------------------------


def test_section_lists_the_routes_under_cutover(report: tuple[str, str, BeautifulSoup]) -> None:
    _, _, soup = report
    assert soup.select_one("h2#cutover") is not None
    routes = [s["data-route"] for s in soup.select("section.route")]
    assert routes == [ORDERS, USERS]  # rolled back first; /api/plain has no mode
    orders = section(soup, ORDERS)
    assert orders.select_one('[data-k="mode"]').get_text(strip=True) == "legacy"  # type: ignore[union-attr]
    assert orders.select_one('[data-k="rollbacks"]').get_text(strip=True) == "1 rollback"  # type: ignore[union-attr]
    assert section(soup, USERS).select_one('[data-k="rollbacks"]') is None
    assert soup.select_one('[data-k="rollbacks"].bad') is not None  # the summary card
    assert soup.select_one('[data-k="cutover_routes"]').get_text(strip=True) == "2"  # type: ignore[union-attr]


def test_section_absent_without_cutover_data(tmp_path: Path) -> None:
    db = write_store(tmp_path / "plain.duckdb", [Call("GET /api/a", OK, OK) for _ in range(3)])
    out = tmp_path / "report.html"
    render_report(db, str(out))
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert soup.select_one("#cutover") is None
    assert soup.select_one("section.route") is None
    assert soup.select_one('[data-k="rollbacks"]') is None
    assert "Cutover" not in soup.get_text()


def test_section_follows_the_report_scope(tmp_path: Path) -> None:
    """Cutover data of another run does not bring the section into a run's report."""
    calls = [Call("GET /api/a", OK, OK, run_id="r1")] + [
        CutoverCall("GET /api/b", OK, OK, run_id="r2", mode="canary", at=i) for i in range(3)
    ]
    db = write_cutover_store(tmp_path / "s.duckdb", calls, cutover_events("r2"))
    out = tmp_path / "r1.html"
    render_report(db, str(out), run_id="r1")
    assert (
        BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser").select_one("#cutover") is None
    )
    render_report(db, str(out), run_id="r2")
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert [s["data-route"] for s in soup.select("section.route")] == [ORDERS, "/api/b"]


def test_events_only_is_enough(tmp_path: Path) -> None:
    """A store whose exchanges have no mode but that has events still shows the section."""
    db = write_cutover_store(
        tmp_path / "s.duckdb", [Call("GET /api/a", OK, OK)], [event("flag_store", 0, None)]
    )
    out = tmp_path / "report.html"
    render_report(db, str(out))
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert soup.select_one("#cutover") is not None
    assert soup.select("section.route") == []
    assert [r["data-kind"] for r in soup.select("#events tbody tr")] == ["flag_store"]


# --- one definition: the report's numbers are the macro's ---------------------------------


def test_route_totals_are_the_macros(report: tuple[str, str, BeautifulSoup]) -> None:
    db, _, soup = report
    totals = figures(db, None)
    for route in (ORDERS, USERS):
        want = totals[(route, None)]
        box = section(soup, route)
        for key in ("error_rate", "fallback_rate", "parity"):
            assert value(box.select_one(f'[data-k="{key}"]')) == want[key], (route, key)
        requests = box.select_one('[data-k="requests"]')
        assert requests is not None and requests.get_text(strip=True) == f"{want['requests']:,}"
    assert totals[(ORDERS, None)]["error_rate"] == pytest.approx(8 / 45)  # 120..148, every 4th


def test_every_bucket_is_the_macros(report: tuple[str, str, BeautifulSoup]) -> None:
    db, _, soup = report
    width = bucket_width(soup)
    assert width == 5  # 200 s of traffic: 40 buckets
    want = figures(db, width)
    for route in (ORDERS, USERS):
        rows = section(soup, route).select("table.buckets tbody tr")
        shown = {datetime.fromisoformat(str(tr["data-bucket"])): tr for tr in rows}
        mine = {b for (r, b) in want if r == route}
        assert mine <= set(shown)  # every bucket with traffic (and those with events only)
        for bucket, tr in shown.items():
            w = want.get((route, bucket), {})
            for col in ("error_rate", "fallback_rate", "parity", "mismatch_rate"):
                assert value(tr.select_one(f'[data-col="{col}"]')) == w.get(col), (bucket, col)


def test_a_bucket_error_rate_is_shadow_route_figures(
    report: tuple[str, str, BeautifulSoup],
) -> None:
    """The rate the report shows for a bucket is the macro's for that window."""
    db, _, soup = report
    width = bucket_width(soup)
    rows = section(soup, ORDERS).select("table.buckets tbody tr")
    with_errors = [tr for tr in rows if (value(tr.select_one('[data-col="error_rate"]')) or 0) > 0]
    assert with_errors, "the canary failed in some buckets"
    for tr in with_errors:
        start = datetime.fromisoformat(str(tr["data-bucket"]))
        window = macro(
            db,
            "SELECT error_rate, candidate_errors, asked FROM shadow_route_figures("
            "NULL, CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), NULL) WHERE route = ?",
            [start, start + timedelta(seconds=width), ORDERS],
        )[0]
        assert value(tr.select_one('[data-col="error_rate"]')) == window["error_rate"]
        assert 0 < window["candidate_errors"] <= window["asked"]


@pytest.mark.parametrize(
    "span", [0, 1, 23, 24, 59, 60, 199, 600, 3599, 3600, 86_399, 86_400, 7 * 86_400, 90 * 86_400]
)
def test_bucket_width_gives_at_most_60_buckets_and_20_for_a_run(span: int) -> None:
    width = cut.bucket_width(span)
    buckets = span // width + 1
    assert buckets <= cut.MAX_BUCKETS
    if span >= 24:
        assert buckets >= 20, (span, width)


def test_context_buckets_cover_the_scope(tmp_path: Path) -> None:
    db = cutover_store(tmp_path / "s.duckdb")
    con = open_for_reading(db, wait=5)
    try:
        ctx = build_context(con, db)
    finally:
        con.close()
    assert ctx.cutover is not None
    orders = ctx.cutover.routes[0]
    assert orders.route == ORDERS and orders.rollbacks == 1 and orders.flag_changes == 1
    lanes = [ln.name for ln in orders.chart.lanes]
    assert lanes == ["mode", "events", "parity", "candidate errors", "fallbacks"]
    assert 20 <= orders.chart.plot_w / cut.SLOT <= cut.MAX_BUCKETS


# --- timeline and events ------------------------------------------------------------------


def test_timeline_shows_modes_changes_and_rollbacks(
    report: tuple[str, str, BeautifulSoup],
) -> None:
    _, _, soup = report
    svg = section(soup, ORDERS).select_one("figure.timeline svg")
    assert svg is not None
    modes = [
        next(c for c in rect["class"] if c in cut.MODES)
        for rect in svg.select("rect.mode")
        if "carried" not in rect["class"]
    ]
    changes = [m for i, m in enumerate(modes) if i == 0 or modes[i - 1] != m]
    assert changes == ["shadow", "canary", "legacy"]
    assert {" ".join(line["class"]) for line in svg.select("line")} == {
        "rule flag_change",
        "rule rollback",
    }
    assert {c for circle in svg.select("circle") for c in circle["class"]} >= {
        "rollback",
        "flag_change",
        "fallbacks",
        "notification",
    }
    assert svg.select("rect.col.errors") and svg.select("rect.col.fallbacks")


def test_events_table(report: tuple[str, str, BeautifulSoup]) -> None:
    _, _, soup = report
    rows = soup.select("#events tbody tr")
    assert [r["data-kind"] for r in rows] == [
        "flag_change", "flag_store", "fallbacks", "rollback", "notification",
    ]  # fmt: skip
    flag = rows[0].find_all("td")
    assert flag[3].get_text(strip=True) == "shadow → canary"
    assert flag[4].get_text(strip=True) == "alice"
    assert "api_orders_id" in flag[2].get_text()
    assert rows[1].find_all("td")[2].get_text(strip=True) == "all routes"
    rollback = rows[3]
    terms = [dt.get_text() for dt in rollback.select("dl.evidence dt")]
    assert terms == ["window_s", "error_rate", "threshold", "checks.failed", "checks.needed",
                     "<i>key</i>"]  # fmt: skip
    assert rollback.select_one("td.evidence details") is None  # a rollback's evidence: open
    assert rows[2].select_one("td.evidence details") is not None  # others: folded
    assert rows[4].select_one("td.evidence pre").get_text() == "HTTP 200 <b>ok</b>"  # type: ignore[union-attr]


def test_hostile_reasons_and_evidence_are_escaped(report: tuple[str, str, BeautifulSoup]) -> None:
    _, html, soup = report
    assert PWN not in html
    assert "<i>key</i>" not in html and "<b>ok</b>" not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    rollback = soup.select_one('#events tr[data-kind="rollback"]')
    assert rollback is not None
    assert rollback.select_one("td.reason").get_text(strip=True) == ROLLBACK_REASON  # type: ignore[union-attr]
    assert PWN in [dd.get_text() for dd in rollback.select("dl.evidence dd")]
    assert len(soup.find_all("script")) == 1  # the report's own
    titles = [t.get_text() for t in soup.select("figure.timeline title")]
    assert any(PWN in t for t in titles)  # in the marker's tooltip, as text


def test_evidence_fields() -> None:
    assert cut.evidence_fields(None) == ([], None)
    assert cut.evidence_fields("not json") == ([], "not json")
    assert cut.evidence_fields("[1, 2]") == ([], "[\n  1,\n  2\n]")
    fields, text = cut.evidence_fields('{"a": {"b": 1, "c": [1]}, "d": "x", "e": null}')
    assert text is None
    assert fields == [("a.b", "1"), ("a.c", "[1]"), ("d", "x"), ("e", "null")]
    many, _ = cut.evidence_fields("{" + ", ".join(f'"k{i}": {i}' for i in range(50)) + "}")
    assert len(many) == cut.EVIDENCE_ITEMS + 1 and many[-1] == ("…", "10 more fields")


def test_events_are_capped_rollbacks_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cut, "MAX_EVENTS", 2)
    db = cutover_store(tmp_path / "s.duckdb")
    out = tmp_path / "report.html"
    render_report(db, str(out))
    soup = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    assert [r["data-kind"] for r in soup.select("#events tbody tr")] == ["flag_change", "rollback"]
    assert "2 of 5 events shown" in soup.get_text()
