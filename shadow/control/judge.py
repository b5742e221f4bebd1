"""Judging a route the candidate serves: its figures over a window, against thresholds.

`Window` keeps the last window of controlled exchanges in an in-memory DuckDB with
the store's own schema and reads them with the store's own definition
(`shadow_route_figures` over the outcome macros): the figures behind a rollback
are those the report and `shadow check` show. `judge` compares them with a
route's thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import duckdb

from shadow.config.control import Thresholds
from shadow.config.loader import Config
from shadow.store import outcomes
from shadow.store.rows import (
    DifferenceRow,
    ExchangeRow,
    NoiseRow,
)
from shadow.store.schema import migrate
from shadow.store.writer import insert_rows


class Evaluated(Protocol):
    """A judged exchange's rows (shadow.pipeline.evaluate.Evaluated)."""

    @property
    def row(self) -> ExchangeRow: ...
    @property
    def differences(self) -> Sequence[DifferenceRow]: ...
    @property
    def noise(self) -> Sequence[NoiseRow]: ...


_FIGURES = (
    "SELECT route, asked, served, candidate_errors, fallbacks, compared, mismatches, "
    "error_rate, fallback_rate, mismatch_rate, latency_ratio, candidate_p95_ms, primary_p95_ms "
    "FROM shadow_route_figures(NULL, ?, NULL, NULL)"
)


@dataclass(frozen=True)
class Figures:
    """A route's figures over its window (from shadow_route_figures)."""

    route: str
    asked: int
    served: int
    candidate_errors: int
    fallbacks: int
    compared: int
    mismatches: int
    error_rate: float | None
    fallback_rate: float | None
    mismatch_rate: float | None
    latency_ratio: float | None
    candidate_p95_ms: float | None
    primary_p95_ms: float | None


def judge(f: Figures, t: Thresholds) -> tuple[str, list[str]]:
    """("hold" | "healthy" | "failing", the thresholds crossed, one phrase each)."""
    if f.asked < t.min_requests:
        return "hold", []
    crossed = []
    if f.error_rate is not None and f.error_rate > t.error_rate:
        crossed.append(
            f"error rate {f.error_rate:.1%} > {t.error_rate:.1%} "
            f"({f.candidate_errors} of {f.asked} requests)"
        )
    if f.fallback_rate is not None and f.fallback_rate > t.fallback_rate:
        crossed.append(
            f"fallback rate {f.fallback_rate:.1%} > {t.fallback_rate:.1%} "
            f"({f.fallbacks} of {f.asked})"
        )
    if (
        f.compared >= t.min_requests
        and f.mismatch_rate is not None
        and f.mismatch_rate > t.mismatch_rate
    ):
        crossed.append(
            f"mismatch rate {f.mismatch_rate:.1%} > {t.mismatch_rate:.1%} "
            f"({f.mismatches} of {f.compared} compared)"
        )
    if (
        t.latency_ratio > 0
        and f.served >= t.min_requests
        and f.latency_ratio is not None
        and f.latency_ratio > t.latency_ratio
    ):
        crossed.append(f"p95 latency {f.latency_ratio:.2f}x the primary's > {t.latency_ratio:g}x")
    return ("failing" if crossed else "healthy"), crossed


def naive(ts: float) -> datetime:
    """Unix seconds as the stores' timestamps: naive UTC."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


class Window:
    """The last window of controlled exchanges, in an in-memory DuckDB with the store's schema.

    Only one thread at a time may use it (the controller runs it in a worker thread).
    """

    def __init__(self, config: Config) -> None:
        self.con = duckdb.connect(":memory:")
        migrate(self.con)
        outcomes.install(self.con, config.accepted)

    def add(self, results: Sequence[Evaluated]) -> None:
        insert_rows(self.con, "exchanges", [_light(r.row) for r in results])
        insert_rows(self.con, "differences", [d for r in results for d in r.differences])
        insert_rows(self.con, "noise_differences", [n for r in results for n in r.noise])

    def forget_before(self, ts: float) -> None:
        cut = naive(ts)
        old = "SELECT exchange_id FROM exchanges WHERE ts < ?"
        self.con.execute(f"DELETE FROM differences WHERE exchange_id IN ({old})", [cut])
        self.con.execute(f"DELETE FROM noise_differences WHERE exchange_id IN ({old})", [cut])
        self.con.execute("DELETE FROM exchanges WHERE ts < ?", [cut])

    def keep_newest(self, limit: int) -> int:
        """Forget all but the newest `limit` exchanges; how many were forgotten."""
        [(count,)] = self.con.execute("SELECT count(*) FROM exchanges").fetchall()
        if count <= limit:
            return 0
        cut = self.con.execute(
            "SELECT ts FROM exchanges ORDER BY ts DESC LIMIT 1 OFFSET ?", [limit]
        ).fetchall()[0]
        old = "SELECT exchange_id FROM exchanges WHERE ts <= ?"
        self.con.execute(f"DELETE FROM differences WHERE exchange_id IN ({old})", list(cut))
        self.con.execute(f"DELETE FROM noise_differences WHERE exchange_id IN ({old})", list(cut))
        self.con.execute("DELETE FROM exchanges WHERE ts <= ?", list(cut))
        [(left,)] = self.con.execute("SELECT count(*) FROM exchanges").fetchall()
        return int(count) - int(left)

    def figures(self, since: float) -> dict[str, Figures]:
        out = {}
        for row in self.con.execute(_FIGURES, [naive(since)]).fetchall():
            f = Figures(*row)
            out[f.route] = f
        return out

    def close(self) -> None:
        self.con.close()


def _light(row: ExchangeRow) -> ExchangeRow:
    """The row without what judging never reads (bodies, headers): less memory held."""
    return row._replace(
        request_headers=None,
        request_body=None,
        primary_headers=None,
        primary_body=None,
        candidate_headers=None,
        candidate_body=None,
        notes=None,
    )


__all__ = ["Evaluated", "Figures", "Window", "judge", "naive"]
