"""`shadow check` and `shadow export` as real subprocesses: exit codes, table, JUnit XML."""

from __future__ import annotations

import json
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shadow.config.loader import load_config
from shadow.review import gate
from shadow.review.export import OUTCOMES, TABLES
from shadow.store.writer import reading
from tests.conftest import shadow_cmd
from tests.shadow.review.traffic import ACCEPTED, CONFIG, Traffic, body, build_store
from tests.store_builder import ERROR, Call, write_store

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
        "--max-candidate-errors", "20",  # insights has 11.1 %; parity alone decides here
        "--endpoint", "GET /api/*=85",
        "--endpoint", "*/analysis/*=99.5",
        "--endpoint", "GET /api/nothing*=10",
    )  # fmt: skip
    _clean(r, 0)
    assert "'GET /api/nothing*' matches no endpoint" in r.stderr
    r = _check(
        stores["bad"],
        "--min-parity", "50",
        "--max-candidate-errors", "20",
        "--endpoint", "GET /api/analysis/*=99.9",
    )  # fmt: skip
    _clean(r, 1)
    assert r.stdout.splitlines()[1].startswith("GET /api/analysis/{id}")
    assert "shadow check FAILED: 3 passed, 1 failed" in r.stdout


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
    # reports on parity; insights has 40 compared < 41, but its 45 sent are enough to
    # fail on candidate errors (11.1 % > 1 % by default)
    failures = {
        case.get("name"): failure.get("message")
        for case in suite.findall("testcase")
        if (failure := case.find("failure")) is not None
    }
    assert failures == {
        "GET /api/reports": "parity 90.00% < 99.5%",
        "GET /api/insights": "candidate errors 11.11% > 1%",
    }
    assert len(suite.findall("testcase/skipped")) == 2  # health (40 < 41), start-analysis
    junitparser = pytest.importorskip("junitparser")
    parsed = next(iter(junitparser.JUnitXml.fromfile(str(out))))
    assert (parsed.tests, parsed.failures, parsed.skipped) == (5, 2, 2)


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
    for table in (*TABLES, *OUTCOMES):
        path = out / f"{table}.parquet"
        assert str(path) in r.stdout
        row = con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchone()
        assert row is not None and f"{path}  ({row[0]} rows)" in r.stdout
    row = con.execute("SELECT count(*) FROM read_parquet(?)", [str(out / "exchanges.parquet")])
    assert row.fetchone() == (sum(len(t) for t in BAD),)


# --- candidate errors count by default -----------------------------------------------------


def _endpoint(endpoint: str, matches: int, errors: int) -> list[Call]:
    """`matches` equal answers, then `errors` candidate timeouts."""
    ok = {"id": 1, "items": [1, 2, 3]}
    return [Call(endpoint, ok, ok) for _ in range(matches)] + [
        Call(endpoint, ok, ERROR, candidate_ms=5000.0) for _ in range(errors)
    ]


@pytest.fixture(scope="module")
def error_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("errors")
    return {
        # 980 of 1000 time out; the 20 answered all match (20 >= --min-samples)
        "timeouts": write_store(tmp / "timeouts.duckdb", _endpoint("GET /api/slow/{id}", 20, 980)),
        "mixed": write_store(
            tmp / "mixed.duckdb",
            _endpoint("GET /api/slow/{id}", 70, 30)  # 30 % errors
            + _endpoint("GET /api/items/{id}", 98, 2)  # 2 % errors
            + _endpoint("GET /api/ok", 50, 0),
        ),
    }


def _row(stdout: str, endpoint: str) -> str:
    found = [line for line in stdout.splitlines() if line.startswith(endpoint + " ")]
    assert len(found) == 1, stdout
    return found[0]


def test_a_candidate_that_mostly_times_out_fails_by_default(
    error_stores: dict[str, str],
) -> None:
    db = error_stores["timeouts"]
    # parity alone would pass: every answered request matches, and enough were compared
    off = _check(db, "--max-candidate-errors", "100")
    _clean(off, 0)
    assert "100.00%" in _row(off.stdout, "GET /api/slow/{id}")
    r = _check(db)
    _clean(r, 1)
    row = _row(r.stdout, "GET /api/slow/{id}")
    assert "FAIL" in row and "candidate errors 98.00% > 1%" in row
    assert r.stdout.splitlines()[-1].startswith("shadow check FAILED: 0 passed, 1 failed")
    # a looser limit for the endpoint still does not cover 98 %, and says where it came from
    r = _check(db, "--endpoint-max-errors", "GET /api/slow*=50")
    _clean(r, 1)
    assert "candidate errors 98.00% > 50% (GET /api/slow*)" in r.stdout


def test_endpoint_max_errors_loosens_only_the_matching_endpoints(
    error_stores: dict[str, str],
) -> None:
    db = error_stores["mixed"]
    r = _check(db)
    _clean(r, 1)
    assert "candidate errors 30.00% > 1%" in _row(r.stdout, "GET /api/slow/{id}")
    assert "candidate errors 2.00% > 1%" in _row(r.stdout, "GET /api/items/{id}")
    r = _check(db, "--endpoint-max-errors", "GET /api/slow*=50")
    _clean(r, 1)
    slow = _row(r.stdout, "GET /api/slow/{id}")
    assert "PASS" in slow and "FAIL" not in slow
    items = _row(r.stdout, "GET /api/items/{id}")
    assert "FAIL" in items and "candidate errors 2.00% > 1%" in items  # others keep 1 %
    assert "PASS" in _row(r.stdout, "GET /api/ok")
    assert r.stdout.splitlines()[-1].startswith("shadow check FAILED: 2 passed, 1 failed")
    both = _check(
        db, "--endpoint-max-errors", "GET /api/slow*=50", "--endpoint-max-errors", "*/items/*=2"
    )
    _clean(both, 0)
    assert both.stdout.splitlines()[-1].startswith("shadow check PASSED: 3 passed, 0 failed")


def test_junit_failure_message_names_the_failed_threshold(
    error_stores: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "errors.xml"
    r = _check(
        error_stores["mixed"],
        "--endpoint-max-errors", "GET /api/slow*=10",
        "--junit", str(out),
    )  # fmt: skip
    _clean(r, 1)
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None
    failures = {
        case.get("name"): failure.get("message")
        for case in suite.findall("testcase")
        if (failure := case.find("failure")) is not None
    }
    assert failures == {
        "GET /api/slow/{id}": "candidate errors 30.00% > 10% (GET /api/slow*)",
        "GET /api/items/{id}": "candidate errors 2.00% > 1%",
    }
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["max_candidate_errors"] == "1"
    assert props["endpoint_max_errors:GET /api/slow*"] == "10"
    items = next(c for c in suite.findall("testcase") if c.get("name") == "GET /api/items/{id}")
    detail = items.findtext("failure") or ""
    assert "candidate_errors=2 (2.00%) max_candidate_errors=1%" in detail
    assert "matched=98" in detail and "differed=0" in detail


# --- [[accepted]] from a config apply to past traffic --------------------------------------


def _toml(entries: list[dict[str, str]]) -> str:
    return "".join(
        "[[accepted]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in e.items()) + "\n"
        for e in entries
    )


def _renamed(n: int) -> list[Call]:
    """Every answer differs in one field ($.engine), which ACCEPTED accepts."""
    return [Call("GET /api/report/{id}", body(), body(engine="rewrite")) for _ in range(n)]


@pytest.fixture(scope="module")
def accepted_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("accepted")
    (tmp / "cfg.toml").write_text(_toml([ACCEPTED]), encoding="utf-8")
    (tmp / "none.toml").write_text('[compare]\nheaders = ["content-type"]\n', encoding="utf-8")
    return {
        "cfg": str(tmp / "cfg.toml"),
        "none": str(tmp / "none.toml"),
        # written before the entry existed: its run has no [[accepted]] entries
        "past": write_store(tmp / "past.duckdb", _renamed(30)),
        # written with the entry in the config the run started with
        "with": write_store(tmp / "with.duckdb", _renamed(30), config=CONFIG),
    }


def test_config_accepted_entries_apply_to_past_traffic(accepted_stores: dict[str, str]) -> None:
    past = accepted_stores["past"]
    r = _check(past)
    _clean(r, 1)
    assert "parity 0.00% < 100%" in _row(r.stdout, "GET /api/report/{id}")
    r = _check(past, "--config", accepted_stores["cfg"])
    _clean(r, 0)
    assert "100.00%" in _row(r.stdout, "GET /api/report/{id}")
    assert r.stdout.splitlines()[-1].startswith("shadow check PASSED: 1 passed, 0 failed")


def test_without_config_each_run_uses_its_own_entries(accepted_stores: dict[str, str]) -> None:
    stored = accepted_stores["with"]
    _clean(_check(stored), 0)
    # a config given to the reader replaces the runs' entries, also when it has none
    r = _check(stored, "--config", accepted_stores["none"])
    _clean(r, 1)
    assert "parity 0.00% < 100%" in r.stdout


def _parquet(path: Path, sql: str) -> list[tuple[Any, ...]]:
    return (
        duckdb.connect().execute(sql.replace("{file}", "read_parquet(?)"), [str(path)]).fetchall()
    )


def test_exported_outcomes_agree_with_the_gate(
    accepted_stores: dict[str, str], stores: dict[str, str], tmp_path: Path
) -> None:
    cases = [
        (accepted_stores["past"], accepted_stores["cfg"]),  # accepted only by the reader
        (accepted_stores["with"], None),  # accepted by the run's own entries
        (stores["bad"], None),
    ]
    for n, (db, config) in enumerate(cases):
        out = tmp_path / f"out{n}"
        args = ("--config", config) if config else ()
        r = _run("export", "--db", db, "-o", str(out), *args)
        _clean(r, 0)
        for name in ("exchange_outcomes", "difference_outcomes", "endpoint_outcomes"):
            assert str(out / f"{name}.parquet") in r.stdout
        accepted = load_config(config).accepted if config else None
        with reading(db, accepted=accepted) as con:
            expected = {row["endpoint"]: row["parity"] for row in gate.fetch_rows(con, None)}
        parity = _parquet(out / "endpoint_outcomes.parquet", "SELECT endpoint, parity FROM {file}")
        assert dict(parity) == expected
        # the exchanges' judged verdicts add up to the same parity, per endpoint
        recount = _parquet(
            out / "exchange_outcomes.parquet",
            "SELECT endpoint, 100.0 * count(*) FILTER (WHERE verdict = 'match') "
            "/ nullif(count(*) FILTER (WHERE verdict IN ('match', 'differ')), 0) "
            "FROM {file} GROUP BY endpoint",
        )
        assert dict(recount) == pytest.approx(expected)
    # the renamed field is accepted in both stores: judged, not as written
    assert _report_outcome(tmp_path / "out0") == (100.0, "differ")
    assert _report_outcome(tmp_path / "out1") == (100.0, "match")


def _report_outcome(out: Path) -> tuple[float, str]:
    """Judged parity of GET /api/report/{id} and the verdict its exchanges were written with."""
    [(parity,)] = _parquet(
        out / "endpoint_outcomes.parquet",
        "SELECT parity FROM {file} WHERE endpoint = 'GET /api/report/{id}'",
    )
    [(provisional,)] = _parquet(
        out / "exchange_outcomes.parquet", "SELECT DISTINCT provisional_verdict FROM {file}"
    )
    statuses = _parquet(out / "difference_outcomes.parquet", "SELECT DISTINCT status FROM {file}")
    assert statuses == [("accepted",)]
    return parity, provisional


def test_rules_suggest_leaves_out_what_the_config_accepts(tmp_path: Path) -> None:
    calls = [
        Call("GET /api/jobs/{id}", {"requestId": str(uuid.UUID(int=2 * i + 1))},
             {"requestId": str(uuid.UUID(int=2 * i + 2))})
        for i in range(10)
    ]  # fmt: skip
    db = write_store(tmp_path / "ids.duckdb", calls)
    r = _run("rules", "suggest", "--db", db)
    _clean(r, 0)
    assert '"$.requestId"' in r.stdout  # a per-request value: suggested as ignore_path
    cfg = tmp_path / "cfg.toml"
    entry = {"endpoint": "GET /api/jobs/{id}", "path": "$.requestId", "reason": "per request"}
    cfg.write_text(_toml([entry]), encoding="utf-8")
    r = _run("rules", "suggest", "--db", db, "--config", str(cfg))
    _clean(r, 0)
    assert "$.requestId" not in r.stdout
    assert "no suggestions" in r.stderr
