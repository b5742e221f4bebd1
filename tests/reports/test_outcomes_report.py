"""The report judges at read time: secondary evidence, accepted entries, shuffled lists."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag

from reports import render_report
from reports.overview import Summary
from shadow.config.loader import Accepted
from tests.reports.render_rows import col, endpoint_rows, section_for, sql
from tests.reports.report_store import DEMO_CONFIG, ERROR, Call, build, demo_exchanges

FEED = "GET /api/feed/{id}"
PRICES = "GET /api/prices/{id}"


def render(db: str, out: Path, **kw: Any) -> tuple[Summary, BeautifulSoup]:
    summary = render_report(db, str(out), **kw)
    return summary, BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")


def stat(section: Tag, name: str) -> str | None:
    """The value of one figure in an endpoint section's stats list (None: not shown)."""
    for dt in section.select(".stats dt"):
        if dt.get_text(strip=True) == name:
            return dt.find_next_sibling("dd").get_text(" ", strip=True)  # type: ignore[union-attr]
    return None


def cluster_paths(section: Tag, table: str) -> list[str]:
    return [str(tr["data-path"]) for tr in section.select(f"{table} tbody tr")]


# --- (a) a secondary that errored or answered another status is no evidence -----------


def test_report_shows_exchanges_whose_secondary_was_unusable(tmp_path: Path) -> None:
    primary = {"id": 1, "generatedAt": "09:00"}
    candidate = {"id": 1, "generatedAt": "09:01"}
    varies = {"id": 1, "generatedAt": "09:02"}  # the legacy side varies there too
    calls = [
        Call(FEED, primary, candidate, secondary=ERROR),  # no answer
        Call(FEED, primary, candidate, secondary=varies, secondary_status=503),  # another status
        Call(FEED, primary, candidate, secondary=varies),  # usable: evidence of noise
        Call(FEED, primary, primary),  # no secondary asked: not unusable either
        Call("GET /api/ok", {"ok": True}, {"ok": True}, secondary={"ok": True}),
    ]
    db = build(tmp_path / "u.duckdb", calls)
    summary, soup = render(db, tmp_path / "u.html")

    assert summary.secondary_unusable == 2
    card = soup.select_one('[data-k="secondary_unusable"]')
    assert card is not None and card.get_text(strip=True) == "2"
    assert "secondary was unusable" in card.find_parent("div").get_text()  # type: ignore[union-attr]
    feed = section_for(soup, FEED)
    assert stat(feed, "secondary unusable") == "2 exchanges"
    assert stat(section_for(soup, "GET /api/ok"), "secondary unusable") is None
    # Only the usable secondary explains generatedAt: the other two exchanges differ.
    assert (stat(feed, "differ"), stat(feed, "only noise/accepted")) == ("2", "1")
    assert cluster_paths(feed, "table.clusters.real") == ["$.generatedAt"]
    assert cluster_paths(feed, "div.tolerated.noise") == ["$.generatedAt"]
    row = next(r for r in endpoint_rows(soup) if r["data-endpoint"] == FEED)
    assert col(row)["parity"].get_text(strip=True) == "50.0%"  # 2 of 4 compared


def test_no_secondary_unusable_figures_when_there_are_none(tmp_path: Path) -> None:
    db = build(tmp_path / "d.duckdb", demo_exchanges(), config=DEMO_CONFIG)
    summary, soup = render(db, tmp_path / "d.html")
    assert summary.secondary_unusable == 0
    assert soup.select_one('[data-k="secondary_unusable"]') is None
    assert "secondary unusable" not in soup.get_text()


# --- (b) accepted entries of the reader's config apply to past traffic ---------------


def prices_store(path: Path, config: dict[str, Any] | None = None) -> str:
    """3 of 4 answers round the total otherwise (a real difference when recorded)."""
    calls = [
        Call(PRICES, {"total": 10.25, "n": i}, {"total": 10.2 if i < 3 else 10.25, "n": i})
        for i in range(4)
    ]
    return build(path, calls, config=config)


def test_accepted_from_the_readers_config_applies_to_past_traffic(tmp_path: Path) -> None:
    db = prices_store(tmp_path / "p.duckdb")  # recorded without any [[accepted]] entry
    before, soup = render(db, tmp_path / "before.html")
    section = section_for(soup, PRICES)
    assert before.parity == pytest.approx(25.0)
    assert cluster_paths(section, "table.clusters.real") == ["$.total"]
    assert section.select_one("div.tolerated.accepted") is None

    accepted = [
        Accepted("GET /api/other", "$.total", "another endpoint's entry"),
        Accepted("GET /api/prices/*", "$.total", "rounded to 1 decimal on purpose"),
    ]
    after, soup = render(db, tmp_path / "after.html", accepted=accepted)
    section = section_for(soup, PRICES)
    assert after.parity == pytest.approx(100.0)
    assert (after.matched, after.differed, after.tolerated) == (4, 0, 3)
    row = next(r for r in endpoint_rows(soup) if r["data-endpoint"] == PRICES)
    assert col(row)["parity"].get_text(strip=True) == "100.0%"
    assert section.select_one("table.clusters.real") is None
    box = section.select_one("div.tolerated.accepted")
    assert box is not None
    assert cluster_paths(box, "table.clusters") == ["$.total"]
    # the second entry matched, and the reason says which entry of which source
    reason = "accepted by config [[accepted]] #2: rounded to 1 decimal on purpose"
    assert reason in box.get_text(" ", strip=True)
    # the samples' difference tables say so too
    assert {
        td.get_text(" ", strip=True) for td in section.select("table.diffs td:nth-of-type(3)")
    } == {f"accepted ({reason})"}
    # nothing was written: the stored verdicts are still the provisional ones
    assert sql(db, "SELECT count(*) FROM exchanges WHERE verdict = 'differ'") == [(3,)]
    assert sql(db, "SELECT count(*) FROM run_accepted") == [(0,)]


def test_the_readers_config_replaces_the_entries_a_run_was_recorded_with(tmp_path: Path) -> None:
    stored = {"accepted": [{"endpoint": PRICES, "path": "$.total", "reason": "when recorded"}]}
    db = prices_store(tmp_path / "p.duckdb", stored)
    own, soup = render(db, tmp_path / "own.html")  # no config given: the run's own entries
    assert own.parity == pytest.approx(100.0)
    assert "accepted by run r1 [[accepted]] #1: when recorded" in soup.get_text()
    none, _ = render(db, tmp_path / "none.html", accepted=[])  # a config without entries
    assert (none.parity, none.differed) == (pytest.approx(25.0), 3)


# --- (c) a list in random order from the first exchange on --------------------------


def shuffled_list_calls(shape: str, n: int = 20) -> list[Call]:
    """`n` answers listing the same 5 records in random order on every backend.

    The candidate's order always differs from the primary's; the secondary's does too,
    except in the very first exchange, where it happened to keep the primary's order.
    """
    rng = random.Random(20240502)
    orders = list(itertools.permutations(range(1, 6)))

    def body(order: tuple[int, ...]) -> dict[str, Any] | list[Any]:
        records = [{"id": k, "name": f"item {k}"} for k in order]
        if shape == "ids":
            return {"ids": list(order)}
        return records if shape == "root" else {"items": records}

    calls = []
    for i in range(n):
        p = rng.choice(orders)
        c = rng.choice([o for o in orders if o != p])
        s = p if i == 0 else rng.choice([o for o in orders if o != p])
        calls.append(Call("GET /api/catalog", body(p), body(c), secondary=body(s)))
    return calls


@pytest.mark.parametrize(
    ("shape", "cluster", "kind"),
    [
        ("ids", "$.ids[*]", "value_changed"),
        ("records", "$.items", "reordered"),
        ("root", "$", "reordered"),  # a JSON array as the whole body
    ],
)
def test_a_list_in_random_order_from_the_first_exchange_is_noise(
    tmp_path: Path, shape: str, cluster: str, kind: str
) -> None:
    db = build(tmp_path / "l.duckdb", shuffled_list_calls(shape))
    summary, soup = render(db, tmp_path / "l.html")
    row = next(r for r in endpoint_rows(soup) if r["data-endpoint"] == "GET /api/catalog")
    assert col(row)["parity"].get_text(strip=True) == "100.0%"
    assert (summary.compared, summary.matched, summary.differed, summary.tolerated) == (
        20,
        20,
        0,
        20,
    )
    section = section_for(soup, "GET /api/catalog")
    assert section.select_one("table.clusters.real") is None
    noise = section.select_one("div.tolerated.noise")
    assert noise is not None
    assert [
        (str(tr["data-path"]), tr.find_all("td")[1].get_text(strip=True))
        for tr in noise.select("tbody tr")
    ] == [(cluster, kind)]
    # The first exchange has no evidence of its own: it is noise by the endpoint's
    # statistics (the secondary changed the order in 19 of 20 exchanges; one discordant
    # pair, b=1 c=0, so z = (1 - 0 - 1) / 1).
    reasons = {
        r[0]
        for r in sql(
            db,
            "SELECT reason FROM shadow_difference_outcomes(NULL) WHERE exchange_id = 'r1-x00000'",
        )
    }
    assert reasons == {
        "changes primary-vs-secondary in 19/20 exchanges and primary-vs-candidate in 20/20 "
        "(McNemar z=0.00 < 2.326)"
    }
    assert sql(db, "SELECT DISTINCT status FROM shadow_difference_outcomes(NULL)") == [("noise",)]


# --- review findings: counts per cluster, truncated differences, unknown runs ----------


def test_an_exact_path_entry_splitting_a_cluster_counts_each_side_right(tmp_path: Path) -> None:
    """One exchange's rows of `$.items[*].v` split between accepted and real: both count it."""
    calls = [
        Call("GET /b/{id}", {"items": [{"v": 1}, {"v": 2}]}, {"items": [{"v": 10}, {"v": 20}]})
        for _ in range(4)
    ]
    db = build(tmp_path / "split.duckdb", calls)
    entry = Accepted("GET /b/{id}", "$.items[0].v", "the first one is fine")
    _, soup = render(db, tmp_path / "split.html", accepted=[entry])
    section = section_for(soup, "GET /b/{id}")
    for table in ("table.clusters.real", "table.clusters.accepted"):
        row = section.select_one(f"{table} tbody tr")
        assert row is not None and row["data-path"] == "$.items[*].v"
        assert row.select("td.num")[0].get_text(strip=True) == "4"  # exchanges


def test_truncated_differences_are_never_called_no_differences(tmp_path: Path) -> None:
    body = {"a": 1, "b": 1, "c": 1}
    calls = [
        Call("GET /m/{id}", body, {"a": 2, "b": 2, "c": 2}, secondary={"a": 3, "b": 3, "c": 3})
        for _ in range(3)
    ]
    db = build(tmp_path / "t.duckdb", calls, config={"compare": {"max_diffs": 2}})
    summary, soup = render(db, tmp_path / "t.html")
    assert summary.differed == 3 and summary.matched == 0
    text = section_for(soup, "GET /m/{id}").get_text(" ", strip=True)
    assert "No differences" not in text
    assert "3 differing exchanges had more differences than were kept" in text


def test_an_unknown_run_is_a_one_line_error(tmp_path: Path) -> None:
    from shadow.errors import ConfigError
    from shadow.review.triage import suggest_rules

    db = build(tmp_path / "r.duckdb", [Call("GET /a", {"a": 1}, {"a": 1})])
    with pytest.raises(ConfigError, match="--run 'nope': no such run"):
        render_report(db, str(tmp_path / "r.html"), run_id="nope")
    with pytest.raises(ConfigError, match="--run 'nope': no such run"):
        suggest_rules(db, "nope")


def test_a_template_error_is_raised_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """Templates compile in a thread meanwhile; a failure there is the report's one error."""
    import jinja2

    from reports import render

    def broken() -> jinja2.Environment:
        raise jinja2.TemplateSyntaxError("unexpected end of template", 3)

    monkeypatch.setattr(render, "environment", broken)
    db = build(tmp_path / "e.duckdb", [Call("GET /a", {"a": 1}, {"a": 1})])
    with pytest.raises(jinja2.TemplateSyntaxError):
        render_report(db, str(tmp_path / "e.html"))
    assert "Exception in thread" not in capfd.readouterr().err
    assert not (tmp_path / "e.html").exists()
