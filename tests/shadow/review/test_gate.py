"""shadow.review.gate: thresholds, judging endpoints, the SQL on a real store, JUnit XML."""

from __future__ import annotations

import math
import re
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from shadow.config.loader import Accepted
from shadow.errors import ConfigError
from shadow.review import gate
from shadow.store.writer import open_for_reading
from tests.shadow.review.traffic import CONFIG, Traffic, body, build_store
from tests.store_builder import Call, write_store


def fetch(
    db: str, run_id: str | None = None, accepted: Sequence[Accepted] | None = None
) -> dict[str, dict[str, Any]]:
    con = open_for_reading(db, wait=5, accepted=accepted)
    try:
        return {r["endpoint"]: r for r in gate.fetch_rows(con, run_id)}
    finally:
        con.close()


def row(endpoint: str = "GET /a", **kw: Any) -> dict[str, Any]:
    """A GATE_QUERY row; compared/sent/parity derived from matched/differed/errors."""
    matched, differed = kw.pop("matched", 100), kw.pop("differed", 0)
    errors, skipped = kw.pop("candidate_errors", 0), kw.pop("skipped", 0)
    compared = matched + differed
    sent = compared + errors
    out = {
        "endpoint": endpoint,
        "requests": sent + skipped,
        "sent": sent,
        "compared": compared,
        "matched": matched,
        "candidate_errors": errors,
        "parity": 100.0 * matched / compared if compared else None,
        "candidate_error_pct": 100.0 * errors / sent if sent else None,
        "primary_p95": 10.0,
        "candidate_p95": 10.0,
        "latency_ratio": 1.0,
    }
    out.update(kw)
    return out


# --- thresholds --------------------------------------------------------------------------


def test_endpoint_thresholds_parse_last_equals_sign() -> None:
    parsed = gate.parse_endpoint_thresholds(["GET /api/*=99", "GET /q?a=b*= 97.5 "])
    assert [(e.pattern, e.min_parity, e.order) for e in parsed] == [
        ("GET /api/*", 99.0, 0),
        ("GET /q?a=b*", 97.5, 1),
    ]


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("GET /api/*", "PATTERN=THRESHOLD"),
        ("=99", "PATTERN=THRESHOLD"),
        ("GET /a=lots", "percentage such as"),
        ("GET /a=101", "between 0 and 100"),
        ("GET /a=-1", "between 0 and 100"),
        ("GET /a=nan", "between 0 and 100"),
    ],
)
def test_bad_endpoint_threshold_is_a_config_error(value: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        gate.parse_endpoint_thresholds([value])


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"min_parity": 100.5}, "--min-parity 100.5"),
        ({"min_parity": math.nan}, "--min-parity"),
        ({"max_candidate_errors": -0.1}, "--max-candidate-errors"),
        ({"max_latency_ratio": 0.0}, "--max-latency-ratio"),
        ({"max_latency_ratio": math.nan}, "--max-latency-ratio"),
        ({"min_samples": 0}, "--min-samples"),
    ],
)
def test_bad_thresholds_are_config_errors(kwargs: dict[str, Any], needle: str) -> None:
    args: dict[str, Any] = {"min_parity": 99.0, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        gate.make_thresholds(**args)


def test_most_specific_pattern_wins_then_the_last_given() -> None:
    t = gate.make_thresholds(
        99.5,
        [
            "GET /api/analysis/*=90",
            "*/insights*=80",
            "GET /api/analysis/{id}/insights=70",
            "GET /api/*=95",
            "GET /api/reports*=60",
            "GET /api/report*s=50",  # as many literal characters as the one before, given later
        ],
    )
    assert t.parity_for("GET /api/analysis/{id}") == (90.0, "GET /api/analysis/*")
    assert t.parity_for("GET /api/analysis/{id}/insights") == (
        70.0,
        "GET /api/analysis/{id}/insights",
    )
    assert t.parity_for("GET /api/insights") == (95.0, "GET /api/*")
    assert t.parity_for("POST /x/insights") == (80.0, "*/insights*")
    assert t.parity_for("GET /api/reports") == (50.0, "GET /api/report*s")
    assert t.parity_for("GET /api/reports/{id}") == (60.0, "GET /api/reports*")
    assert t.parity_for("DELETE /other") == (99.5, None)


def test_patterns_are_case_sensitive_globs_over_the_whole_name() -> None:
    t = gate.make_thresholds(99.0, ["/api/*=10", "get /api/*=20"])
    assert t.parity_for("GET /api/x") == (99.0, None)


# --- judging -------------------------------------------------------------------------------


def test_judge_pass_and_boundary_parity_passes() -> None:
    t = gate.make_thresholds(99.5)
    r = gate.judge(row(matched=199, differed=1), t)  # exactly 99.5 %
    assert (r.result, r.reasons) == (gate.PASS, ())


def test_judge_fails_on_parity_with_the_threshold_source() -> None:
    t = gate.make_thresholds(99.5, ["GET /a*=99.9"])
    r = gate.judge(row(matched=998, differed=2), t)
    assert r.result == gate.FAIL
    assert r.why == "parity 99.80% < 99.9% (GET /a*)"
    assert gate.judge(row(matched=998, differed=2), gate.make_thresholds(99.5)).result == gate.PASS


SLOWER: dict[str, Any] = {
    "latency_verdict": "slower",
    "shift_ratio": 1.4,
    "ci_low": 1.2,
    "ci_high": 1.61,
}


def test_judge_fails_on_candidate_errors_and_latency() -> None:
    t = gate.make_thresholds(90, max_candidate_errors=1.0, max_latency_ratio=1.5)
    r = gate.judge(row(matched=98, candidate_errors=2, latency_ratio=1.6, **SLOWER), t)
    assert r.result == gate.FAIL
    assert r.reasons == (
        "candidate errors 2.00% > 1%",
        "p95 latency x1.60 > x1.5, significantly slower (shift x1.40 [1.20-1.61])",
    )
    ok = gate.judge(row(matched=99, candidate_errors=1, latency_ratio=1.5, **SLOWER), t)
    assert ok.result == gate.PASS


@pytest.mark.parametrize(
    ("verdict", "ratio", "result"),
    [
        ("slower", 1.6, gate.FAIL),
        ("slower", 1.5, gate.PASS),  # significantly slower, but within the threshold
        ("same", 3.0, gate.PASS),  # a p95 over the threshold, no significant shift
        ("faster", 3.0, gate.PASS),
        ("too few", 9.0, gate.PASS),  # never judged on fewer than 50 pairs a side
        (None, 9.0, gate.PASS),  # a row without the comparison: not significant either
    ],
)
def test_latency_fails_only_a_significant_slowdown(
    verdict: str | None, ratio: float, result: str
) -> None:
    t = gate.make_thresholds(99.0, max_latency_ratio=1.5)
    latency: dict[str, Any] = {**SLOWER, "latency_verdict": verdict, "latency_samples": 500}
    r = gate.judge(row(latency_ratio=ratio, **latency), t)
    assert r.result == result
    assert r.latency == (f"{ratio:.2f} {verdict}" if verdict else f"{ratio:.2f}")
    # without --max-latency-ratio latency never fails
    assert gate.judge(row(latency_ratio=ratio, **latency), gate.make_thresholds(99)).result == (
        gate.PASS
    )


def test_few_samples_are_inconclusive_never_passed() -> None:
    t = gate.make_thresholds(99.0, min_samples=20, max_latency_ratio=1.1)
    r = gate.judge(row(matched=19, latency_ratio=9.0), t)
    assert (r.result, r.why) == (gate.INCONCLUSIVE, "19 compared < 20 samples")
    bad = gate.judge(row(matched=0, differed=19), t)
    assert bad.result == gate.INCONCLUSIVE  # too few to fail on parity either


def test_errors_fail_even_when_too_few_were_compared() -> None:
    t = gate.make_thresholds(99.0, max_candidate_errors=5.0, min_samples=20)
    r = gate.judge(row(matched=2, candidate_errors=30), t)
    assert r.result == gate.FAIL
    assert "candidate errors" in r.why
    # by default (at most 1 % candidate errors) it fails too
    default = gate.judge(row(matched=2, candidate_errors=30), gate.make_thresholds(99))
    assert (default.result, default.why) == (gate.FAIL, "candidate errors 93.75% > 1%")
    # with the error check off (100 %) the same endpoint is inconclusive (2 compared)
    off = gate.make_thresholds(99, max_candidate_errors=100.0)
    assert gate.judge(row(matched=2, candidate_errors=30), off).result == gate.INCONCLUSIVE


def test_endpoint_with_every_request_skipped_is_not_judged() -> None:
    r = gate.judge(row("POST /x", matched=0, skipped=5), gate.make_thresholds(99))
    assert r.result == gate.NOT_COPIED


def test_gate_decision() -> None:
    t = gate.make_thresholds(99.0)
    allow = gate.make_thresholds(99.0, allow_inconclusive=True)
    passing = gate.judge(row("GET /a"), t)
    failing = gate.judge(row("GET /b", matched=50, differed=50), t)
    unsure = gate.judge(row("GET /c", matched=3), t)
    skipped = gate.judge(row("POST /d", matched=0, skipped=3), t)
    assert gate.passed([passing, skipped], t)
    assert not gate.passed([passing, failing], allow)
    assert not gate.passed([passing, unsure], t)
    assert gate.passed([passing, unsure], allow)
    assert not gate.passed([unsure], allow)  # nothing judged at all
    assert not gate.passed([skipped], allow)
    assert not gate.passed([], allow)
    assert "no endpoint had enough samples" in gate.summary_line([unsure], allow)


def test_failing_rows_first_then_inconclusive_then_by_parity() -> None:
    t = gate.make_thresholds(90.0)
    rows = [
        row("GET /pass-high", matched=100),
        row("POST /skipped", matched=0, skipped=4),
        row("GET /pass-low", matched=95, differed=5),
        row("GET /unsure", matched=3),
        row("GET /fail-mild", matched=80, differed=20),
        row("GET /fail-bad", matched=10, differed=90),
    ]
    names = [r.endpoint for r in gate.evaluate(rows, t)]
    assert names == [
        "GET /fail-bad",
        "GET /fail-mild",
        "GET /unsure",
        "GET /pass-low",
        "GET /pass-high",
        "POST /skipped",
    ]
    table = gate.format_table(gate.evaluate(rows, t)).splitlines()
    assert table[0].split()[:3] == ["endpoint", "samples", "parity"]
    assert re.split(r"\s{2,}", table[1]) == [
        "GET /fail-bad", "100", "10.00%", "90%", "0.00%", "1.00", "FAIL", "parity 10.00% < 90%",
    ]  # fmt: skip


def test_percentages_are_cut_not_rounded() -> None:
    assert gate.fmt_pct(99.999) == "99.99%"
    assert gate.fmt_pct(100.0) == "100.00%"
    assert gate.fmt_pct(99.5) == "99.50%"
    assert gate.fmt_pct(None) == "n/a"


def test_unused_patterns_are_reported() -> None:
    t = gate.make_thresholds(99.0, ["GET /a*=90", "GET /typo*=90"])
    results = gate.evaluate([row("GET /a")], t)
    assert gate.unused_patterns(results, t) == ["GET /typo*"]
    errors = gate.make_thresholds(99, endpoint_errors=["GET /also-typo*=5", "GET /*=5"])
    assert gate.unused_patterns(results, errors, "--endpoint-max-errors") == ["GET /also-typo*"]


# --- SQL on a real store -------------------------------------------------------------------

TRAFFIC = [
    Traffic("GET /api/analysis/{id}", match=97, differ=3, candidate_errors=2, skipped=0),
    Traffic("GET /api/insights", match=10, noisy_matches=30, candidate_errors=1, skipped=9),
    Traffic("GET /api/slow", match=60, primary_ms=10.0, candidate_ms=40.0),
    Traffic("GET /api/few", match=5, differ=1, primary_errors=3),
    Traffic("POST /api/start", skipped=4),
    Traffic("GET /api/analysis/{id}", match=1, differ=4, run_id="r2"),
]


# GET /api/slow: primary 10..69 ms, candidate 40..158 ms; p95 2.30 times the primary's,
# and 2.50 times slower by the Hodges-Lehmann shift (60 x 60 log differences)
SLOW_FAILURE = "p95 latency x2.30 > x2, significantly slower (shift x2.50 [2.16-2.98])"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_store(tmp_path_factory.mktemp("gate") / "shadow.duckdb", TRAFFIC)


def test_query_counts_per_endpoint(store: str) -> None:
    rows = fetch(store)
    assert set(rows) == {t.endpoint for t in TRAFFIC}
    a = rows["GET /api/analysis/{id}"]
    assert (a["requests"], a["sent"], a["compared"], a["matched"], a["candidate_errors"]) == (
        107,
        107,
        105,
        98,
        2,
    )
    assert a["parity"] == pytest.approx(100 * 98 / 105)
    assert a["candidate_error_pct"] == pytest.approx(100 * 2 / 107)
    few = rows["GET /api/few"]
    assert (few["compared"], few["sent"], few["requests"]) == (6, 9, 9)
    post = rows["POST /api/start"]
    assert (post["sent"], post["compared"], post["parity"], post["latency_ratio"]) == (
        0,
        0,
        None,
        None,
    )


def test_noise_and_accepted_differences_do_not_lower_parity(store: str) -> None:
    con = open_for_reading(store, wait=5)
    try:
        judged = con.execute(
            "SELECT path, status, count(*) FROM shadow_difference_outcomes(NULL) "
            "WHERE endpoint = 'GET /api/insights' GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    # the secondary changed the same value (noise); the run's config accepts $.engine
    assert judged == [("$.engine", "accepted", 30), ("$.metrics.avgOrderValue", "noise", 30)]
    ins = fetch(store)["GET /api/insights"]
    assert (ins["compared"], ins["matched"], ins["tolerated"], ins["parity"]) == (40, 40, 30, 100.0)
    # skipped requests never reached the candidate: not in the error-rate denominator
    assert ins["candidate_error_pct"] == pytest.approx(100 * 1 / 41)
    # a reader's config without that [[accepted]] entry replaces the run's own: they differ
    strict = fetch(store, accepted=[])["GET /api/insights"]
    assert (strict["matched"], strict["differed"], strict["tolerated"]) == (10, 30, 0)


def test_only_same_status_secondaries_are_evidence(tmp_path: Path) -> None:
    """A secondary that answered 503 says nothing about the fields: the change is real."""
    flaky = Traffic("GET /api/flaky", noisy_matches=20)
    calls = flaky.calls()
    for call in calls[:5]:
        call.secondary_status = 503
    db = write_store(tmp_path / "flaky.duckdb", calls, config=CONFIG)
    rows = fetch(db)["GET /api/flaky"]
    assert (rows["compared"], rows["secondary_unusable"]) == (20, 5)
    con = open_for_reading(db, wait=5)
    try:
        fields = con.execute(
            "SELECT cluster_path, n, k_s, k_c, is_noise FROM shadow_noise_fields(NULL) "
            "ORDER BY cluster_path"
        ).fetchall()
        provisional = con.execute(
            "SELECT count(*) FILTER (WHERE provisional_verdict = 'differ') "
            "FROM shadow_exchange_outcomes(NULL)"
        ).fetchone()
    finally:
        con.close()
    # only the 15 usable exchanges are evidence; in all of them the secondary changed
    # the value as the candidate did, so the value is noise for the whole endpoint ...
    assert fields == [
        ("$.engine", 15, 0, 15, False),  # never on the secondary: accepted, not noise
        ("$.metrics.avgOrderValue", 15, 15, 15, True),
    ]
    # ... and the 5 written as differ (no direct evidence) are judged matches
    assert provisional == (5,)
    assert rows["matched"] == 20


def test_latency_ratio_is_p95_over_p95_of_compared_exchanges(store: str) -> None:
    slow = fetch(store)["GET /api/slow"]
    primary = [10.0 + k for k in range(60)]
    candidate = [40.0 + 2 * k for k in range(60)]
    p95 = statistics.quantiles(primary, n=20, method="inclusive")[18]
    c95 = statistics.quantiles(candidate, n=20, method="inclusive")[18]
    assert slow["primary_p95"] == pytest.approx(p95)
    assert slow["candidate_p95"] == pytest.approx(c95)
    assert slow["latency_ratio"] == pytest.approx(c95 / p95)
    # candidate timeouts (5000 ms) are errors, not latency
    a = fetch(store)["GET /api/analysis/{id}"]
    assert a["candidate_p95"] < 1000


def test_run_filter_and_unknown_run(store: str) -> None:
    r2 = fetch(store, "r2")
    assert list(r2) == ["GET /api/analysis/{id}"]
    assert (r2["GET /api/analysis/{id}"]["compared"], r2["GET /api/analysis/{id}"]["matched"]) == (
        5,
        1,
    )
    with pytest.raises(ConfigError, match="no such run"):
        fetch(store, "nope")


def test_gate_on_the_store(store: str) -> None:
    t = gate.make_thresholds(
        99.0,
        ["GET /api/analysis/*=93"],
        max_candidate_errors=3.0,
        max_latency_ratio=2.0,
        min_samples=20,
    )
    results = {r.endpoint: r for r in gate.evaluate(fetch(store).values(), t)}
    assert {k: r.result for k, r in results.items()} == {
        "GET /api/analysis/{id}": gate.PASS,  # 93.3 % >= 93, errors 1.9 % <= 3 %
        "GET /api/insights": gate.PASS,
        "GET /api/slow": gate.FAIL,  # p95 ratio 2.3, significantly slower
        "GET /api/few": gate.INCONCLUSIVE,
        "POST /api/start": gate.NOT_COPIED,
    }
    assert not gate.passed(list(results.values()), t)


# --- JUnit XML -----------------------------------------------------------------------------


def junit_for(store: str, path: Path) -> tuple[Path, gate.Thresholds]:
    t = gate.make_thresholds(
        99.0, ["GET /api/analysis/*=93"], max_candidate_errors=3.0, max_latency_ratio=2.0
    )
    results = gate.evaluate(fetch(store).values(), t)
    gate.junit_xml(results, t, db=store, run_id=None).write(
        path, encoding="utf-8", xml_declaration=True
    )
    return path, t


def test_junit_xml_counts_with_elementtree(store: str, tmp_path: Path) -> None:
    path, _ = junit_for(store, tmp_path / "parity.xml")
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "shadow parity"
    suite = suites[0]
    cases = suite.findall("testcase")
    assert len(cases) == 5 == int(suite.get("tests", "0"))
    assert {c.get("classname") for c in cases} == {"shadow.parity"}
    assert {c.get("name") for c in cases} == {t.endpoint for t in TRAFFIC}
    failures = suite.findall("testcase/failure")
    skipped = suite.findall("testcase/skipped")
    assert len(failures) == 1 == int(suite.get("failures", "0"))
    assert len(skipped) == 2 == int(suite.get("skipped", "0"))  # inconclusive + not copied
    assert failures[0].get("message") == SLOW_FAILURE
    assert {s.get("message", "").split(":")[0] for s in skipped} == {"inconclusive", "not copied"}
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["min_parity"] == "99"
    assert props["max_candidate_errors"] == "3"
    assert props["max_latency_ratio"] == "2"
    assert props["endpoint:GET /api/analysis/*"] == "93"
    assert props["min_samples"] == "20"


def test_junit_xml_escapes_markup_in_names(tmp_path: Path) -> None:
    t = gate.make_thresholds(99.0)
    name = 'GET /a/<b>&"c"'
    results = gate.evaluate([row(name, matched=1, differed=99)], t)
    path = tmp_path / "x.xml"
    gate.junit_xml(results, t, db="a&b.duckdb", run_id=None).write(path, encoding="utf-8")
    case = ET.parse(path).getroot().find("testsuite/testcase")
    assert case is not None and case.get("name") == name


def test_junit_xml_reads_with_junitparser(store: str, tmp_path: Path) -> None:
    junitparser = pytest.importorskip("junitparser")
    path, _ = junit_for(store, tmp_path / "parity.xml")
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].name == "shadow parity"
    suite = suites[0]
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (5, 1, 2, 0)
    by_name = {case.name: case for case in suite}
    assert by_name["GET /api/insights"].is_passed
    slow = by_name["GET /api/slow"].result
    assert len(slow) == 1 and isinstance(slow[0], junitparser.Failure)
    assert slow[0].message == SLOW_FAILURE
    assert by_name["GET /api/few"].is_skipped
    assert by_name["POST /api/start"].is_skipped
    props = {p.name: p.value for p in suite.properties()}
    assert props["min_parity"] == "99"


def test_junit_failure_names_the_threshold_that_failed(store: str, tmp_path: Path) -> None:
    """Default error limit (1 %) and a per-endpoint one: each failure says which it was."""
    t = gate.make_thresholds(
        99.0,
        ["GET /api/analysis/*=93"],
        max_latency_ratio=2.0,
        endpoint_errors=["GET /api/insights=2"],
    )
    results = gate.evaluate(fetch(store).values(), t)
    path = tmp_path / "parity.xml"
    gate.junit_xml(results, t, db=store, run_id=None).write(path, encoding="utf-8")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    failures = {}
    for case in suite.findall("testcase"):
        failure = case.find("failure")
        if failure is not None:
            failures[case.get("name")] = failure.get("message")
    assert failures == {
        "GET /api/analysis/{id}": "candidate errors 1.86% > 1%",
        "GET /api/insights": "candidate errors 2.43% > 2% (GET /api/insights)",
        "GET /api/slow": SLOW_FAILURE,
    }
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["max_candidate_errors"] == "1"
    assert props["endpoint_max_errors:GET /api/insights"] == "2"
    out = {c.get("name"): c.findtext("system-out") or "" for c in suite.findall("testcase")}
    insights = out["GET /api/insights"]
    assert "matched=40 (of which noise/accepted only=30) differed=0" in insights
    assert "candidate_errors=1 (2.43%) max_candidate_errors=2%" in insights
    assert "secondary_unusable=0" in insights
    analysis = out["GET /api/analysis/{id}"]
    assert "threshold=93% (from GET /api/analysis/*)" in analysis
    assert "candidate_errors=2 (1.86%) max_candidate_errors=1%" in analysis
    slow = out["GET /api/slow"]
    assert "p95_ratio=2.30 latency=slower shift=x2.50 [2.16-2.98] latency_samples=60" in slow


# --- latency: only a significant slowdown fails ---------------------------------------------


def test_latency_on_the_store_fails_only_significant_slowdowns(tmp_path: Path) -> None:
    """Three endpoints whose candidate p95 is over twice the primary's: one fails."""
    calls = [
        # 30 compared (over --min-samples 20), three times slower: too few for the test
        *Traffic("GET /api/slow-few", match=30, primary_ms=10.0, candidate_ms=40.0).calls(),
        # slower everywhere, 60 pairs: significant
        *Traffic("GET /api/slow", match=60, primary_ms=10.0, candidate_ms=40.0).calls(),
    ]
    # the same times but for a slow tail on 10 of 100 requests: the p95 quadruples, the
    # whole distribution does not shift (a tail alone is no significant slowdown)
    for k in range(100):
        ms = 10.0 + k % 40
        tail = 200.0 if k % 10 == 0 else ms
        calls.append(Call("GET /api/tail", body(), body(), primary_ms=ms, candidate_ms=tail))
    db = write_store(tmp_path / "latency.duckdb", calls)
    rows = fetch(db)
    assert {e: (r["compared"], r["latency_samples"]) for e, r in rows.items()} == {
        "GET /api/slow-few": (30, 30),
        "GET /api/slow": (60, 60),
        "GET /api/tail": (100, 100),
    }
    assert rows["GET /api/slow-few"]["latency_ratio"] > 2
    assert rows["GET /api/tail"]["latency_ratio"] > 2
    t = gate.make_thresholds(99.0, max_latency_ratio=2.0, min_samples=20)
    results = {r.endpoint: r for r in gate.evaluate(rows.values(), t)}
    assert {e: (r.result, r.latency_verdict) for e, r in results.items()} == {
        "GET /api/slow": (gate.FAIL, "slower"),
        "GET /api/slow-few": (gate.PASS, "too few"),
        "GET /api/tail": (gate.PASS, "same"),
    }
    assert results["GET /api/slow"].why == SLOW_FAILURE
    table = {
        line.split("  ")[0]: re.split(r"\s{2,}", line)
        for line in gate.format_table(list(results.values())).splitlines()[1:]
    }
    assert table["GET /api/slow"][5] == "2.30 slower"
    assert table["GET /api/slow-few"][5:7] == [
        f"{rows['GET /api/slow-few']['latency_ratio']:.2f} too few",
        "PASS",
    ]
    assert table["GET /api/tail"][5:7] == [
        f"{rows['GET /api/tail']['latency_ratio']:.2f} same",
        "PASS",
    ]
