"""Template contexts: dataclasses built from SQL results, so templates compute nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from reports import queries
from reports.jsonview import Line, body_lines

TOP_FIELDS_PER_ENDPOINT = 10
SAMPLES_PER_ENDPOINT = 3


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


@dataclass(frozen=True)
class Summary:
    exchanges: int
    compared: int
    matched: int
    differed: int
    candidate_errors: int
    primary_errors: int
    skipped: int
    endpoints: int
    dropped: int
    first_ts: datetime | None
    last_ts: datetime | None

    @property
    def parity(self) -> float | None:
        return _pct(self.matched, self.compared)

    def describe(self) -> str:
        parity = f"{self.parity:.1f}%" if self.parity is not None else "n/a"
        return (
            f"{self.exchanges} exchanges, {self.endpoints} endpoints, parity {parity} "
            f"({self.matched}/{self.compared} compared), {self.differed} differ, "
            f"{self.candidate_errors} candidate errors, {self.skipped} skipped, "
            f"{self.dropped} copies dropped"
        )


@dataclass(frozen=True)
class FieldStat:
    path: str
    kind: str
    occurrences: int
    exchanges: int
    share: float | None  # % of the endpoint's compared exchanges with this difference
    primary_example: str | None
    candidate_example: str | None


@dataclass(frozen=True)
class Side:
    status: int | None
    ms: float | None
    error: str | None
    headers: list[tuple[str, str]]
    lines: list[Line]
    truncated: bool


@dataclass(frozen=True)
class Sample:
    exchange_id: str
    ts: datetime
    method: str
    target: str
    verdict: str
    request_headers: list[tuple[str, str]]
    request_body: str | None
    primary: Side
    candidate: Side
    differences: list[dict[str, Any]]


@dataclass(frozen=True)
class EndpointRow:
    endpoint: str
    anchor: str
    requests: int
    compared: int
    matched: int
    differed: int
    candidate_errors: int
    primary_errors: int
    skipped: int
    status_mismatches: int
    primary_p50: float | None
    primary_p95: float | None
    candidate_p50: float | None
    candidate_p95: float | None
    fields: list[FieldStat] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def parity(self) -> float | None:
        return _pct(self.matched, self.compared)


@dataclass(frozen=True)
class ReportContext:
    title: str
    db_path: str
    generated_at: datetime
    summary: Summary
    runs: list[dict[str, Any]]
    endpoints: list[EndpointRow]


def _headers(text: str | None) -> list[tuple[str, str]]:
    return [(k, v) for k, v in json.loads(text)] if text else []


def _sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    compared = row["compared"]
    parity = row["matched"] / compared if compared else 2.0  # not compared: after the worst
    return (parity, -row["candidate_errors"], -row["requests"], row["endpoint"])


def _anchor(index: int) -> str:
    return f"ep-{index}"


def build_context(
    con: duckdb.DuckDBPyConnection, db_path: str, run_id: str | None = None
) -> ReportContext:
    """Run the report's queries and shape them for the templates."""
    p = [run_id, run_id]
    s = _rows(con, queries.SUMMARY, p)[0]
    runs = _rows(con, queries.RUNS, p)
    summary = Summary(dropped=sum(int(r["copies_dropped"] or 0) for r in runs), **s)
    ep_rows = sorted(_rows(con, queries.ENDPOINTS, p), key=_sort_key)

    fields: dict[str, list[FieldStat]] = {}
    compared_by_ep = {r["endpoint"]: r["compared"] for r in ep_rows}
    for f in _rows(con, queries.TOP_FIELDS, [*p, TOP_FIELDS_PER_ENDPOINT]):
        ep = f.pop("endpoint")
        f["share"] = _pct(f["exchanges"], compared_by_ep.get(ep, 0))
        fields.setdefault(ep, []).append(FieldStat(**f))

    sample_rows = _rows(con, queries.SAMPLES, [*p, SAMPLES_PER_ENDPOINT])
    diffs: dict[str, list[dict[str, Any]]] = {}
    if sample_rows:
        ids = [r["exchange_id"] for r in sample_rows]
        for d in _rows(con, queries.SAMPLE_DIFFERENCES, [ids]):
            diffs.setdefault(d.pop("exchange_id"), []).append(d)
    samples: dict[str, list[Sample]] = {}
    for r in sample_rows:
        these = diffs.get(r["exchange_id"], [])
        paths = frozenset(d["path"] for d in these)
        target = r["path"] + (f"?{r['query']}" if r["query"] else "")
        samples.setdefault(r["endpoint"], []).append(
            Sample(
                exchange_id=r["exchange_id"],
                ts=r["ts"],
                method=r["method"],
                target=target,
                verdict=r["verdict"],
                request_headers=_headers(r["request_headers"]),
                request_body=r["request_body"],
                primary=Side(
                    r["primary_status"], r["primary_ms"], r["primary_error"],
                    _headers(r["primary_headers"]), body_lines(r["primary_body"], paths),
                    bool(r["primary_body_truncated"]),
                ),
                candidate=Side(
                    r["candidate_status"], r["candidate_ms"], r["candidate_error"],
                    _headers(r["candidate_headers"]), body_lines(r["candidate_body"], paths),
                    bool(r["candidate_body_truncated"]),
                ),
                differences=these,
            )
        )  # fmt: skip

    endpoints = [
        EndpointRow(
            anchor=_anchor(i),
            fields=fields.get(r["endpoint"], []),
            samples=samples.get(r["endpoint"], []),
            **r,
        )
        for i, r in enumerate(ep_rows)
    ]
    return ReportContext(
        title="Shadow parity report",
        db_path=db_path,
        generated_at=datetime.now(),
        summary=summary,
        runs=runs,
        endpoints=endpoints,
    )
