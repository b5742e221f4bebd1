"""Latency histograms as inline-SVG geometry, from the per-bucket counts SQL returns.

Buckets are powers of two in milliseconds (`queries.HISTOGRAM`): bucket k holds
[2^k, 2^(k+1)) ms, the lowest everything under 1 ms, the highest everything
from 2^HIST_HIGH ms up. Bars show each backend's share of its own requests, so
the two shapes compare even when their counts differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reports.queries import HIST_HIGH, HIST_LOW

SIDES = ("primary", "candidate")
PLOT_H = 56.0
LABEL_H = 14.0
BAR_W = 7.0
GAP = 5.0


@dataclass(frozen=True, slots=True)
class Bar:
    side: str
    x: float
    y: float
    w: float
    h: float
    title: str


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    text: str


@dataclass(frozen=True, slots=True)
class Histogram:
    width: float
    height: float
    baseline: float
    label_y: float
    bars: list[Bar]
    ticks: list[Tick]
    totals: dict[str, int]


def edge_label(bucket: int) -> str:
    """The lower edge of a bucket: 0, 1, 2, … ms, then seconds."""
    if bucket <= HIST_LOW:
        return "0"
    ms = 2**bucket
    return f"{ms}" if ms < 1000 else f"{ms / 1000:g}s"


def bucket_range(bucket: int) -> str:
    if bucket <= HIST_LOW:
        return "< 1 ms"
    if bucket >= HIST_HIGH:
        return f">= {2**bucket:,} ms"
    return f"{2**bucket:,}-{2 ** (bucket + 1):,} ms"


def build_histogram(counts: Mapping[str, Mapping[int, int]]) -> Histogram | None:
    """Geometry for one endpoint; `counts` maps side -> bucket -> requests."""
    totals = {s: sum(counts.get(s, {}).values()) for s in SIDES}
    used = [b for s in SIDES for b, n in counts.get(s, {}).items() if n]
    if not used:
        return None
    lo, hi = min(used), max(used)
    shares = {
        s: {b: n / totals[s] for b, n in counts.get(s, {}).items() if n} for s in SIDES if totals[s]
    }
    top = max(v for per in shares.values() for v in per.values())
    slot = 2 * BAR_W + GAP
    bars: list[Bar] = []
    ticks: list[Tick] = []
    step = 1 if hi - lo < 10 else 2
    for i, b in enumerate(range(lo, hi + 1)):
        x0 = GAP + i * slot
        if (b - lo) % step == 0:
            ticks.append(Tick(x0, edge_label(b)))
        for j, side in enumerate(SIDES):
            share = shares.get(side, {}).get(b, 0.0)
            if not share:
                continue
            h = max(1.0, PLOT_H * share / top)
            n = counts[side][b]
            bars.append(
                Bar(
                    side, x0 + j * BAR_W, PLOT_H - h, BAR_W - 1, h,
                    f"{side} {bucket_range(b)}: {n:,} ({100 * share:.1f}%)",
                )
            )  # fmt: skip
    width = GAP + (hi - lo + 1) * slot + 14
    return Histogram(width, PLOT_H + LABEL_H, PLOT_H, PLOT_H + LABEL_H - 2, bars, ticks, totals)
