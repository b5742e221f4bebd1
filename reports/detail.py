"""An endpoint's section: difference clusters by status, and latency histograms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from reports import queries
from reports._sql import pct, rows
from reports.histogram import Histogram, build_histogram

STATUSES = ("real", "noise", "accepted")


@dataclass(frozen=True)
class Cluster:
    """Differences of one endpoint that share a path (indices as [*]), kind and status."""

    path: str  # cluster path, e.g. $.items[*].price
    kind: str
    status: str  # real | noise | accepted
    occurrences: int
    exchanges: int
    share: float | None  # % of the endpoint's compared exchanges having it
    example_path: str
    primary_example: str | None
    candidate_example: str | None
    example_exchange: str
    reason: str | None  # why noise or accepted
    evidence: int  # primary-vs-secondary differences seen at this path (noise)


def load_clusters(
    con: duckdb.DuckDBPyConnection,
    run_id: str | None,
    endpoints: Sequence[str],
    compared: dict[str, int],
    per_status: int,
) -> tuple[dict[str, dict[str, list[Cluster]]], dict[str, dict[str, int]]]:
    """endpoint -> status -> clusters (bounded), and endpoint -> status -> clusters in all."""
    clusters: dict[str, dict[str, list[Cluster]]] = {}
    totals: dict[str, dict[str, int]] = {}
    params: dict[str, Any] = {"run": run_id, "eps": list(endpoints), "n": per_status}
    for r in rows(con, queries.CLUSTERS, params):
        ep, status, ex = r["endpoint"], r["status"], r["example"]
        totals.setdefault(ep, {})[status] = r["status_clusters"]
        clusters.setdefault(ep, {}).setdefault(status, []).append(
            Cluster(
                path=r["cluster"], kind=r["kind"], status=status,
                occurrences=r["occurrences"], exchanges=r["exchanges"],
                share=pct(r["exchanges"], compared.get(ep, 0)),
                example_path=ex["path"], primary_example=ex["pv"],
                candidate_example=ex["cv"], example_exchange=ex["id"],
                reason=r["reason"], evidence=r["evidence"],
            )
        )  # fmt: skip
    return clusters, totals


def load_histograms(
    con: duckdb.DuckDBPyConnection, run_id: str | None, endpoints: Sequence[str]
) -> dict[str, Histogram]:
    counts: dict[str, dict[str, dict[int, int]]] = {}
    params: dict[str, Any] = {"run": run_id, "eps": list(endpoints)}
    for r in rows(con, queries.HISTOGRAM, params):
        counts.setdefault(r["endpoint"], {}).setdefault(r["side"], {})[r["bucket"]] = r["n"]
    out = {}
    for ep, per_side in counts.items():
        hist = build_histogram(per_side)
        if hist is not None:
            out[ep] = hist
    return out
