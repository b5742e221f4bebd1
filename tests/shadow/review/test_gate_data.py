"""`shadow check --max-data-differences N`: the tables `shadow data diff` compared, gated.

Stores are written by the real `shadow data diff` on SQLite files (tests/data_diff_store.py)
and, for traffic, by the real evaluator and writer (tests/shadow/review/traffic.py). The
number the gate judges is `shadow_data_tables`' differing_rows, the report's too.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from reports import render_report
from shadow.errors import ConfigError
from shadow.review import data_gate, gate
from tests.data_diff_store import OLD_ROWS, data_diff, data_tables, shadow, sqlite_pair
from tests.shadow.review.traffic import Traffic, build_store

GOOD = [Traffic("GET /api/analysis/{id}", match=30), Traffic("GET /api/health", match=25)]
DIFFERING = 4  # OLD_ROWS against NEW_ROWS: 2 changed, 1 only in old, 1 only in new


def data_lines(stdout: str) -> dict[str, list[str]]:
    """The data table of `check`'s output: its header's and each table's cells."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("data table"))
    out = {}
    for line in lines[start:]:
        if line.startswith("shadow check "):
            break
        cells = re.split(r"\s{2,}", line.strip())
        out[cells[0]] = cells
    return out


@pytest.fixture(scope="module")
def data_only(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("data-gate")
    db = tmp / "data.duckdb"
    old, new = sqlite_pair(tmp)
    assert data_diff(db, old, new).exit_code == 1
    assert data_tables(db)["t"]["differing_rows"] == DIFFERING
    return str(db)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(traffic only, the same traffic and a table diff)."""
    tmp = tmp_path_factory.mktemp("mixed-gate")
    http = build_store(tmp / "http.duckdb", GOOD)
    both = tmp / "both.duckdb"
    shutil.copy(http, both)
    old, new = sqlite_pair(tmp)
    assert data_diff(both, old, new).exit_code == 1
    return http, str(both)


# --- thresholds ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("4", 4), (" 12 ", 12), (7, 7)])
def test_n_is_a_whole_number(value: str | int, expected: int) -> None:
    assert data_gate.parse_max_differences(value) == expected


@pytest.mark.parametrize("value", ["-1", "1.5", "x", "", "1e3", "+3", "٣"])
def test_a_bad_n_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="--max-data-differences"):
        data_gate.parse_max_differences(value)


@pytest.mark.parametrize("value", ["-1", "1.5", "lots"])
def test_a_bad_n_is_one_line_and_exit_2(data_only: str, value: str) -> None:
    r = shadow("check", "--db", data_only, "--max-data-differences", value)
    assert r.exit_code == 2 and not r.stdout
    assert r.stderr.count("\n") == 1 and "--max-data-differences" in r.stderr


# --- a store of table diffs alone ----------------------------------------------------------


@pytest.mark.parametrize("n", [DIFFERING, DIFFERING + 1, 1000])
def test_passes_at_or_above_the_differing_rows(data_only: str, n: int) -> None:
    r = shadow("check", "--db", data_only, "--max-data-differences", str(n))
    assert r.exit_code == 0, r.output
    t = data_lines(r.stdout)["t"]
    assert t[1:6] == ["4", "4", str(DIFFERING), str(n), "PASS"]
    assert r.stdout.splitlines()[-1] == "shadow check PASSED: data tables: 1 passed, 0 failed"
    assert "endpoint" not in r.stdout  # no traffic: no endpoint table


@pytest.mark.parametrize("n", [0, DIFFERING - 1])
def test_fails_below_the_differing_rows(data_only: str, n: int) -> None:
    r = shadow("check", "--db", data_only, "--max-data-differences", str(n))
    assert r.exit_code == 1, r.output
    header, t = data_lines(r.stdout).values()
    assert header == ["data table", "old rows", "new rows", "differing", "threshold", "result",
                      "why"]  # fmt: skip
    assert t == ["t", "4", "4", "4", str(n), "FAIL",
                 f"4 differing rows > {n} (2 changed, 1 only in old, 1 only in new, "
                 "0 duplicate keys)"]  # fmt: skip
    assert r.stdout.splitlines()[-1] == "shadow check FAILED: data tables: 0 passed, 1 failed"


def test_without_the_option_data_is_not_gated(data_only: str) -> None:
    r = shadow("check", "--db", data_only)  # as before: no endpoint could be judged
    assert r.exit_code == 1
    assert r.stdout == (
        "shadow check FAILED: 0 passed, 0 failed, 0 inconclusive; "
        "no endpoint had enough samples to judge\n"
    )


def test_no_table_diff_in_scope_is_exit_2(mixed: tuple[str, str]) -> None:
    http, both = mixed
    r = shadow("check", "--db", http, "--max-data-differences", "0")
    assert r.exit_code == 2 and not r.stdout
    assert r.stderr == (
        f"shadow: error: --max-data-differences: no data comparison in {http} "
        "(run shadow data diff first)\n"
    )
    r = shadow("check", "--db", both, "--run", "r1", "--max-data-differences", "0")
    assert r.exit_code == 2 and "no data comparison in run r1 of" in r.stderr


def test_run_scopes_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "s.duckdb"
    old, new = sqlite_pair(tmp_path)
    assert data_diff(db, old, new).exit_code == 1
    first = data_tables(db)["t"]["run_id"]
    same_old, same_new = sqlite_pair(tmp_path, OLD_ROWS, OLD_ROWS, prefix="same-")
    assert data_diff(db, same_old, same_new).exit_code == 0
    latest = shadow("check", "--db", str(db), "--max-data-differences", "0")
    assert latest.exit_code == 0 and data_lines(latest.stdout)["t"][3] == "0"
    scoped = shadow("check", "--db", str(db), "--run", first, "--max-data-differences", "0")
    assert scoped.exit_code == 1 and data_lines(scoped.stdout)["t"][3] == str(DIFFERING)


# --- with traffic -------------------------------------------------------------------------


def test_without_the_option_the_output_is_unchanged(mixed: tuple[str, str]) -> None:
    http, both = mixed
    before, after = shadow("check", "--db", http), shadow("check", "--db", both)
    assert before.exit_code == after.exit_code == 0
    assert after.stdout == before.stdout
    assert "data" not in after.stdout


def test_endpoints_and_tables_are_both_judged(mixed: tuple[str, str]) -> None:
    _, both = mixed
    r = shadow("check", "--db", both, "--max-data-differences", "0")
    assert r.exit_code == 1, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("endpoint") and "data table" in r.stdout
    assert data_lines(r.stdout)["t"][5] == "FAIL"
    assert lines[-1] == (
        "shadow check FAILED: 2 passed, 0 failed, 0 inconclusive; data tables: 0 passed, 1 failed"
    )
    ok = shadow("check", "--db", both, "--max-data-differences", str(DIFFERING))
    assert ok.exit_code == 0
    assert ok.stdout.splitlines()[-1] == (
        "shadow check PASSED: 2 passed, 0 failed, 0 inconclusive; data tables: 1 passed, 0 failed"
    )
    # endpoints without enough samples fail the gate whatever the tables
    bad = shadow("check", "--db", both, "--min-samples", "100", "--max-data-differences", "9")
    assert bad.exit_code == 1 and "2 inconclusive (not allowed" in bad.stdout


def test_junit_has_a_case_per_table(mixed: tuple[str, str], tmp_path: Path) -> None:
    _, both = mixed
    out = tmp_path / "j.xml"
    r = shadow("check", "--db", both, "--max-data-differences", "3", "--junit", str(out))
    assert r.exit_code == 1
    root = ET.parse(out).getroot()
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["shadow parity"].get("failures") == "0"
    data = suites["shadow data"]
    assert (data.get("tests"), data.get("failures")) == ("1", "1")
    props = {p.get("name"): p.get("value") for p in data.iter("property")}
    assert props == {"max_data_differences": "3", "run": "all"}
    (case,) = data.iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("shadow.data", "t")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "DataDifferences"
    assert str(failure.get("message")).startswith("4 differing rows > 3")
    assert f"differing_rows={DIFFERING}" in str(failure.text)


def test_junit_without_the_option_has_no_data_suite(mixed: tuple[str, str], tmp_path: Path) -> None:
    _, both = mixed
    out = tmp_path / "j.xml"
    assert shadow("check", "--db", both, "--junit", str(out)).exit_code == 0
    assert [s.get("name") for s in ET.parse(out).getroot().iter("testsuite")] == ["shadow parity"]


def test_passed_needs_something_judged() -> None:
    t = gate.make_thresholds(100.0)
    table = data_gate.DataTableResult(
        "t", "run", "t", "t", 1, 1, 0, 0, 0, 0, 0, differing_rows=0, rows_dropped=0,
        max_differences=0, result=data_gate.PASS,
    )  # fmt: skip
    assert not gate.passed([], t)  # nothing judged
    assert gate.passed([], t, data=[table])
    failing = data_gate.DataTableResult(**{**table.__dict__, "result": data_gate.FAIL})
    assert not gate.passed([], t, data=[table, failing])


# --- one number ---------------------------------------------------------------------------


def test_report_gate_and_macro_agree(mixed: tuple[str, str], tmp_path: Path) -> None:
    _, both = mixed
    macro = data_tables(both)["t"]["differing_rows"]
    r = shadow("check", "--db", both, "--max-data-differences", "0")
    gated = int(data_lines(r.stdout)["t"][3])
    out = tmp_path / "r.html"
    render_report(both, str(out))
    page = BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")
    cell = page.select_one('section.data-table[data-table="t"] [data-k="differing_rows"]')
    assert cell is not None
    shown = int(str(cell["data-v"]))
    assert gated == shown == int(cell.get_text().replace(",", "")) == macro == DIFFERING
