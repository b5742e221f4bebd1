"""Rollbacks in the selected runs, for `shadow check --fail-on-rollback`.

Read from the `events` the rollback controller writes (kind 'rollback'), one entry
per route; shadow.review.gate fails on any and reports them in its log lines and
JUnit file (a testsuite 'shadow cutover').
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

# The rollback events of the selected runs (parameters: the run id twice, NULL for all),
# one row per route (NULL: a rollback of every route), the latest rollback's details.
ROLLBACKS_QUERY = """
SELECT route, count(*) AS rollbacks, min(ts) AS first_ts, max(ts) AS last_ts,
       list(coalesce(reason, '') ORDER BY ts, event_id) AS reasons,
       arg_max(mode_before, ts) AS mode_before, arg_max(mode_after, ts) AS mode_after,
       arg_max(actor, ts) AS actor, arg_max(evidence, ts) AS evidence,
       list(DISTINCT run_id ORDER BY run_id) AS runs
FROM events
WHERE kind = 'rollback' AND (CAST(? AS VARCHAR) IS NULL OR run_id = ?)
GROUP BY route
ORDER BY route NULLS FIRST
"""
ALL_ROUTES = "(all routes)"
# Reasons and evidence are written by backends and people: no control characters in a
# log line (terminal escapes), none that XML 1.0 cannot hold in the JUnit file.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass(frozen=True)
class RouteRollback:
    """The rollbacks of one route in the selected runs (the controller's events)."""

    route: str | None  # None: the event named no route
    rollbacks: int
    first_ts: datetime | None
    last_ts: datetime | None
    reasons: tuple[str, ...]  # every rollback's reason, oldest first ('' when none given)
    mode_before: str | None  # of the latest rollback
    mode_after: str | None
    actor: str | None
    evidence: str | None  # the latest rollback's evidence, JSON as stored
    runs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.route or ALL_ROUTES

    @property
    def why(self) -> str:
        """One line: how often, the mode change, and the reasons."""
        times = f"rolled back {self.rollbacks}x" if self.rollbacks != 1 else "rolled back"
        change = f" {self.mode_before or '?'} -> {self.mode_after or '?'}"
        when = f" at {str(self.last_ts)[:19]}" if self.last_ts is not None else ""
        given = dict.fromkeys(_one_line(r) for r in self.reasons if r.strip())
        return _one_line(f"{times}{change}{when}: {'; '.join(given) or 'no reason given'}")


def fetch_rollbacks(con: duckdb.DuckDBPyConnection, run_id: str | None) -> list[RouteRollback]:
    """The rolled-back routes of `run_id` (None: every run), by route.

    `con` comes from `shadow.store.writer.reading`; call `fetch_rows` first, which
    refuses an unknown `run_id`.
    """
    found = con.execute(ROLLBACKS_QUERY, [run_id, run_id]).fetchall()
    return [
        RouteRollback(
            route=route, rollbacks=int(n), first_ts=first, last_ts=last,
            reasons=tuple(reasons or ()), mode_before=before, mode_after=after,
            actor=actor, evidence=evidence, runs=tuple(r for r in runs or () if r is not None),
        )
        for route, n, first, last, reasons, before, after, actor, evidence, runs in found
    ]  # fmt: skip


def format_rollbacks(rollbacks: Sequence[RouteRollback]) -> str:
    """Lines for the CI log, one per rolled-back route ('' when there is none)."""
    return "\n".join(f"ROLLBACK  {_one_line(r.name)}  {r.why}" for r in rollbacks)


def cutover_suite(root: ET.Element, rollbacks: Sequence[RouteRollback], run_id: str | None) -> None:
    n = len(rollbacks)
    counts = {"tests": str(max(1, n)), "failures": str(n), "errors": "0", "skipped": "0"}
    suite = ET.SubElement(root, "testsuite", {"name": "shadow cutover", **counts, "time": "0"})
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", {"name": "fail_on_rollback", "value": "true"})
    ET.SubElement(props, "property", {"name": "run", "value": run_id or "all"})
    if not rollbacks:
        ET.SubElement(
            suite, "testcase", {"classname": "shadow.rollback", "name": "no rollback", "time": "0"}
        )
        return
    for r in rollbacks:
        name = _xml_text(r.name)
        case = ET.SubElement(
            suite, "testcase", {"classname": "shadow.rollback", "name": name, "time": "0"}
        )
        detail = _xml_text(
            f"route={r.name} rollbacks={r.rollbacks} first={str(r.first_ts)[:19]} "
            f"last={str(r.last_ts)[:19]} mode={r.mode_before} -> {r.mode_after} "
            f"actor={r.actor or '-'} runs={','.join(r.runs) or '-'}\n"
            + "".join(f"reason: {reason}\n" for reason in r.reasons if reason)
            + (f"evidence: {r.evidence}" if r.evidence else "")
        )
        message = _xml_text(r.why)
        ET.SubElement(case, "failure", {"message": message, "type": "Rollback"}).text = detail
        ET.SubElement(case, "system-out").text = detail


__all__ = [
    "ALL_ROUTES",
    "ROLLBACKS_QUERY",
    "RouteRollback",
    "cutover_suite",
    "fetch_rollbacks",
    "format_rollbacks",
]
