"""The report's Data section: tables compared by the real `shadow data diff`, on SQLite.

Every number the section shows is checked against `shadow_data_tables` (and its
columns and differences) queried on the same store: the report never computes one.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag

from reports import data as data_report
from reports import render_report
from shadow.store.writer import reading
from tests.data_diff_store import (
    MARKUP,
    NEW_ROWS,
    OLD_ROWS,
    data_diff,
    data_tables,
    sqlite_pair,
)
from tests.reports.report_store import Call, build, demo_exchanges

FIGURES = ("old_rows", "new_rows", "differing_rows", "changed_rows", "missing_rows",
           "extra_rows", "duplicate_keys", "in_flight", "rows_read", "segments_read")  # fmt: skip


def render(db: Path | str, out: Path, **kw: Any) -> BeautifulSoup:
    render_report(str(db), str(out), **kw)
    return BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")


def one(node: Tag, selector: str) -> Tag:
    found = node.select_one(selector)
    assert found is not None, selector
    return found


def text(node: Tag, selector: str) -> str:
    return one(node, selector).get_text(" ", strip=True)


def card(page: BeautifulSoup, table: str) -> Tag:
    found = [s for s in page.select("section.data-table") if s["data-table"] == table]
    assert len(found) == 1, [s["data-table"] for s in page.select("section.data-table")]
    return found[0]


def figure(section: Tag, name: str) -> int:
    cell = section.select_one(f'[data-k="{name}"]')
    assert cell is not None, name
    return int(str(cell["data-v"]))


def query(db: str, sql: str) -> list[tuple[Any, ...]]:
    with reading(db) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def data_only(tmp_path: Path) -> str:
    db = tmp_path / "data.duckdb"
    old, new = sqlite_pair(tmp_path)
    assert data_diff(db, old, new).exit_code == 1  # rows differ
    return str(db)


def test_the_section_shows_the_macro_figures(data_only: str, tmp_path: Path) -> None:
    page = render(data_only, tmp_path / "r.html")
    (macro,) = data_tables(data_only).values()
    t = card(page, "t")
    for name in FIGURES:
        assert figure(t, name) == macro[name], name
    assert macro["differing_rows"] == 4  # 2 changed, 1 only in old, 1 only in new
    assert text(t, '[data-k="verdict"]') == "4 differing rows"
    assert text(t, '[data-k="rows_read"]') == (
        f"{macro['rows_read']} ({macro['rows_read_old']} of {macro['old_rows']} old, "
        f"{macro['rows_read_new']} of {macro['new_rows']} new)"
    )
    assert text(t, '[data-k="segments_read"]') == (
        f"{macro['segments_read']} of {macro['segments_checked']} checked"
    )
    assert text(t, '[data-k="old_url"]') == macro["old_url"]
    assert text(t, '[data-k="new_url"]') == macro["new_url"]
    assert text(t, '[data-k="key"]') == "id"
    assert macro["run_id"] in text(t, '[data-k="run"]')
    # the differing columns and their changed rows, as shadow_data_columns has them
    columns = {
        str(tr["data-column"]): int(str(one(tr, "td.num")["data-v"]))
        for tr in t.select("table.data-columns tbody tr")
    }
    in_store = "SELECT column_name, changed_rows FROM shadow_data_columns(NULL)"
    assert columns == dict(query(data_only, in_store)) == {"name": 2, "v": 1}
    # every stored difference (5: fewer than the sample), by row key then path
    rows = t.select("table.data-diffs tr[data-path]")
    shown = [(str(tr["data-path"]), str(tr["data-kind"])) for tr in rows]
    in_store = "SELECT path, kind FROM shadow_data_differences(NULL) ORDER BY row_key, path"
    assert shown == query(data_only, in_store)
    assert [k for _, k in shown] == ["value_changed", "value_changed", "removed",
                                     "value_changed", "added"]  # fmt: skip
    # the summary card, and the store's only run is shown as a table diff
    assert text(page, '[data-k="data_tables_differing"]') == "1 / 1"
    (run,) = page.select("#runs tbody tr")
    assert run["data-run-kind"] == "data" and "data:t" in run.get_text()


def test_values_are_text_absent_sides_are_marked(data_only: str, tmp_path: Path) -> None:
    t = card(render(data_only, tmp_path / "r.html"), "t")
    cells = {
        str(tr["data-path"]): [td.get_text(strip=True) for td in tr.select("td.value")]
        for tr in t.select("table.data-diffs tr[data-path]")
    }
    assert cells["$row[id=2].name"] == ['"b"', '"B"']  # JSON text as stored
    assert cells["$row[id=2].v"] == ["2.0", "2.5"]
    assert cells["$row[id=3]"] == ['{"name":"c","v":3.0}', "(absent)"]  # only in old
    assert cells["$row[id=5]"] == ["(absent)", '{"name":"e","v":5.0}']  # only in new
    assert cells["$row[id=4].name"] == [f'"{MARKUP}"', '"d"']


def test_nulls_and_repeated_keys_are_said_as_stored(tmp_path: Path) -> None:
    old_rows = [(1, None, 1.0), (2, "b", None), (3, "x", 1.0), (3, "y", 1.0)]
    new_rows = [(1, "x", 1.0), (2, "b", 2.0), (3, "x", 1.0)]
    db = tmp_path / "n.duckdb"
    old, new = sqlite_pair(tmp_path, old_rows, new_rows, unique=False)
    assert data_diff(db, old, new).exit_code == 1
    macro = data_tables(db)["t"]
    t = card(render(db, tmp_path / "n.html"), "t")
    assert figure(t, "duplicate_keys") == macro["duplicate_keys"] == 1
    assert figure(t, "differing_rows") == macro["differing_rows"]
    cells = {
        str(tr["data-path"]): [td.get_text(strip=True) for td in tr.select("td.value")]
        for tr in t.select("table.data-diffs tr[data-path]")
    }
    stored = query(str(db), "SELECT path, kind, old_value, new_value "
                            "FROM shadow_data_differences(NULL)")  # fmt: skip
    assert {path for path, *_ in stored} == set(cells)
    for path, kind, old_value, new_value in stored:
        for value, cell in zip((old_value, new_value), cells[path], strict=True):
            if value is not None:
                assert cell == value, path  # the JSON text as stored
            else:  # a NULL of the database, or a side holding the key at most once
                assert cell == ("at most 1" if kind == "duplicate" else "null"), path
    assert cells["$row[id=1].name"] == ["null", '"x"']
    assert cells["$row[id=3]"][0] == "2"  # rows holding the key in old


def test_a_data_only_store_hides_the_traffic_sections(data_only: str, tmp_path: Path) -> None:
    summary = render_report(data_only, str(tmp_path / "r.html"))
    page = BeautifulSoup((tmp_path / "r.html").read_text(encoding="utf-8"), "html.parser")
    assert summary.describe() == "1 of 1 data tables differ"
    assert page.select_one("#data") is not None
    assert page.select_one("#endpoints") is None and page.select_one("#expand-all") is None
    assert not page.select('[data-k="parity"]')
    (script,) = page.find_all("script")
    assert not script.get_text(strip=True)  # the endpoint table's script has nothing to do


def test_an_http_store_has_no_data_section(tmp_path: Path) -> None:
    db = build(tmp_path / "h.duckdb", demo_exchanges())
    summary = render_report(db, str(tmp_path / "h.html"))
    page = BeautifulSoup((tmp_path / "h.html").read_text(encoding="utf-8"), "html.parser")
    assert page.select_one("#data") is None and not page.select("section.data-table")
    assert not page.select('[data-k="data_tables_differing"]')
    assert page.select("#endpoints tbody tr") and summary.data_tables == 0
    assert "data tables" not in summary.describe()


def test_a_store_with_both_renders_both(tmp_path: Path) -> None:
    db = build(tmp_path / "both.duckdb", demo_exchanges())
    http_only = tmp_path / "http.duckdb"
    shutil.copy(db, http_only)
    old, new = sqlite_pair(tmp_path)
    assert data_diff(db, old, new).exit_code == 1
    page = render(db, tmp_path / "both.html")
    before = render(http_only, tmp_path / "http.html")
    # the traffic sections are those of the same store without the table diff
    assert text(page, '[data-k="parity"]') == text(before, '[data-k="parity"]')
    endpoints = [str(tr["data-endpoint"]) for tr in page.select("#endpoints tbody tr")]
    assert endpoints == [str(tr["data-endpoint"]) for tr in before.select("#endpoints tbody tr")]
    assert len(page.select("section.endpoint")) == len(before.select("section.endpoint"))
    assert figure(card(page, "t"), "differing_rows") == data_tables(db)["t"]["differing_rows"]
    kinds = [tr.get("data-run-kind") for tr in page.select("#runs tbody tr")]
    assert kinds == [None, "data"]
    assert page.select_one("#expand-all") is not None
    assert text(page, '[data-k="data_tables_differing"]') == "1 / 1"


def test_each_table_shows_its_latest_diff_or_the_runs(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    old, new = sqlite_pair(tmp_path)
    assert data_diff(db, old, new).exit_code == 1
    (first,) = data_tables(db).values()
    same_old, same_new = sqlite_pair(tmp_path, OLD_ROWS, OLD_ROWS, prefix="same-")
    assert data_diff(db, same_old, same_new).exit_code == 0  # the table again, now agreeing
    other_old, other_new = sqlite_pair(tmp_path, [(1, "x", 1.0)], [(1, "y", 1.0)], "u", "u-")
    assert data_diff(db, other_old, other_new, table="u").exit_code == 1
    latest = data_tables(db)
    assert latest["t"]["run_id"] != first["run_id"] and latest["t"]["differing_rows"] == 0

    page = render(db, tmp_path / "all.html")
    tables = [s["data-table"] for s in page.select("section.data-table")]
    assert tables == ["u", "t"]  # those that differ first
    assert card(page, "t")["data-run"] == latest["t"]["run_id"]
    assert figure(card(page, "t"), "differing_rows") == 0
    assert "agree" in text(card(page, "t"), '[data-k="verdict"]')
    assert not card(page, "t").select("table.data-diffs")
    assert text(page, '[data-k="data_tables_differing"]') == "1 / 2"

    scoped = render(db, tmp_path / "first.html", run_id=first["run_id"])
    assert [s["data-table"] for s in scoped.select("section.data-table")] == ["t"]
    for name in FIGURES:
        assert figure(card(scoped, "t"), name) == first[name], name
    assert f"run {first['run_id']}" in text(scoped, "header .meta")


def test_a_baseline_compares_runs_of_traffic_not_table_diffs(tmp_path: Path) -> None:
    calls = [Call("GET /a", {"v": 1}, {"v": 2}, run_id="r1"),
             Call("GET /a", {"v": 1}, {"v": 1}, run_id="r2")]  # fmt: skip
    db = build(tmp_path / "b.duckdb", calls)
    old, new = sqlite_pair(tmp_path)
    assert data_diff(db, old, new).exit_code == 1  # the newest run of the store
    page = render(db, tmp_path / "b.html", baseline="r1")
    assert "run r2" in text(page, "header .meta")
    assert text(page, '[data-k="parity_delta"]') == "+100.0 pp"
    other = tmp_path / "other.duckdb"
    shutil.copy(db, other)
    page = render(db, tmp_path / "c.html", baseline_db=str(other))  # its latest run: r2
    delta = one(page, '[data-k="parity_delta"]').parent
    assert delta is not None and f"vs baseline run r2 of {other}" in text(delta, ".k")


def test_markup_in_names_and_values_is_text(tmp_path: Path) -> None:
    table = f"t{MARKUP}"
    db = tmp_path / "m.duckdb"
    old, new = sqlite_pair(tmp_path, table=table)
    assert data_diff(db, old, new, table=table).exit_code == 1
    out = tmp_path / "m.html"
    page = render(db, out)
    html = out.read_text(encoding="utf-8")
    assert MARKUP not in html
    assert len(page.find_all("script")) == 1  # the page's own (empty) script only
    t = card(page, table)  # the name, as text
    assert MARKUP in text(t, "h3")
    assert MARKUP in text(t, 'tr[data-path="$row[id=4].name"]')


def test_samples_and_values_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    long = "x" * (data_report.VALUE_CHARS * 3)
    old_rows = [(i, f"n{i}", 1.0) for i in range(1, 31)] + [(31, long, 1.0)]
    new_rows = [(i, f"m{i}", 1.0) for i in range(1, 31)] + [(31, "short", 1.0)]
    db = tmp_path / "big.duckdb"
    old, new = sqlite_pair(tmp_path, old_rows, new_rows)
    assert data_diff(db, old, new).exit_code == 1
    monkeypatch.setattr(data_report, "DIFFERENCES_PER_TABLE", 40)
    t = card(render(db, tmp_path / "all.html"), "t")
    old_cell = one(t, 'tr[data-path="$row[id=31].name"] td.old')
    assert one(old_cell, ".cut") is not None
    assert len(one(old_cell, "code").get_text()) == data_report.VALUE_CHARS

    monkeypatch.setattr(data_report, "DIFFERENCES_PER_TABLE", 20)
    t = card(render(db, tmp_path / "few.html"), "t")
    assert len(t.select("table.data-diffs tr[data-path]")) == 20
    stored = query(str(db), "SELECT count(*) FROM shadow_data_differences(NULL)")[0][0]
    assert stored == 31
    assert "the first 20 of 31 stored" in text(t, "h4 .muted")
    assert figure(t, "differing_rows") == data_tables(db)["t"]["differing_rows"] == 31


def test_rows_not_stored_and_columns_not_compared_are_said(tmp_path: Path) -> None:
    old, new = sqlite_pair(tmp_path, OLD_ROWS, NEW_ROWS)
    con = sqlite3.connect(new)
    con.execute("ALTER TABLE t ADD COLUMN extra TEXT")
    con.commit()
    con.close()
    db = tmp_path / "n.duckdb"
    assert data_diff(db, old, new, "--max-rows", "1").exit_code == 1
    macro = data_tables(db)["t"]
    t = card(render(db, tmp_path / "n.html"), "t")
    assert figure(t, "rows_dropped") == macro["rows_dropped"] > 0
    assert figure(t, "differing_rows") == macro["differing_rows"] == 4
    assert "only in new: extra" in text(t, '[data-k="not_compared"]')
