"""Run comparison: this report's parity per endpoint against a baseline run's.

The baseline is a run in the same store, or a run (by default the latest) of
another store. Both sides come from the same SQL as the overview.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from reports import queries
from reports._sql import rows
from reports.overview import EndpointRow, Summary, load_endpoints, summarize
from shadow.errors import StoreError

SAME = 0.05  # percentage points: smaller changes are "same"
ORDER = {"worse": 0, "new": 1, "removed": 2, "better": 3, "same": 4}


@dataclass(frozen=True)
class Snapshot:
    """What the baseline run measured."""

    run_id: str
    label: str
    summary: Summary
    endpoints: dict[str, EndpointRow]


@dataclass(frozen=True)
class Delta:
    endpoint: str
    change: str  # worse | better | same | new | removed
    before: float | None  # parity %, None when not compared
    after: float | None
    requests_before: int
    requests_after: int
    anchor: str | None = None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


@dataclass(frozen=True)
class RunComparison:
    baseline: str  # label
    current: str
    before: float | None
    after: float | None
    rows: list[Delta]  # worse first, then new, removed, better, same

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    def count(self, change: str) -> int:
        return sum(1 for d in self.rows if d.change == change)


def latest_run(con: duckdb.DuckDBPyConnection, exclude: str | None = None) -> str | None:
    found = rows(con, queries.LATEST_RUN, {"exclude": exclude})
    return str(found[0]["run_id"]) if found else None


def require_run(con: duckdb.DuckDBPyConnection, run_id: str, where: str) -> None:
    if not rows(con, queries.RUN_EXISTS, {"run": run_id})[0]["n"]:
        raise StoreError(f"baseline run {run_id!r} not found in {where}")


def snapshot(con: duckdb.DuckDBPyConnection, run_id: str, label: str) -> Snapshot:
    runs = rows(con, queries.RUNS, {"run": run_id})
    eps = load_endpoints(con, run_id, detailed=0, latency=False)  # parity only
    return Snapshot(run_id, label, summarize(eps, runs), {e.endpoint: e for e in eps})


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "same" if before == after else ("better" if before is None else "worse")
    if after - before > SAME:
        return "better"
    if before - after > SAME:
        return "worse"
    return "same"


def compare(
    base: Snapshot, current: str, summary: Summary, endpoints: Sequence[EndpointRow]
) -> tuple[RunComparison, dict[str, Delta]]:
    """The comparison table, and each current endpoint's delta for the overview."""
    out: dict[str, Delta] = {}
    for e in endpoints:
        b = base.endpoints.get(e.endpoint)
        if b is None:
            out[e.endpoint] = Delta(e.endpoint, "new", None, e.parity, 0, e.requests, e.anchor)
        else:
            out[e.endpoint] = Delta(
                e.endpoint, _change(b.parity, e.parity), b.parity, e.parity,
                b.requests, e.requests, e.anchor,
            )  # fmt: skip
    removed = [
        Delta(name, "removed", b.parity, None, b.requests, 0)
        for name, b in base.endpoints.items()
        if name not in out
    ]

    def key(d: Delta) -> tuple[int, float, str]:
        return (ORDER[d.change], d.delta if d.delta is not None else 0.0, d.endpoint)

    table = sorted([*out.values(), *removed], key=key)
    return RunComparison(base.label, current, base.summary.parity, summary.parity, table), out
