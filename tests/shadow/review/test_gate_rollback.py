"""shadow.review.gate with rollbacks (`shadow check --fail-on-rollback`), on real stores."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from shadow.review import gate
from shadow.store.writer import open_for_reading
from tests.store_builder import CutoverCall, event, write_cutover_store

OK = {"ok": True}
ROUTE = "/api/orders/{id}"
THRESHOLDS = gate.Thresholds(min_samples=20)
HOSTILE = "error rate 0.4 > 0.05 <script>x</script>\x1b[31m\x00"


def traffic(run_id: str = "r1", n: int = 30) -> list[CutoverCall]:
    """Two routes that pass every parity check: the gate fails only on a rollback."""
    return [
        CutoverCall("GET " + route, OK, OK, mode="canary", run_id=run_id, at=i)
        for route in (ROUTE, "/api/users")
        for i in range(n)
    ]


def judged(db: str, run_id: str | None = None) -> tuple[list[Any], list[gate.RouteRollback]]:
    con = open_for_reading(db, wait=5)
    try:
        rows = gate.fetch_rows(con, run_id)
        return gate.evaluate(rows, THRESHOLDS), gate.fetch_rollbacks(con, run_id)
    finally:
        con.close()


def rollback(at: float, reason: str, run_id: str = "r1", route: str | None = ROUTE) -> Any:
    return event("rollback", at, route, run_id=run_id, before="canary", after="legacy",
                 reason=reason, evidence={"error_rate": 0.4, "window_s": 60})  # fmt: skip


@pytest.fixture
def rolled_back(tmp_path: Path) -> str:
    events = [
        event("flag_change", 1, ROUTE, before="shadow", after="canary", actor="alice"),
        rollback(10, "error rate 0.30 > 0.05"),
        rollback(20, HOSTILE),
        event("notification", 21, ROUTE, evidence="HTTP 200"),
    ]
    return write_cutover_store(tmp_path / "s.duckdb", traffic(), events)


def suites(tree: ET.ElementTree[ET.Element]) -> dict[str, ET.Element]:
    return {s.get("name", ""): s for s in tree.getroot().iter("testsuite")}


def reparsed(tree: ET.ElementTree[ET.Element], path: Path) -> ET.ElementTree[ET.Element]:
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return ET.parse(path)  # a CI server must be able to read it


def test_fails_with_a_rollback(rolled_back: str, tmp_path: Path) -> None:
    results, rollbacks = judged(rolled_back)
    assert gate.passed(results, THRESHOLDS)  # parity alone passes
    assert [(r.route, r.rollbacks, r.mode_before, r.mode_after) for r in rollbacks] == [
        (ROUTE, 2, "canary", "legacy")
    ]
    assert rollbacks[0].reasons == ("error rate 0.30 > 0.05", HOSTILE)
    assert not gate.passed(results, THRESHOLDS, rollbacks)
    line = gate.summary_line(results, THRESHOLDS, rollbacks)
    assert line.startswith("shadow check FAILED: 2 passed, 0 failed")
    assert line.endswith(f"; 1 route rolled back ({ROUTE})")
    log = gate.format_rollbacks(rollbacks)
    assert log.startswith(f"ROLLBACK  {ROUTE}  rolled back 2x canary -> legacy at ")
    assert "error rate 0.30 > 0.05; error rate 0.4 > 0.05 <script>x</script> [31m" in log
    assert "\x1b" not in log and "\x00" not in log and "\n" not in log


def test_junit_has_a_failing_case_per_rolled_back_route(rolled_back: str, tmp_path: Path) -> None:
    results, rollbacks = judged(rolled_back)
    tree = reparsed(
        gate.junit_xml(results, THRESHOLDS, db=rolled_back, run_id=None, rollbacks=rollbacks),
        tmp_path / "junit.xml",
    )
    root = tree.getroot()
    assert (root.get("tests"), root.get("failures")) == ("3", "1")
    by_name = suites(tree)
    assert by_name["shadow parity"].get("failures") == "0"
    cut = by_name["shadow cutover"]
    assert (cut.get("tests"), cut.get("failures")) == ("1", "1")
    (case,) = cut.iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("shadow.rollback", ROUTE)
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "Rollback"
    assert "error rate 0.30 > 0.05" in (failure.get("message") or "")
    assert "<script>x</script>" in (failure.get("message") or "")
    assert '"error_rate": 0.4' in (failure.text or "")


def test_one_case_per_route_and_runs_apart(tmp_path: Path) -> None:
    events = [
        rollback(5, "users broke", route="/api/users"),
        rollback(6, "orders broke"),
        rollback(7, "everything", route=None),
        rollback(8, "in the other run", run_id="r2"),
    ]
    db = write_cutover_store(tmp_path / "s.duckdb", traffic() + traffic("r2"), events)
    results, rollbacks = judged(db, "r1")
    assert [r.name for r in rollbacks] == [gate.ALL_ROUTES, ROUTE, "/api/users"]
    assert [r.reasons for r in rollbacks] == [("everything",), ("orders broke",), ("users broke",)]
    assert gate.summary_line(results, THRESHOLDS, rollbacks).endswith(
        f"; 3 routes rolled back ({gate.ALL_ROUTES}, {ROUTE}, /api/users)"
    )
    cut = suites(gate.junit_xml(results, THRESHOLDS, db=db, run_id="r1", rollbacks=rollbacks))
    assert [c.get("name") for c in cut["shadow cutover"].iter("testcase")] == [
        gate.ALL_ROUTES, ROUTE, "/api/users",
    ]  # fmt: skip
    _, everywhere = judged(db)
    assert [(r.name, r.runs) for r in everywhere if r.route == ROUTE] == [(ROUTE, ("r1", "r2"))]


def test_passes_without_a_rollback(tmp_path: Path) -> None:
    events = [
        event("flag_change", 1, ROUTE, before="shadow", after="canary", actor="alice"),
        event("fallbacks", 2, ROUTE, reason="3 fallbacks"),
        event("notification", 3, ROUTE),
    ]
    db = write_cutover_store(tmp_path / "s.duckdb", traffic(), events)
    results, rollbacks = judged(db)
    assert rollbacks == []
    assert gate.passed(results, THRESHOLDS, rollbacks)
    assert gate.summary_line(results, THRESHOLDS, rollbacks) == (
        "shadow check PASSED: 2 passed, 0 failed, 0 inconclusive; no rollback"
    )
    assert gate.format_rollbacks(rollbacks) == ""
    tree = reparsed(
        gate.junit_xml(results, THRESHOLDS, db=db, run_id=None, rollbacks=rollbacks),
        tmp_path / "junit.xml",
    )
    assert (tree.getroot().get("tests"), tree.getroot().get("failures")) == ("3", "0")
    (case,) = suites(tree)["shadow cutover"].iter("testcase")
    assert case.get("name") == "no rollback" and case.find("failure") is None


def test_not_checked_is_the_gate_as_before(rolled_back: str) -> None:
    """Without --fail-on-rollback (rollbacks=None) a rollback changes nothing."""
    results, _ = judged(rolled_back)
    unchecked: Sequence[gate.RouteRollback] | None = None
    assert gate.passed(results, THRESHOLDS, unchecked)
    assert gate.summary_line(results, THRESHOLDS) == gate.summary_line(
        results, THRESHOLDS, unchecked
    )
    assert "rolled back" not in gate.summary_line(results, THRESHOLDS)
    tree = gate.junit_xml(results, THRESHOLDS, db=rolled_back, run_id=None)
    assert list(suites(tree)) == ["shadow parity"]
    assert tree.getroot().get("tests") == "2"


def test_a_rollback_fails_even_a_gate_with_nothing_judged(tmp_path: Path) -> None:
    db = write_cutover_store(tmp_path / "s.duckdb", traffic(n=3), [rollback(1, "broke")])
    results, rollbacks = judged(db)
    lenient = gate.Thresholds(min_samples=20, allow_inconclusive=True)
    assert not gate.passed(results, lenient, rollbacks)
    assert "rolled back" in gate.summary_line(results, lenient, rollbacks)
