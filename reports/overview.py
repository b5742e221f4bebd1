"""The overview: the summary numbers and one row per endpoint, straight from SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb

from reports import queries
from reports._sql import pct, rows
from reports.latency import LatencyComparison

if TYPE_CHECKING:
    from reports.baseline import Delta
    from reports.detail import Cluster
    from reports.histogram import Histogram
    from reports.samples import Sample


@dataclass(frozen=True)
class Summary:
    exchanges: int
    compared: int
    matched: int  # includes `tolerated`: only noise or accepted differences
    differed: int  # real differences
    candidate_errors: int
    primary_errors: int
    skipped: int
    endpoints: int
    dropped: int
    first_ts: datetime | None
    last_ts: datetime | None
    tolerated: int = 0
    secondary_unusable: int = 0  # secondary errored or gave another status: no evidence
    lost: int = 0  # requests neither stored, spilled nor shed (a worker died or was killed)
    spilled: int = 0  # rows saved beside the database, not in it
    data_tables: int = 0  # tables compared by `shadow data diff` (reports/data.py)
    data_tables_differing: int = 0

    @property
    def parity(self) -> float | None:
        return pct(self.matched, self.compared)

    def describe(self) -> str:
        data = (
            f"{self.data_tables_differing} of {self.data_tables} data tables differ"
            if self.data_tables
            else ""
        )
        if data and not self.endpoints:  # only table diffs in scope
            return data
        parity = f"{self.parity:.1f}%" if self.parity is not None else "n/a"
        tolerated = f" ({self.tolerated} only noise/accepted)" if self.tolerated else ""
        return (
            f"{self.exchanges} exchanges, {self.endpoints} endpoints, parity {parity} "
            f"({self.matched}/{self.compared} compared), {self.differed} differ{tolerated}, "
            f"{self.candidate_errors} candidate errors, {self.skipped} skipped, "
            f"{self.dropped} copies dropped"
            + (f", {self.lost} requests lost" if self.lost else "")
            + (f", {self.spilled} rows in the spill file" if self.spilled else "")
            + (f"; {data}" if data else "")
        )


@dataclass(frozen=True)
class EndpointRow:
    endpoint: str
    anchor: str | None  # id of its detail section; None beyond the detail cap
    requests: int
    compared: int
    matched: int
    differed: int
    tolerated: int
    candidate_errors: int
    primary_errors: int
    skipped: int
    sent: int  # requests whose copy was sent (not skipped)
    status_mismatches: int
    secondary_unusable: int
    truncated: int  # differ because more differences existed than were kept
    primary_p50: float | None
    primary_p95: float | None
    primary_p99: float | None
    candidate_p50: float | None
    candidate_p95: float | None
    candidate_p99: float | None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    latency: LatencyComparison | None = None  # None: not loaded (a baseline's figures)
    delta: Delta | None = None
    clusters: list[Cluster] = field(default_factory=list)  # real differences
    noise: list[Cluster] = field(default_factory=list)
    accepted: list[Cluster] = field(default_factory=list)
    cluster_totals: dict[str, int] = field(default_factory=dict)  # status -> clusters in all
    samples: list[Sample] = field(default_factory=list)
    histogram: Histogram | None = None

    @property
    def parity(self) -> float | None:
        return pct(self.matched, self.compared)

    @property
    def candidate_error_rate(self) -> float | None:
        return pct(self.candidate_errors, self.sent)

    def hidden(self, status: str) -> int:
        """Clusters of this status beyond those shown."""
        shown = {"real": self.clusters, "noise": self.noise, "accepted": self.accepted}[status]
        return self.cluster_totals.get(status, 0) - len(shown)

    @property
    def tags(self) -> str:
        """Words the page's status filter matches on."""
        out = []
        if self.compared and self.matched < self.compared:
            out.append("failing")
        if self.candidate_errors:
            out.append("errors")
        if not self.compared:
            out.append("uncompared")
        if self.delta is not None:
            out.append(self.delta.change)
        return " ".join(out)


def summarize(endpoints: Sequence[EndpointRow], runs: Iterable[dict[str, Any]]) -> Summary:
    """The whole scope's figures: the endpoint figures (one definition) added up."""

    def total(name: str) -> int:
        return sum(int(getattr(e, name)) for e in endpoints)

    firsts = [e.first_ts for e in endpoints if e.first_ts is not None]
    lasts = [e.last_ts for e in endpoints if e.last_ts is not None]
    return Summary(
        exchanges=total("requests"),
        compared=total("compared"),
        matched=total("matched"),
        differed=total("differed"),
        candidate_errors=total("candidate_errors"),
        primary_errors=total("primary_errors"),
        skipped=total("skipped"),
        endpoints=len(endpoints),
        dropped=sum(int(r["copies_dropped"] or 0) for r in runs),
        first_ts=min(firsts) if firsts else None,
        last_ts=max(lasts) if lasts else None,
        tolerated=total("tolerated"),
        secondary_unusable=total("secondary_unusable"),
        lost=sum(int(r["requests_lost"] or 0) for r in runs),
        spilled=sum(int(r["rows_spilled"] or 0) for r in runs),
    )


def _quantiles(values: list[float] | None) -> tuple[float | None, float | None, float | None]:
    if not values:
        return None, None, None
    return values[0], values[1], values[2]


def sort_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """Worst first: lowest parity, then most candidate errors, most traffic, name."""
    compared = row["compared"]
    parity = row["matched"] / compared if compared else 2.0  # not compared: after the worst
    return (parity, -row["candidate_errors"], -row["exchanges"], row["endpoint"])


def load_endpoints(
    con: duckdb.DuckDBPyConnection, run_id: str | None, detailed: int, latency: bool = True
) -> list[EndpointRow]:
    """Every endpoint, worst first; the first `detailed` get an anchor for a section.

    `latency`: also compare the candidate's latency with the primary's (the report's
    own scope; a baseline needs only the figures).
    """
    sql = queries.ENDPOINTS if latency else queries.ENDPOINT_FIGURES
    out = []
    for i, r in enumerate(sorted(rows(con, sql, {"run": run_id}), key=sort_key)):
        p50, p95, p99 = _quantiles(r.pop("primary_q"))
        c50, c95, c99 = _quantiles(r.pop("candidate_q"))
        r["requests"] = r.pop("exchanges")
        compared = LatencyComparison.from_row(r) if latency else None
        if not latency:
            del r["latency_pairs"], r["latency_excluded"]
        out.append(
            EndpointRow(
                anchor=f"ep-{i}" if i < detailed else None,
                primary_p50=p50, primary_p95=p95, primary_p99=p99,
                candidate_p50=c50, candidate_p95=c95, candidate_p99=c99,
                latency=compared,
                **r,
            )
        )  # fmt: skip
    return out


def _route_key(route: str) -> tuple[str, str]:
    method, _, template = route.strip().partition(" ")
    if not template:  # a bare template: any method
        return "*", method
    method = method.upper()
    return ("*" if method == "ANY" else method), template.strip()


def never_exercised(routes: Iterable[str], seen: Iterable[str]) -> list[str]:
    """Known routes ("METHOD /template", "* /template" or "/template") with no exchange."""
    seen_keys = {_route_key(e) for e in seen}
    seen_templates = {t for _, t in seen_keys}
    out = []
    for route in routes:
        method, template = _route_key(route)
        hit = template in seen_templates if method == "*" else (method, template) in seen_keys
        if not hit:
            out.append(route.strip())
    return sorted(set(out))
