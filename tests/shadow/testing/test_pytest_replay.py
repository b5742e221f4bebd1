"""`pytest --shadow-replay FILE`: one test per recorded exchange, against an in-process candidate.

The recorded answers (tests/data/traffic, the example legacy app's) stand for the
primary; the candidate is the example FastAPI app, so the known slips of
examples/README.md fail by their paths and the rest passes.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import duckdb
import pytest

from tests.shadow.testing.inner_runs import deciding_reports

ROOT = Path(__file__).resolve().parents[3]
TRAFFIC = ROOT / "tests" / "data" / "traffic"
CANDIDATE = ("--shadow-candidate", "examples.candidate.app:http_app")
HAR = "chromium.har"
MITM = "shadow_proxy.mitm"

# chromium.har, entry by entry (the recorded answer against the candidate's).
HAR_ITEMS = [
    "GET /api/health #0",
    "GET /api/health #1",
    "GET /api/insights #2",
    "GET /api/analysis/{id} #3",
    "GET /api/analysis/{id} #4",
    "GET /api/analysis/abc #5",
    "GET /api/insights/{id} #6",
    "GET /api/insights/{id} #7",
    "GET /api/reports #8",
    "GET /api/process-updates #9",
    "GET /api/analysis/{id} #10",
    "POST /api/start-analysis #11",
]
HAR_PASS = {"GET /api/health #0", "GET /api/health #1", "GET /api/insights #2",
            "GET /api/process-updates #9", "GET /api/analysis/{id} #10"}  # fmt: skip
HAR_SLIPS = {
    "GET /api/analysis/{id} #4": [
        "  $.completedAt: <absent> != null (added)",
        "  $.metrics.avgOrderValue: 53.13 != 53.12 (value_changed)",
    ],
    "GET /api/analysis/abc #5": ["  $status: 400 != 422 (status)"],
    "GET /api/insights/{id} #6": [
        "  $.confidence: <absent> != 0.82 (added)",
        "  $.confidenceScore: 0.82 != <absent> (removed)",
    ],
    "GET /api/insights/{id} #7": ["  $status: 400 != 404 (status)"],
    "GET /api/reports #8": [
        '  $.reports: [49, 26, 43, 11, 38, 35, 45, 1, 4, 15, "..."] != '
        '[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "..."] (reordered)'
    ],
}
# duckdb (imported above) stays too: its native module aborts when imported a second time.
PREIMPORT = ("examples.candidate.app", "shadow.testing.replay_items", "shadow.config.loader")
UNSAFE = "POST is not copied (allow it with --shadow-unsafe or the route's mirror_unsafe)"


@pytest.fixture
def traffic(pytester: pytest.Pytester) -> pytest.Pytester:
    """pytester with the traffic files in its directory and the repo root importable."""
    for name in (HAR, MITM):
        shutil.copy(TRAFFIC / name, pytester.path / name)
    pytester.syspathinsert(ROOT)
    return pytester


@pytest.fixture(scope="module", autouse=True)
def _imported_once() -> None:
    """Modules imported before any pytester exists stay in sys.modules across the inner
    sessions (pytester drops only what was imported after it started): no inner run
    pays for importing FastAPI and the plugin's parts again."""
    for name in PREIMPORT:
        importlib.import_module(name)


def reports(result: pytest.RunResult) -> dict[str, pytest.TestReport]:
    return deciding_reports(result)


def collected(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_items_are_named_method_route_and_entry(traffic: pytest.Pytester) -> None:
    result = traffic.runpytest("--shadow-replay", HAR, *CANDIDATE, "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert collected(result) == [f"{HAR}::{name}" for name in HAR_ITEMS]
    mitm = traffic.runpytest("--shadow-replay", MITM, *CANDIDATE, "--collect-only", "-q")
    ids = collected(mitm)
    assert len(ids) == 40
    assert f"{MITM}::GET /api/insights/{{id}} #10" in ids
    assert f"{MITM}::GET /api/reports #17" in ids
    assert sum(1 for i in ids if i.startswith(f"{MITM}::POST ")) == 9


def test_collect_only_counts_the_replay_items(traffic: pytest.Pytester) -> None:
    result = traffic.runpytest("--shadow-replay", HAR, *CANDIDATE, "--collect-only", "-q")
    assert len(collected(result)) == 12
    # pytest's own count line: the 12 items listed above, not "no tests collected".
    result.stdout.fnmatch_lines(["12 tests collected in *"])


def test_replay_har_fails_the_slips_and_passes_the_rest(traffic: pytest.Pytester) -> None:
    result = traffic.runpytest("--shadow-replay", HAR, *CANDIDATE, "-rA")
    result.assert_outcomes(passed=5, failed=6, skipped=1)
    found = reports(result)
    assert set(found) == set(HAR_ITEMS)
    for name in HAR_PASS:
        assert found[name].passed, (name, found[name].longreprtext)
    for name, lines in HAR_SLIPS.items():
        rep = found[name]
        assert rep.failed, name
        text = rep.longreprtext.splitlines()
        # The failure is the differences, not a traceback.
        assert (
            text[0].startswith("GET /api/")
            and ": " in text[0]
            and "recorded != candidate" in text[0]
        )
        for line in lines:
            assert line in text, (name, text)
    # The recorded answer is the legacy's own: a fresh requestId differs from the recorded one.
    three = found["GET /api/analysis/{id} #3"].longreprtext.splitlines()
    assert three[0] == (
        "GET /api/analysis/3 (GET /api/analysis/{id}): 1 difference, recorded != candidate"
    )
    assert three[1].startswith("  $.requestId: ") and three[1].endswith(" (value_changed)")
    skipped = found["POST /api/start-analysis #11"]
    assert skipped.skipped
    assert isinstance(skipped.longrepr, tuple)
    assert skipped.longrepr[2] == f"Skipped: {UNSAFE}"
    assert "Traceback" not in result.stdout.str()
    assert "replay_items.py" not in "".join(found[n].longreprtext for n in HAR_SLIPS)


def test_replay_uses_the_config_rules(traffic: pytest.Pytester) -> None:
    traffic.makefile(
        ".toml",
        shadow="""
        [[endpoints]]
        route = "/api/analysis/{id}"
        compare = { ignore_paths = ["$.requestId"] }
        """,
    )
    result = traffic.runpytest(
        "--shadow-replay", HAR, *CANDIDATE, "--shadow-config", "shadow.toml",
        "--shadow-route", "/api/analysis/{id}",
    )  # fmt: skip
    found = reports(result)
    # The config's route takes any segment: "abc" is an id of it too.
    assert set(found) == {"GET /api/analysis/{id} #3", "GET /api/analysis/{id} #4",
                          "GET /api/analysis/{id} #5", "GET /api/analysis/{id} #10"}  # fmt: skip
    assert found["GET /api/analysis/{id} #5"].failed
    assert found["GET /api/analysis/{id} #3"].passed
    assert found["GET /api/analysis/{id} #10"].passed
    nine = found["GET /api/analysis/{id} #4"]
    assert nine.failed
    assert nine.longreprtext.splitlines()[0] == (
        "GET /api/analysis/9 (GET /api/analysis/{id}): 2 differences, recorded != candidate"
    )
    assert "$.requestId" not in nine.longreprtext


def test_replay_mitm_dump(traffic: pytest.Pytester) -> None:
    result = traffic.runpytest("--shadow-replay", MITM, *CANDIDATE)
    result.assert_outcomes(passed=15, failed=16, skipped=9)
    found = reports(result)
    assert all(rep.skipped for name, rep in found.items() if name.startswith("POST "))
    for name in ("GET /api/health #9", "GET /api/insights #13", "GET /api/process-updates #22"):
        assert found[name].passed, name
    insight = found["GET /api/insights/{id} #10"]
    assert insight.failed
    assert "  $.confidenceScore: " in insight.longreprtext
    assert "(removed)" in insight.longreprtext
    assert "  $status: 400 != 404 (status)" in found["GET /api/insights/{id} #18"].longreprtext
    assert "(reordered)" in found["GET /api/reports #17"].longreprtext


def test_unsafe_methods_run_when_allowed(traffic: pytest.Pytester) -> None:
    result = traffic.runpytest(
        "--shadow-replay", HAR, *CANDIDATE, "--shadow-method", "POST", "--shadow-unsafe", "POST"
    )
    found = reports(result)
    assert list(found) == ["POST /api/start-analysis #11"]
    rep = found["POST /api/start-analysis #11"]
    assert not rep.skipped
    assert rep.failed  # the candidate drops `priority` (slip 5)
    assert "  $.priority: " in rep.longreprtext and "(removed)" in rep.longreprtext


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--shadow-route", "/api/insights/{id}"],
         ["GET /api/insights/{id} #6", "GET /api/insights/{id} #7"]),
        (["--shadow-route", "/api/analysis/*"],
         ["GET /api/analysis/{id} #3", "GET /api/analysis/{id} #4", "GET /api/analysis/abc #5",
          "GET /api/analysis/{id} #10"]),
        (["--shadow-route", "/api/health", "--shadow-route", "/api/reports"],
         ["GET /api/health #0", "GET /api/health #1", "GET /api/reports #8"]),
        (["--shadow-method", "POST"], ["POST /api/start-analysis #11"]),
        (["--shadow-method", "get", "--shadow-route", "/api/insights*"],
         ["GET /api/insights #2", "GET /api/insights/{id} #6", "GET /api/insights/{id} #7"]),
    ],
)  # fmt: skip
def test_route_and_method_filters(
    traffic: pytest.Pytester, filters: list[str], expected: list[str]
) -> None:
    result = traffic.runpytest("--shadow-replay", HAR, *CANDIDATE, "--collect-only", "-q", *filters)
    assert collected(result) == [f"{HAR}::{name}" for name in expected]


def test_filters_that_keep_nothing(traffic: pytest.Pytester) -> None:
    result = traffic.runpytest(
        "--shadow-replay",
        HAR,
        *CANDIDATE,
        "--shadow-method",
        "POST",
        "--shadow-route",
        "/api/health",
    )
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_only_replay_items_run_without_test_paths(traffic: pytest.Pytester) -> None:
    traffic.makepyfile(test_other="def test_other():\n    pass\n")
    alone = traffic.runpytest("--shadow-replay", HAR, *CANDIDATE, "--collect-only", "-q")
    assert not any("test_other" in line for line in alone.outlines)
    both = traffic.runpytest(
        "--shadow-replay", HAR, *CANDIDATE, "--collect-only", "-q", "test_other.py"
    )
    ids = collected(both)
    assert "test_other.py::test_other" in ids
    assert len(ids) == 13


def test_junit_xml_has_one_testcase_per_exchange(traffic: pytest.Pytester) -> None:
    xml = traffic.path / "replay.xml"
    result = traffic.runpytest("--shadow-replay", HAR, *CANDIDATE, f"--junitxml={xml}")
    result.assert_outcomes(passed=5, failed=6, skipped=1)
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == HAR_ITEMS
    by_name = {c.get("name"): c for c in cases}
    failed = {name for name, c in by_name.items() if c.find("failure") is not None}
    assert failed == set(HAR_SLIPS) | {"GET /api/analysis/{id} #3"}
    skipped = by_name["POST /api/start-analysis #11"].find("skipped")
    assert skipped is not None and UNSAFE in (skipped.get("message") or "")
    failure = by_name["GET /api/insights/{id} #6"].find("failure")
    assert failure is not None
    assert "$.confidenceScore: 0.82 != <absent> (removed)" in (failure.text or "")


def _shadow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "shadow.cli.main", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_shadow_db_stores_the_session_for_report_and_check(traffic: pytest.Pytester) -> None:
    db = traffic.path / "parity.duckdb"
    result = traffic.runpytest("--shadow-replay", HAR, *CANDIDATE, "--shadow-db", str(db))
    result.assert_outcomes(passed=5, failed=6, skipped=1)
    ran = sum(1 for rep in reports(result).values() if not rep.skipped)
    assert ran == 11
    result.stdout.fnmatch_lines([f"shadow: 11 comparisons stored in run * of {db}; next: *"])

    with duckdb.connect(str(db), read_only=True) as con:
        runs = con.execute("SELECT run_id, source FROM runs").fetchall()
        assert len(runs) == 1
        run_id, source = runs[0]
        assert source.startswith("pytest:")
        stored = con.execute(
            "SELECT endpoint, verdict FROM exchanges WHERE run_id = ?", [run_id]
        ).fetchall()
        assert con.execute("SELECT count(*) FROM exchanges").fetchone() == (ran,)
    assert len(stored) == ran
    verdicts = [v for _, v in stored]
    assert verdicts.count("match") == 5 and verdicts.count("differ") == 6
    assert ("GET /api/insights/{id}", "differ") in stored
    assert ("GET /api/health", "match") in stored

    report = traffic.path / "report.html"
    made = _shadow("report", "--db", str(db), "-o", str(report), cwd=traffic.path)
    assert made.returncode == 0, made.stderr
    html = report.read_text()
    for endpoint in ("GET /api/insights/{id}", "GET /api/reports", "GET /api/health",
                     "GET /api/analysis/{id}"):  # fmt: skip
        assert endpoint in html, endpoint

    check = _shadow("check", "--db", str(db), "--min-samples", "1", cwd=traffic.path)
    assert check.returncode == 1, check.stdout + check.stderr
    rows = {line.split("  ")[0]: line for line in check.stdout.splitlines()}
    assert "FAIL" in rows["GET /api/insights/{id}"]
    assert "parity 0.00% < 100%" in rows["GET /api/insights/{id}"]
    assert "PASS" in rows["GET /api/health"]
    assert "shadow check FAILED: 3 passed, 4 failed" in check.stdout
    # With the default --min-samples the session is too small to judge: still non-zero.
    assert _shadow("check", "--db", str(db), cwd=traffic.path).returncode != 0


def test_two_traffic_files_each_item_reads_its_own(traffic: pytest.Pytester) -> None:
    result = traffic.runpytest(
        "--shadow-replay",
        HAR,
        "--shadow-replay",
        MITM,
        "--shadow-candidate",
        "examples.candidate.app:http_app",
    )
    assert "Traceback" not in result.stdout.str() and "LookupError" not in result.stdout.str()
    # Each failure names a request of its own file: entry 10 of the dump is insights/3.
    mitm = [r for r in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
            if r.nodeid.startswith(MITM) and r.when == "call"]  # fmt: skip
    insight = next(r for r in mitm if r.nodeid.endswith("GET /api/insights/{id} #10"))
    assert insight.failed and "GET /api/insights/3 " in insight.longreprtext
    assert len(mitm) > 10
