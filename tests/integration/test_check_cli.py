"""`shadow check` and `shadow export` as real subprocesses: exit codes, table, JUnit XML."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from tests.conftest import shadow_cmd
from tests.shadow.test_gate import Traffic, build_store

pytestmark = pytest.mark.integration

GOOD = [
    Traffic("GET /api/analysis/{id}", match=199, differ=1),  # 99.5 %
    Traffic("GET /api/health", match=30, noisy_matches=10),  # noise does not count
    Traffic("POST /api/start-analysis", skipped=5),  # never copied: not judged
]
BAD = [
    *GOOD,
    Traffic("GET /api/reports", match=90, differ=10),  # 90 %
    Traffic("GET /api/insights", match=40, candidate_errors=5),  # 11.1 % errors
]
THIN = [*GOOD, Traffic("GET /api/rare", match=3)]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(shadow_cmd(*args), capture_output=True, text=True, timeout=120)


def _check(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("check", "--db", db, *args)


def _clean(r: subprocess.CompletedProcess[str], code: int) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("check")
    return {
        name: build_store(tmp / f"{name}.duckdb", traffic)
        for name, traffic in (("good", GOOD), ("bad", BAD), ("thin", THIN))
    }


def test_passing_store_exits_0(stores: dict[str, str]) -> None:
    r = _check(stores["good"], "--min-parity", "99.5")
    _clean(r, 0)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["endpoint", "samples"]
    assert lines[-1] == "shadow check PASSED: 2 passed, 0 failed, 0 inconclusive, 1 not copied"


def test_failing_store_exits_1_with_failing_rows_first(stores: dict[str, str]) -> None:
    r = _check(stores["bad"], "--min-parity", "99.5", "--max-candidate-errors", "5")
    _clean(r, 1)
    rows = r.stdout.splitlines()[1:-1]
    assert rows[0].startswith("GET /api/reports") and "FAIL" in rows[0]
    assert "parity 90.00% < 99.5%" in rows[0]
    assert rows[1].startswith("GET /api/insights") and "candidate errors 11.11% > 5%" in rows[1]
    assert all("FAIL" not in row for row in rows[2:])
    assert r.stdout.splitlines()[-1].startswith("shadow check FAILED: 2 passed, 2 failed")


def test_per_endpoint_thresholds_decide(stores: dict[str, str]) -> None:
    r = _check(
        stores["bad"],
        "--min-parity", "99.5",
        "--endpoint", "GET /api/*=85",
        "--endpoint", "*/analysis/*=99.5",
        "--endpoint", "GET /api/nothing*=10",
    )  # fmt: skip
    _clean(r, 0)
    assert "'GET /api/nothing*' matches no endpoint" in r.stderr
    r = _check(stores["bad"], "--min-parity", "50", "--endpoint", "GET /api/analysis/*=99.9")
    _clean(r, 1)
    assert r.stdout.splitlines()[1].startswith("GET /api/analysis/{id}")


def test_inconclusive_fails_unless_allowed(stores: dict[str, str]) -> None:
    r = _check(stores["thin"], "--min-parity", "99")
    _clean(r, 1)
    assert "INCONCLUSIVE" in r.stdout and "3 compared < 20 samples" in r.stdout
    assert "1 inconclusive (not allowed: --allow-inconclusive)" in r.stdout
    _clean(_check(stores["thin"], "--min-parity", "99", "--allow-inconclusive"), 0)
    _clean(_check(stores["thin"], "--min-parity", "99", "--min-samples", "3"), 0)


def test_junit_file_reads_back(stores: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "parity.xml"
    r = _check(stores["bad"], "--min-parity", "99.5", "--min-samples", "41", "--junit", str(out))
    _clean(r, 1)
    assert f"junit: {out}" in r.stdout
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "shadow parity"
    assert len(suite.findall("testcase")) == 5
    assert len(suite.findall("testcase/failure")) == 1  # reports; insights has 40 < 41
    assert len(suite.findall("testcase/skipped")) == 3  # health, insights, start-analysis
    junitparser = pytest.importorskip("junitparser")
    parsed = next(iter(junitparser.JUnitXml.fromfile(str(out))))
    assert (parsed.tests, parsed.failures, parsed.skipped) == (5, 1, 3)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--min-parity", "150"), "--min-parity 150"),
        (("--endpoint", "GET /api/*"), "PATTERN=THRESHOLD"),
        (("--min-samples", "0"), "--min-samples"),
        (("--run", "nope"), "no such run"),
    ],
)
def test_bad_options_exit_2(stores: dict[str, str], args: tuple[str, ...], needle: str) -> None:
    r = _check(stores["good"], *args)
    _clean(r, 2)
    assert r.stderr.startswith("shadow: error:") and needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_database_errors_exit_3(tmp_path: Path) -> None:
    r = _check(str(tmp_path / "missing.duckdb"))
    _clean(r, 3)
    assert "does not exist" in r.stderr
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    r = _check(str(junk))
    _clean(r, 3)
    assert r.stderr.count("\n") == 1


def test_check_help_has_an_example() -> None:
    r = _run("check", "--help")
    _clean(r, 0)
    assert "shadow check --db parity.duckdb --min-parity 99.5" in r.stdout
    assert "--allow-inconclusive" in r.stdout


def test_export_writes_parquet(stores: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "pq"
    r = _run("export", "--db", stores["bad"], "--format", "parquet", "-o", str(out))
    _clean(r, 0)
    con = duckdb.connect()
    for table in ("runs", "exchanges", "differences", "noise_differences"):
        path = out / f"{table}.parquet"
        assert str(path) in r.stdout
        row = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()
        assert row is not None and f"{path}  ({row[0]} rows)" in r.stdout
    row = con.execute("SELECT count(*) FROM read_parquet(?)", [str(out / "exchanges.parquet")])
    assert row.fetchone() == (sum(len(t.verdicts()) for t in BAD),)
