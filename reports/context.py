"""Template contexts: dataclasses built from SQL results, so templates compute nothing.

Sizes are bounded whatever the store holds: every endpoint gets a table row,
but only the MAX_DETAIL_ENDPOINTS worst get a section, each with at most
CLUSTERS_PER_STATUS clusters per status and SAMPLES_PER_ENDPOINT samples whose
bodies are cut to BODY_CHARS characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import duckdb

from reports import queries
from reports._sql import rows
from reports.baseline import Delta, RunComparison, Snapshot, compare
from reports.cutover import CutoverSection, load_cutover
from reports.data import DataSection, load_data
from reports.detail import Cluster, load_clusters, load_histograms
from reports.overview import EndpointRow, Summary, load_endpoints, never_exercised, summarize
from reports.samples import Sample, Side, load_samples
from shadow.store import outcomes

MAX_DETAIL_ENDPOINTS = 200
CLUSTERS_PER_STATUS = 10
SAMPLES_PER_ENDPOINT = 3
BODY_CHARS = 8192

__all__ = [
    "BODY_CHARS",
    "CLUSTERS_PER_STATUS",
    "MAX_DETAIL_ENDPOINTS",
    "SAMPLES_PER_ENDPOINT",
    "Cluster",
    "CutoverSection",
    "DataSection",
    "EndpointRow",
    "ReportContext",
    "RunComparison",
    "Sample",
    "Side",
    "Summary",
    "build_context",
]


@dataclass(frozen=True)
class ReportContext:
    title: str
    db_path: str
    scope: str  # "all runs" or "run <id>"
    generated_at: datetime
    summary: Summary
    runs: list[dict[str, Any]]
    endpoints: list[EndpointRow]  # all, worst first
    detailed: list[EndpointRow]  # those with a section
    routes_known: bool
    unexercised: list[str]  # known routes without traffic
    comparison: RunComparison | None
    cutover: CutoverSection | None = None  # route modes and events, when the scope has any
    data: DataSection | None = None  # tables compared by `shadow data diff`, when any

    @property
    def not_detailed(self) -> int:
        return len(self.endpoints) - len(self.detailed)

    @property
    def http(self) -> bool:
        """Whether to show the HTTP sections: not when the scope holds only table diffs."""
        return bool(self.endpoints) or self.data is None


def build_context(
    con: duckdb.DuckDBPyConnection,
    db_path: str,
    run_id: str | None = None,
    *,
    routes: Sequence[str] | None = None,
    baseline: Snapshot | None = None,
    max_detail: int | None = None,
) -> ReportContext:
    """Run the report's queries and shape them for the templates.

    `routes` ("METHOD /template") are the known routes; `baseline` what to compare with;
    `max_detail` how many of the worst endpoints get a section (MAX_DETAIL_ENDPOINTS).
    """
    if max_detail is None:
        max_detail = MAX_DETAIL_ENDPOINTS
    # Many questions about one scope: judge its differences once (the same answers).
    outcomes.cache(con, run_id)
    runs = rows(con, queries.RUNS, {"run": run_id})
    endpoints = load_endpoints(con, run_id, detailed=max_detail)
    summary = summarize(endpoints, runs)
    names = [e.endpoint for e in endpoints if e.anchor is not None]

    compared = {e.endpoint: e.compared for e in endpoints}
    clusters, totals = load_clusters(con, run_id, names, compared, CLUSTERS_PER_STATUS)
    histograms = load_histograms(con, run_id, names)
    urls = {r["run_id"]: (r["primary_url"], r["candidate_url"]) for r in runs}
    samples = load_samples(con, run_id, names, SAMPLES_PER_ENDPOINT, BODY_CHARS, urls)

    scope = f"run {run_id}" if run_id is not None else "all runs"
    comparison = None
    deltas: dict[str, Delta] = {}
    if baseline is not None:
        comparison, deltas = compare(baseline, scope, summary, endpoints)

    def detail(e: EndpointRow) -> EndpointRow:
        mine = clusters.get(e.endpoint, {})
        return replace(
            e,
            delta=deltas.get(e.endpoint),
            clusters=mine.get("real", []),
            noise=mine.get("noise", []),
            accepted=mine.get("accepted", []),
            cluster_totals=totals.get(e.endpoint, {}),
            samples=samples.get(e.endpoint, []),
            histogram=histograms.get(e.endpoint),
        )

    endpoints = [detail(e) for e in endpoints]
    data = load_data(con, run_id)
    if data is not None:
        summary = replace(
            summary, data_tables=data.tables_total, data_tables_differing=data.tables_differing
        )
    return ReportContext(
        title="Shadow parity report",
        db_path=db_path,
        scope=scope,
        generated_at=datetime.now(),
        summary=summary,
        runs=runs,
        endpoints=endpoints,
        detailed=[e for e in endpoints if e.anchor is not None],
        routes_known=routes is not None,
        unexercised=never_exercised(routes or (), (e.endpoint for e in endpoints)),
        comparison=comparison,
        cutover=load_cutover(con, run_id),
        data=data,
    )
